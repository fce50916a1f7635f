# shellcheck shell=bash
# Start, stop and probe one Prometheus-family server (Prometheus, Alertmanager) on loopback.
# Sourced by deploy/local/prometheus.sh and deploy/local/alertmanager.sh, which set:
#   NAME      log and message name ("prometheus", "alertmanager")
#   BIN       the server binary
#   PORT      its web port on 127.0.0.1
#   CONFIG    its configuration file (absolute)
#   DIR       its state directory ($QW_STATE_DIR/<name>): data/, <name>.log, <name>.pid
#   ARGS      array: the server's arguments (listen address, storage path, config)
#   CHECK     array: a command that checks CONFIG before a start (promtool, amtool)
#   INSTALL   the Debian package that ships BIN
# and then call `monitoring_main "$@"`.
#
# Commands: start (wait until GET /-/ready answers 200, exit 0 at once when ours already
# does), stop (SIGTERM, then SIGKILL after QW_MONITORING_STOP_TIMEOUT s), restart,
# status (0 running and ready, 1 running but not ready, 3 stopped), logs [N], reload
# (SIGHUP: re-read CONFIG), url (print the base URL).

START_TIMEOUT=${QW_MONITORING_START_TIMEOUT:-60}
STOP_TIMEOUT=${QW_MONITORING_STOP_TIMEOUT:-20}
HOST=127.0.0.1

log() { printf '%s.sh: %s\n' "$NAME" "$*" >&2; }
die() { printf '%s.sh: ERROR: %s\n' "$NAME" "$*" >&2; exit 1; }

monitoring_validate() {
  if ! [[ "$PORT" =~ ^[0-9]{1,5}$ ]] || (( PORT < 1024 || PORT > 65535 )); then
    die "invalid port $PORT: 1024-65535"
  fi
  [[ "$DIR" == /* ]] || die "state dir must be absolute: $DIR"
  [[ -n "${START_TIMEOUT//[0-9]/}" || -n "${STOP_TIMEOUT//[0-9]/}" ]] \
    && die "QW_MONITORING_START_TIMEOUT and QW_MONITORING_STOP_TIMEOUT are whole seconds"
  return 0
}

need_bin() {
  command -v "$BIN" >/dev/null 2>&1 || die "$BIN not found. Install it with:
    apt-get install -y --no-install-recommends $INSTALL
(or run deploy/local/setup.sh --test as root)"
}

base_url() { echo "http://$HOST:$PORT"; }

is_ours() {  # pid -> 0 when it is a live $BIN started with our state dir
  local pid=$1 cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline=$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null) || return 1
  [[ "$cmdline" == *"$(basename "$BIN")"* && "$cmdline" == *"$DIR/data"* ]]
}

find_pid() {
  local pid
  [[ -f "$DIR/$NAME.pid" ]] || return 1
  pid=$(<"$DIR/$NAME.pid")
  is_ours "$pid" || return 1
  echo "$pid"
}

ready() { curl -fsS -o /dev/null --max-time 2 "$(base_url)/-/ready" 2>/dev/null; }

port_busy() { (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; }

cmd_start() {
  need_bin
  mkdir -p "$DIR/data"
  local pid
  if pid=$(find_pid); then
    if ready; then
      log "already running: pid $pid on $(base_url)"
      return 0
    fi
    die "pid $pid is running but not ready on $(base_url) (see $DIR/$NAME.log); stop it first"
  fi
  port_busy && die "something else listens on $HOST:$PORT: choose another with the port variable"
  if ! "${CHECK[@]}" > "$DIR/check.log" 2>&1; then
    cat "$DIR/check.log" >&2
    die "$CONFIG does not pass ${CHECK[0]}"
  fi
  local t0=$SECONDS
  printf -- '--- %s start %s\n' "$NAME" "$(date -u +%FT%TZ)" >> "$DIR/$NAME.log"
  nohup "$BIN" "${ARGS[@]}" >> "$DIR/$NAME.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$DIR/$NAME.pid"
  while (( SECONDS - t0 < START_TIMEOUT )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 30 "$DIR/$NAME.log" >&2
      rm -f "$DIR/$NAME.pid"
      die "$NAME exited during start (log: $DIR/$NAME.log)"
    fi
    if ready; then
      log "ready on $(base_url) in $((SECONDS - t0))s (pid $pid, log $DIR/$NAME.log)"
      return 0
    fi
    sleep 0.2
  done
  tail -n 30 "$DIR/$NAME.log" >&2
  stop_pid "$pid"
  die "$NAME not ready after ${START_TIMEOUT}s (log: $DIR/$NAME.log)"
}

stop_pid() {
  local pid=$1 deadline=$(( SECONDS + STOP_TIMEOUT ))
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    log "pid $pid still alive after ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$DIR/$NAME.pid"
}

cmd_stop() {
  local pid
  if ! pid=$(find_pid); then
    rm -f "$DIR/$NAME.pid"
    log "not running (state dir $DIR)"
    return 0
  fi
  stop_pid "$pid"
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  if pid=$(find_pid); then
    if ready; then
      echo "running: pid $pid on $(base_url), config $CONFIG, state $DIR"
      return 0
    fi
    echo "running but not ready: pid $pid on $(base_url) (log $DIR/$NAME.log)"
    return 1
  fi
  echo "stopped (state $DIR)"
  return 3
}

cmd_reload() {
  local pid
  pid=$(find_pid) || die "not running"
  "${CHECK[@]}" >&2 || die "$CONFIG does not pass ${CHECK[0]}: not reloaded"
  kill -HUP "$pid"
  log "sent SIGHUP to pid $pid (re-reads $CONFIG)"
}

monitoring_main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  monitoring_validate
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    reload) cmd_reload ;;
    url) base_url ;;
    logs)
      local n=${1:-100}
      [[ "$n" =~ ^[0-9]+$ ]] || die "usage: $0 logs [N]"
      tail -n "$n" "$DIR/$NAME.log"
      ;;
    help|-h|--help) sed -n '2,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "$0" ;;
    *) sed -n '2,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "$0" >&2; exit 2 ;;
  esac
}
