#!/usr/bin/env bash
# Prometheus (Debian's `prometheus` package) on loopback, for the demo, the tests and CI.
#
# usage: deploy/local/prometheus.sh {start|stop|restart|status|reload|logs [N]|url|help}
#
#   start    check the configuration with promtool, start Prometheus in the background and
#            wait until /-/ready answers; exit 0 at once when ours already does
#   stop     SIGTERM, then SIGKILL after QW_MONITORING_STOP_TIMEOUT s (idempotent)
#   status   exit 0 running and ready, 1 running but not ready, 3 stopped
#   reload   re-check and re-read the configuration and rules (SIGHUP)
#   logs     tail of $QW_STATE_DIR/prometheus/prometheus.log;  url: print the base URL
#
# Environment:
#   QW_PROMETHEUS_PORT      web port on 127.0.0.1 (default 9090)
#   QW_PROMETHEUS_CONFIG    configuration (default deploy/prometheus/prometheus.yml, which
#                           scrapes the alerts service on 127.0.0.1:8002 and loads the rules)
#   QW_PROMETHEUS_RETENTION TSDB retention (default 2d)
#   QW_PROMETHEUS_EXTERNAL_URL  the URL in the links it sends (default http://127.0.0.1:<port>/)
#   QW_STATE_DIR            state root (default <repo>/var); Prometheus uses
#                           $QW_STATE_DIR/prometheus/{data,prometheus.log,prometheus.pid}
#   QW_MONITORING_START_TIMEOUT / QW_MONITORING_STOP_TIMEOUT  seconds (60 / 20)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
# shellcheck source=deploy/local/monitoring.lib.sh
source "$SCRIPT_DIR/monitoring.lib.sh"

NAME=prometheus
BIN=${QW_PROMETHEUS_BIN:-prometheus}
INSTALL=prometheus
PORT=${QW_PROMETHEUS_PORT:-9090}
CONFIG=$(realpath -m -- "${QW_PROMETHEUS_CONFIG:-$REPO_ROOT/deploy/prometheus/prometheus.yml}")
STATE_DIR=$(realpath -m -- "${QW_STATE_DIR:-$REPO_ROOT/var}")
DIR="$STATE_DIR/prometheus"
RETENTION=${QW_PROMETHEUS_RETENTION:-2d}
[[ "$RETENTION" =~ ^[0-9]+(ms|s|m|h|d|w|y)$ ]] || die "QW_PROMETHEUS_RETENTION=$RETENTION: e.g. 2d"
ARGS=(
  "--config.file=$CONFIG"
  "--storage.tsdb.path=$DIR/data"
  "--storage.tsdb.retention.time=$RETENTION"
  "--web.listen-address=$HOST:$PORT"
  "--web.external-url=${QW_PROMETHEUS_EXTERNAL_URL:-http://$HOST:$PORT/}"
  "--web.enable-lifecycle"
)
CHECK=(promtool check config "$CONFIG")

monitoring_main "$@"
