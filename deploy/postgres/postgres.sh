#!/usr/bin/env bash
# Throwaway PostgreSQL 15 (Debian's packages) for the demo, the tests and CI, without Docker.
# One cluster under $QW_STATE_DIR/postgres, listening on 127.0.0.1 only, with a database and
# a password user for QualityWatch. It is tuned for tests (fsync off): not for real data.
#
# usage: deploy/postgres/postgres.sh {install|start|stop|restart|status|url|psql|logs [N]|reset|help}
#
#   install   apt-get install the PostgreSQL 15 server when its binaries are missing (root)
#   start     install if needed, initdb once, start the server in the background, wait until
#             it accepts connections, create the user and the database (idempotent), then
#             print the SQLAlchemy URL on stdout. Exits 0 at once when ours already runs.
#   stop      fast shutdown, wait for it (idempotent)
#   restart   stop, then start
#   status    exit 0 running and accepting connections, 1 running but not ready, 3 stopped
#   url       print the SQLAlchemy URL (postgresql+psycopg://qw:qw@127.0.0.1:15432/qualitywatch)
#   psql      open psql on the database as the QualityWatch user (extra args go to psql)
#   logs      tail of the server log (N lines, default 100)
#   reset     stop and delete the cluster (all data)
#
# Environment:
#   QW_PG_PORT           TCP port on 127.0.0.1 (default 15432)
#   QW_PG_USER           database user (default qw)
#   QW_PG_PASSWORD       its password (default qw; letters, digits and . _ ~ - only)
#   QW_PG_DB             database (default qualitywatch)
#   QW_STATE_DIR         state root (default <repo>/var, gitignored); the cluster lives in
#                        $QW_STATE_DIR/postgres/{data,log/postgres.log,log/postgres.sh.log,run}
#   QW_PG_BIN            PostgreSQL binaries (default /usr/lib/postgresql/15/bin)
#   QW_PG_OS_USER        OS user that runs the server when this script runs as root
#                        (default postgres: the server refuses to run as root)
#   QW_PG_START_TIMEOUT  seconds to wait for readiness (default 60)
#
# stdout carries only the URL (start, url), so `URL=$(deploy/postgres/postgres.sh start)` works;
# progress and errors go to stderr and to $QW_STATE_DIR/postgres/log/postgres.sh.log.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)

PG_MAJOR=15
PORT=${QW_PG_PORT:-15432}
DB_USER=${QW_PG_USER:-qw}
DB_PASSWORD=${QW_PG_PASSWORD:-qw}
DB_NAME=${QW_PG_DB:-qualitywatch}
STATE_DIR=${QW_STATE_DIR:-$REPO_ROOT/var}
PG_BIN=${QW_PG_BIN:-/usr/lib/postgresql/$PG_MAJOR/bin}
OS_USER=${QW_PG_OS_USER:-postgres}
START_TIMEOUT=${QW_PG_START_TIMEOUT:-60}
HOST=127.0.0.1
SUPERUSER=postgres

PG_DIR="$STATE_DIR/postgres"
DATA_DIR="$PG_DIR/data"
LOG_DIR="$PG_DIR/log"
SOCK_DIR="$PG_DIR/run"
SERVER_LOG="$LOG_DIR/postgres.log"
SCRIPT_LOG="$LOG_DIR/postgres.sh.log"
CONF_NAME=qualitywatch.conf

log() {
  printf 'postgres.sh: %s\n' "$*" >&2
  if [[ -d "$LOG_DIR" ]]; then
    printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >> "$SCRIPT_LOG" 2>/dev/null || true
  fi
}
die() {
  printf 'postgres.sh: ERROR: %s\n' "$*" >&2
  if [[ -d "$LOG_DIR" ]]; then
    printf '%s ERROR: %s\n' "$(date -u +%FT%TZ)" "$*" >> "$SCRIPT_LOG" 2>/dev/null || true
  fi
  exit 1
}

url() { printf 'postgresql+psycopg://%s:%s@%s:%s/%s\n' "$DB_USER" "$DB_PASSWORD" "$HOST" "$PORT" "$DB_NAME"; }

