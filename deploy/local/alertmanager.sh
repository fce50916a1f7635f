#!/usr/bin/env bash
# Alertmanager (Debian's `prometheus-alertmanager` package) on loopback, alone (no cluster
# gossip port), for the demo, the tests and CI.
#
# usage: deploy/local/alertmanager.sh {start|stop|restart|status|reload|logs [N]|url|help}
#
#   start    check the configuration with amtool, start Alertmanager in the background and
#            wait until /-/ready answers; exit 0 at once when ours already does
#   stop     SIGTERM, then SIGKILL after QW_MONITORING_STOP_TIMEOUT s (idempotent)
#   status   exit 0 running and ready, 1 running but not ready, 3 stopped
#   reload   re-check and re-read the configuration (SIGHUP)
#   logs     tail of $QW_STATE_DIR/alertmanager/alertmanager.log;  url: print the base URL
#
# Environment:
#   QW_ALERTMANAGER_PORT    web and API port on 127.0.0.1 (default 9093)
#   QW_ALERTMANAGER_CONFIG  configuration (default deploy/alertmanager/alertmanager.yml;
#                           its receivers read secrets from files that must exist to notify)
#   QW_ALERTMANAGER_EXTERNAL_URL  the URL in the links it sends (default http://127.0.0.1:<port>/)
#   QW_STATE_DIR            state root (default <repo>/var); Alertmanager uses
#                           $QW_STATE_DIR/alertmanager/{data,alertmanager.log,alertmanager.pid}
#                           (silences and the notification log persist in data/)
#   QW_MONITORING_START_TIMEOUT / QW_MONITORING_STOP_TIMEOUT  seconds (60 / 20)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
# shellcheck source=deploy/local/monitoring.lib.sh
source "$SCRIPT_DIR/monitoring.lib.sh"

NAME=alertmanager
BIN=${QW_ALERTMANAGER_BIN:-prometheus-alertmanager}
INSTALL=prometheus-alertmanager
PORT=${QW_ALERTMANAGER_PORT:-9093}
CONFIG=$(realpath -m -- "${QW_ALERTMANAGER_CONFIG:-$REPO_ROOT/deploy/alertmanager/alertmanager.yml}")
STATE_DIR=$(realpath -m -- "${QW_STATE_DIR:-$REPO_ROOT/var}")
DIR="$STATE_DIR/alertmanager"
ARGS=(
  "--config.file=$CONFIG"
  "--storage.path=$DIR/data"
  "--web.listen-address=$HOST:$PORT"
  "--web.external-url=${QW_ALERTMANAGER_EXTERNAL_URL:-http://$HOST:$PORT/}"
  "--cluster.listen-address="
)
CHECK=(amtool check-config "$CONFIG")

monitoring_main "$@"