validate_env() {
  if ! [[ "$PORT" =~ ^[0-9]+$ ]] || (( PORT < 1024 || PORT > 65535 )); then
    die "QW_PG_PORT=$PORT: expected a port number in 1024-65535"
  fi
  [[ "$DB_USER" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] \
    || die "QW_PG_USER=$DB_USER: use lower-case letters, digits and _ (a plain SQL identifier)"
  [[ "$DB_NAME" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] \
    || die "QW_PG_DB=$DB_NAME: use lower-case letters, digits and _ (a plain SQL identifier)"
  [[ "$DB_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]] \
    || die "QW_PG_PASSWORD: use letters, digits and . _ ~ - only (it goes into a URL unescaped)"
  [[ "$DB_USER" != "$SUPERUSER" ]] || die "QW_PG_USER must not be the superuser '$SUPERUSER'"
  [[ "$STATE_DIR" != *"'"* ]] || die "QW_STATE_DIR must not contain a single quote: $STATE_DIR"
  if ! [[ "$START_TIMEOUT" =~ ^[0-9]+$ ]]; then
    die "QW_PG_START_TIMEOUT=$START_TIMEOUT: expected whole seconds"
  fi
}

# ---------------------------------------------------------------- running as the server's user

AS_PG=()
setup_os_user() {
  if (( EUID != 0 )); then
    AS_PG=()  # not root: the server runs as whoever runs this script
    return 0
  fi
  id -u "$OS_USER" >/dev/null 2>&1 || die "OS user '$OS_USER' does not exist. PostgreSQL refuses
to run as root; Debian's postgresql package creates the 'postgres' user:
    apt-get install -y postgresql
or set QW_PG_OS_USER to an existing unprivileged user."
  command -v runuser >/dev/null 2>&1 || die "runuser not found (package util-linux)"
  AS_PG=(runuser -u "$OS_USER" --)
}

as_pg() { "${AS_PG[@]}" "$@"; }

# ---------------------------------------------------------------- install

binaries_ok() { [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" && -x "$PG_BIN/postgres" ]]; }

cmd_install() {  # arg "quiet": say nothing when already installed
  if binaries_ok; then
    [[ "${1:-}" == quiet ]] || log "PostgreSQL $PG_MAJOR binaries present in $PG_BIN"
    return 0
  fi
  local hint="install them with:
    apt-get update && apt-get install -y postgresql-$PG_MAJOR
or point QW_PG_BIN at a PostgreSQL $PG_MAJOR bin directory."
  (( EUID == 0 )) || die "no PostgreSQL $PG_MAJOR binaries in $PG_BIN; as root, $hint"
  command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL $PG_MAJOR binaries in $PG_BIN and no apt-get; $hint"
  log "installing PostgreSQL $PG_MAJOR with apt-get (Debian's postgresql-$PG_MAJOR) ..."
  local t0=$SECONDS apt_log
  apt_log=$(mktemp -t qw-pg-apt.XXXXXX)
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "postgresql-$PG_MAJOR" > "$apt_log" 2>&1; then
    log "apt-get install failed; refreshing the package lists and retrying"
    DEBIAN_FRONTEND=noninteractive apt-get update >> "$apt_log" 2>&1 || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      "postgresql-$PG_MAJOR" >> "$apt_log" 2>&1 \
      || { tail -n 20 "$apt_log" >&2; die "apt-get install postgresql-$PG_MAJOR failed (log: $apt_log)"; }
  fi
  binaries_ok || die "postgresql-$PG_MAJOR installed but $PG_BIN/initdb is still missing"
  log "installed PostgreSQL $PG_MAJOR in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- cluster helpers

prepare_dirs() {
  mkdir -p "$PG_DIR" "$LOG_DIR" "$SOCK_DIR"
  if (( EUID == 0 )); then
    chown -R "$OS_USER": "$PG_DIR"
  fi
  chmod 700 "$PG_DIR" "$SOCK_DIR"
  as_pg test -w "$PG_DIR" -a -x "$PG_DIR" || die "OS user '$OS_USER' cannot write $PG_DIR: every
parent directory must be traversable (o+x) by it. Put the state elsewhere, e.g.
    QW_STATE_DIR=/tmp/qualitywatch-state $0 start"
}

pg_ctl_status() {  # 0 running, 3 not running, 4 no usable data dir
  local rc=0
  as_pg "$PG_BIN/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1 || rc=$?
  return "$rc"
}

is_running() { [[ -f "$DATA_DIR/PG_VERSION" ]] && pg_ctl_status; }

running_port() {  # the port the running server listens on (line 4 of postmaster.pid)
  as_pg sed -n 4p "$DATA_DIR/postmaster.pid" 2>/dev/null || true
}

check_running_port() {
  local p
  p=$(running_port)
  if [[ -n "$p" && "$p" != "$PORT" ]]; then
    die "the cluster in $DATA_DIR already runs on port $p, not QW_PG_PORT=$PORT;
stop it first ($0 stop) or use QW_PG_PORT=$p"
  fi
}

is_ready() { "$PG_BIN/pg_isready" -q -h "$HOST" -p "$PORT" -d postgres -t 2 >/dev/null 2>&1; }

port_busy() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

who_listens() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null || true
  fi
}

show_log_tail() {
  local n=${1:-40}
  if [[ -s "$SERVER_LOG" ]]; then
    printf -- '----- last %s lines of %s -----\n' "$n" "$SERVER_LOG" >&2
    tail -n "$n" "$SERVER_LOG" >&2
  fi
}

init_cluster() {
  if [[ -f "$DATA_DIR/PG_VERSION" ]]; then
    local v
    v=$(<"$DATA_DIR/PG_VERSION")
    [[ "$v" == "$PG_MAJOR" ]] || die "$DATA_DIR holds a PostgreSQL $v cluster, this script runs $PG_MAJOR;
delete it with: $0 reset"
    return 0
  fi
  if [[ -e "$DATA_DIR" ]] && [[ -n "$(ls -A "$DATA_DIR" 2>/dev/null)" ]]; then
    die "$DATA_DIR exists but is not a PostgreSQL cluster (no PG_VERSION); remove it or run: $0 reset"
  fi
  log "initdb into $DATA_DIR (superuser '$SUPERUSER', local socket trust, TCP scram-sha-256)"
  if ! as_pg "$PG_BIN/initdb" -D "$DATA_DIR" -U "$SUPERUSER" -E UTF8 --no-locale \
      --auth-local=trust --auth-host=scram-sha-256 >> "$SCRIPT_LOG" 2>&1; then
    tail -n 20 "$SCRIPT_LOG" >&2
    die "initdb failed (log: $SCRIPT_LOG)"
  fi
  # Our settings live in one included file, rewritten at every start (port may change).
  printf "\ninclude_if_exists = '%s'\n" "$CONF_NAME" | as_pg tee -a "$DATA_DIR/postgresql.conf" >/dev/null
}

write_conf() {
  as_pg tee "$DATA_DIR/$CONF_NAME" >/dev/null <<EOF
# Written by deploy/postgres/postgres.sh at every start; edits are overwritten.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCK_DIR'
max_connections = 100
# A throwaway server for tests and demos: trade durability for speed.
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
log_connections = off
EOF
}

psql_super() {  # psql as the superuser over the private socket; SQL on stdin
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PORT" -U "$SUPERUSER" -d postgres "$@"
}

bootstrap_db() {
  # psql quotes :'var' as a literal and format(%I/%L) quotes identifiers and literals.
  psql_super -v user="$DB_USER" -v pw="$DB_PASSWORD" -v db="$DB_NAME" >> "$SCRIPT_LOG" 2>&1 <<'SQL' \
    || { tail -n 20 "$SCRIPT_LOG" >&2; die "could not create the user/database (log: $SCRIPT_LOG)"; }
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'user', :'pw')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')
UNION ALL
SELECT format('ALTER ROLE %I LOGIN PASSWORD %L', :'user', :'pw')
 WHERE EXISTS (SELECT FROM pg_roles WHERE rolname = :'user')
\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'user')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
}

wait_ready() {
  local deadline=$((SECONDS + START_TIMEOUT))
  until is_ready; do
    if ! is_running; then
      show_log_tail 40
      die "the server exited during startup (log: $SERVER_LOG)"
    fi
    if (( SECONDS >= deadline )); then
      show_log_tail 40
      die "not accepting connections on $HOST:$PORT after ${START_TIMEOUT}s (log: $SERVER_LOG)"
    fi
    sleep 0.5
  done
}

# ---------------------------------------------------------------- commands

cmd_start() {
  validate_env
  setup_os_user
  cmd_install quiet
  prepare_dirs
  if is_running; then
    check_running_port
    if is_ready; then
      log "already running on $HOST:$PORT (data: $DATA_DIR)"
      bootstrap_db
      url
      return 0
    fi
    log "running but not answering on $HOST:$PORT yet; waiting"
    wait_ready
    bootstrap_db
    url
    return 0
  fi
  if port_busy "$PORT"; then
    die "port $HOST:$PORT is already taken by another process:
$(who_listens "$PORT")
stop it or choose another port, e.g. QW_PG_PORT=15433 $0 start"
  fi
  init_cluster
  write_conf
  log "starting PostgreSQL $PG_MAJOR on $HOST:$PORT (log: $SERVER_LOG)"
  local t0=$SECONDS
  if ! as_pg "$PG_BIN/pg_ctl" start -D "$DATA_DIR" -l "$SERVER_LOG" -w -t "$START_TIMEOUT" \
      >> "$SCRIPT_LOG" 2>&1; then
    show_log_tail 40
    die "pg_ctl start failed (log: $SERVER_LOG)"
  fi
  wait_ready
  bootstrap_db
  log "ready in $((SECONDS - t0))s: database '$DB_NAME', user '$DB_USER'"
  url
}

cmd_stop() {
  validate_env
  setup_os_user
  if ! binaries_ok || ! is_running; then
    log "not running"
    return 0
  fi
  log "stopping (fast shutdown)"
  as_pg "$PG_BIN/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 60 >> "$SCRIPT_LOG" 2>&1 \
    || die "pg_ctl stop failed (log: $SCRIPT_LOG)"
  log "stopped"
}

cmd_status() {
  validate_env
  setup_os_user
  if ! binaries_ok || ! is_running; then
    echo "stopped (data: $DATA_DIR)"
    return 3
  fi
  check_running_port
  if is_ready; then
    echo "running on $HOST:$PORT, accepting connections (data: $DATA_DIR)"
    return 0
  fi
  echo "running but not accepting connections on $HOST:$PORT (log: $SERVER_LOG)"
  return 1
}

cmd_psql() {
  validate_env
  command -v psql >/dev/null 2>&1 || [[ -x "$PG_BIN/psql" ]] || die "psql not found"
  PGPASSWORD="$DB_PASSWORD" "$PG_BIN/psql" -h "$HOST" -p "$PORT" -U "$DB_USER" -d "$DB_NAME" "$@"
}

cmd_logs() {
  local n=${1:-100}
  [[ "$n" =~ ^[0-9]+$ ]] || die "logs: N must be a number"
  [[ -s "$SERVER_LOG" ]] || die "no server log yet at $SERVER_LOG"
  tail -n "$n" "$SERVER_LOG"
}

cmd_reset() {
  cmd_stop
  if [[ -d "$PG_DIR" ]]; then
    rm -rf -- "$PG_DIR"
    printf 'postgres.sh: deleted %s\n' "$PG_DIR" >&2
  fi
}

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; }

main() {
  local cmd=${1:-help}
  shift || true
  case "$cmd" in
    install) setup_os_user; cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    restart) cmd_stop; cmd_start ;;
    status) cmd_status ;;
    url) validate_env; url ;;
    psql) cmd_psql "$@" ;;
    logs) cmd_logs "$@" ;;
    reset) cmd_reset ;;
    help|-h|--help) usage ;;
    *) usage >&2; die "unknown command: $cmd" ;;
  esac
}

main "$@"
