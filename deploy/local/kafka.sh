#!/usr/bin/env bash
# Single-node Apache Kafka 4.x broker (KRaft, combined broker+controller) for the demo,
# the tests and CI, without Docker: the broker's jars come from Maven Central into ~/.m2
# (deploy/local/pom.xml) and run on the machine's Java 17+.
#
# usage: deploy/local/kafka.sh {install|start|stop|restart|status|logs [-f] [N]|reset|help}
#
#   install   resolve the broker's jars into ~/.m2 and write the classpath file (idempotent;
#             no mvn call at all when the classpath file is up to date)
#   start     install if needed, format the KRaft storage once, start the broker in the
#             background and wait until it serves Metadata and FindCoordinator requests.
#             Exits 0 at once when a healthy broker already answers on the port.
#   stop      SIGTERM, wait up to QW_KAFKA_STOP_TIMEOUT s, then SIGKILL (idempotent)
#   restart   stop, then start: on the ports the broker ran on, unless QW_KAFKA_PORT or
#             QW_KAFKA_CONTROLLER_PORT name others
#   status    exit 0 running and answering, 1 running but not answering, 3 not running
#   logs      tail of the broker log (-f to follow, N lines, default 100)
#   reset     stop and delete the broker's data (topics, offsets, cluster id)
#
# A broker running from this state dir is found by its process (started with its
# server.properties), whatever QW_KAFKA_PORT says now: stop stops it, and status, start
# and restart use the ports it was started with, read back from that server.properties
# (a start naming another QW_KAFKA_PORT for it is refused: stop it first).
#
# Environment:
#   QW_KAFKA_PORT             client listener, 127.0.0.1 only (default 9092; for a broker
#                             already running from QW_STATE_DIR: the port it runs on)
#   QW_KAFKA_CONTROLLER_PORT  KRaft controller listener, 127.0.0.1 only (default 9095: not
#                             Alertmanager's 9093 nor its cluster port 9094)
#   QW_STATE_DIR              state root (default <repo>/var, gitignored); the broker uses
#                             $QW_STATE_DIR/kafka/{data,logs,kafka.pid,server.properties,...}
#   QW_KAFKA_VERSION          org.apache.kafka:kafka_2.13 version (default: pinned in pom.xml)
#   QW_KAFKA_NUM_PARTITIONS   partitions of auto-created topics (default 8 = Faust's default)
#   QW_KAFKA_HEAP_OPTS        default "-Xms256m -Xmx1g"
#   QW_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   QW_KAFKA_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 30)
#   QW_MVN_ARGS               extra mvn arguments (e.g. "-o" or "-Dmaven.repo.local=...")
#   JAVA_HOME                 Java 17+ to use (default: java on PATH)
#   QW_PYTHON                 python3 used for the readiness probe (default python3)
#
# The broker is a single node, while qwatch creates its topics with a production cluster's
# replication (QW_KAFKA_REPLICATION_FACTOR 3, QW_KAFKA_MIN_INSYNC_REPLICAS 2): run qwatch
# commands against it with both set to 1 (start prints this hint unless they are).
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
POM="$SCRIPT_DIR/pom.xml"
PROBE="$SCRIPT_DIR/kafka_probe.py"
LOG4J2_CONFIG="$SCRIPT_DIR/log4j2.properties"

pinned_version() {
  sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n 1
}

KAFKA_VERSION=${QW_KAFKA_VERSION:-$(pinned_version)}
KAFKA_PORT=${QW_KAFKA_PORT:-9092}
CONTROLLER_PORT=${QW_KAFKA_CONTROLLER_PORT:-9095}
STATE_DIR=${QW_STATE_DIR:-$REPO_ROOT/var}
# one spelling of the path (absolute, no `..`, no symlinks): the pid lookup matches the
# broker's command line against it, and `dir/../dir` must find the broker `dir` started
STATE_DIR=$(realpath -m -- "$STATE_DIR")
NUM_PARTITIONS=${QW_KAFKA_NUM_PARTITIONS:-8}
HEAP_OPTS=${QW_KAFKA_HEAP_OPTS:--Xms256m -Xmx1g}
START_TIMEOUT=${QW_KAFKA_START_TIMEOUT:-90}
STOP_TIMEOUT=${QW_KAFKA_STOP_TIMEOUT:-30}
PYTHON=${QW_PYTHON:-python3}
HOST=127.0.0.1

KAFKA_DIR="$STATE_DIR/kafka"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
PID_FILE="$KAFKA_DIR/kafka.pid"
CONFIG="$KAFKA_DIR/server.properties"
VERSION_MARK="$KAFKA_DIR/last-version"
CLASSPATH_FILE="$KAFKA_DIR/classpath-$KAFKA_VERSION.txt"

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { printf 'kafka.sh: ERROR: %s\n' "$*" >&2; exit 1; }

validate_env() {
  [[ -n "$KAFKA_VERSION" ]] || die "no Kafka version: set QW_KAFKA_VERSION or <kafka.version> in $POM"
  [[ "$KAFKA_VERSION" =~ ^4\.[0-9]+\.[0-9]+([-.][A-Za-z0-9.-]+)?$ ]] \
    || die "QW_KAFKA_VERSION=$KAFKA_VERSION: this script runs Apache Kafka 4.x (KRaft only)"
  local p
  for p in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if ! [[ "$p" =~ ^[0-9]+$ ]] || (( p < 1 || p > 65535 )); then
      die "invalid port: $p"
    fi
  done
  [[ "$KAFKA_PORT" != "$CONTROLLER_PORT" ]] \
    || die "QW_KAFKA_PORT and QW_KAFKA_CONTROLLER_PORT must differ (both $KAFKA_PORT)"
}

# ---------------------------------------------------------------- prerequisites

JAVA=""
find_java() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    JAVA="$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    JAVA=$(command -v java)
  else
    die "java not found. Kafka 4.x needs Java 17 or newer: install it with
    apt-get install -y openjdk-17-jre-headless     (Debian 12; Debian 13: openjdk-21-jre-headless)
or point JAVA_HOME at a JDK/JRE 17+."
  fi
  local major
  major=$("$JAVA" -XshowSettings:properties -version 2>&1 \
    | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n 1)
  if [[ -z "$major" ]] || (( major < 17 )); then
    die "$JAVA is Java ${major:-unknown}; Kafka 4.x brokers need Java 17 or newer:
    apt-get install -y openjdk-17-jre-headless   (Debian 13: openjdk-21-jre-headless)
or set JAVA_HOME to a Java 17+ home"
  fi
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it fetches the Kafka jars from Maven Central:
    apt-get install -y maven"
}

need_python() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (used for the readiness probe):
    apt-get install -y python3     (or set QW_PYTHON)"
}

probe_ready() {  # extra args go to kafka_probe.py ready
  "$PYTHON" "$PROBE" ready "$HOST:$KAFKA_PORT" "$@"
}

port_free() { "$PYTHON" "$PROBE" port-free "$1"; }

who_listens() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------- install

classpath_ok() {
  [[ -s "$CLASSPATH_FILE" && "$CLASSPATH_FILE" -nt "$POM" ]] || return 1
  local jar
  local -a jars
  IFS=: read -r -a jars < "$CLASSPATH_FILE"
  for jar in "${jars[@]}"; do
    [[ -f "$jar" ]] || return 1
  done
}

cmd_install() {
  validate_env
  mkdir -p "$KAFKA_DIR"
  if classpath_ok; then
    log "Kafka $KAFKA_VERSION already installed (classpath: $CLASSPATH_FILE)"
    return 0
  fi
  need_mvn
  log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION into ~/.m2 with Maven ..."
  local tmp="$CLASSPATH_FILE.tmp.$$" mvn_log="$KAFKA_DIR/mvn-install.log" t0=$SECONDS
  # shellcheck disable=SC2086  # QW_MVN_ARGS is a list of words on purpose
  if ! mvn -B -Dstyle.color=never -f "$POM" ${QW_MVN_ARGS:-} \
      -Dkafka.version="$KAFKA_VERSION" \
      dependency:build-classpath \
      -Dmdep.includeScope=runtime \
      -Dmdep.outputFile="$tmp" > "$mvn_log" 2>&1; then
    rm -f "$tmp"
    grep -E '^\[(ERROR|WARNING)\]' "$mvn_log" | head -n 30 >&2 || tail -n 30 "$mvn_log" >&2
    die "mvn could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (Maven Central reachable? version served?); full log: $mvn_log"
  fi
  [[ -s "$tmp" ]] || die "mvn wrote no classpath to $tmp"
  mv -f "$tmp" "$CLASSPATH_FILE"
  log "installed Kafka $KAFKA_VERSION in $((SECONDS - t0))s ($(tr ':' '\n' < "$CLASSPATH_FILE" | wc -l) jars)"
}

# ---------------------------------------------------------------- process helpers

is_our_broker() {  # pid -> 0 when it is a live broker started with our server.properties
  local pid=$1 cmdline
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  cmdline=$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null) || return 1
  [[ "$cmdline" == *kafka.Kafka* && "$cmdline" == *"$CONFIG"* ]]
}

started_ports() {  # "client controller": the ports in our broker's server.properties
  local line
  line=$(grep -m 1 '^listeners=' "$CONFIG" 2>/dev/null) || return 1
  [[ "$line" =~ ^listeners=PLAINTEXT://[^,]*:([0-9]+),CONTROLLER://[^,]*:([0-9]+)$ ]] || return 1
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]}"
}

use_started_ports() {  # after find_pid: talk to the running broker where it listens
  local ports
  ports=$(started_ports) || return 0  # no readable record: QW_KAFKA_PORT or 9092, as before
  read -r KAFKA_PORT CONTROLLER_PORT <<< "$ports"
}

find_pid() {  # prints the pid of our broker, if any
  local pid
  if [[ -f "$PID_FILE" ]]; then
    pid=$(<"$PID_FILE")
    if is_our_broker "$pid"; then
      echo "$pid"
      return 0
    fi
  fi
  # pid file lost or stale: look for a broker started with this exact config file
  local d
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    if is_our_broker "$pid"; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

LOG_START_LINE=1  # first line of server.log written by the broker this script launched

show_log_tail() {  # the broker log's tail, its errors, then the JVM's own output (last)
  local n=${1:-40} f="$LOG_DIR/server.log" errors
  if [[ -s "$f" ]] && (( $(wc -l < "$f") >= LOG_START_LINE )); then
    printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
    tail -n "+$LOG_START_LINE" "$f" | tail -n "$n" >&2
    errors=$(tail -n "+$LOG_START_LINE" "$f" | grep -E '^\[[^]]*\] (ERROR|FATAL) ' | tail -n 10) || true
    if [[ -n "$errors" ]]; then
      printf -- '----- ERROR/FATAL lines of this start -----\n%s\n' "$errors" >&2
    fi
  fi
  f="$LOG_DIR/kafka.out"
  if [[ -s "$f" ]]; then
    printf -- '----- last %s lines of %s (JVM stdout/stderr) -----\n' "$n" "$f" >&2
    tail -n "$n" "$f" >&2
  fi
}

lock_state() {  # serialise start/stop/reset on this state dir
  mkdir -p "$KAFKA_DIR"
  exec 9>"$KAFKA_DIR/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "another kafka.sh holds $KAFKA_DIR/.lock"
  fi
}

# ---------------------------------------------------------------- config

write_config() {
  mkdir -p "$DATA_DIR" "$LOG_DIR"
  cat > "$CONFIG.tmp" <<EOF
# Generated by deploy/local/kafka.sh on every start: edit the script, not this file.
# Single node, KRaft combined mode (broker + controller), loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA_DIR

# one node: every internal topic has replication factor 1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
default.replication.factor=1
min.insync.replicas=1

# consumer groups start at once (no 3 s wait for more members)
group.initial.rebalance.delay.ms=0

# topics: the services create theirs explicitly; auto-created ones get Faust's default count
auto.create.topics.enable=true
num.partitions=$NUM_PARTITIONS
delete.topic.enable=true

# local disk: one day or 256 MiB per partition, 64 MiB segments
log.retention.hours=24
log.retention.bytes=268435456
log.segment.bytes=67108864
log.retention.check.interval.ms=60000

# a 2-core machine
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
  mv -f "$CONFIG.tmp" "$CONFIG"
}

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then
    local prev=""
    [[ -f "$VERSION_MARK" ]] && prev=$(<"$VERSION_MARK")
    if [[ -n "$prev" && "$prev" != "$KAFKA_VERSION" ]]; then
      if [[ "$(printf '%s\n%s\n' "$prev" "$KAFKA_VERSION" | sort -V | head -n 1)" == "$KAFKA_VERSION" ]]; then
        log "warning: $DATA_DIR was last run by Kafka $prev; $KAFKA_VERSION is older and may" \
          "refuse its metadata.version (then: $0 reset, which deletes all topics)"
      else
        log "note: $DATA_DIR was last run by Kafka $prev; upgrading it to $KAFKA_VERSION" \
          "(its metadata.version stays until kafka-features upgrade, which is fine here)"
      fi
    fi
    return 0
  fi
  local cluster_id
  cluster_id=$("$PYTHON" "$PROBE" cluster-id)
  log "formatting KRaft storage in $DATA_DIR (cluster id $cluster_id)"
  if ! "$JAVA" -Xmx256m -cp "$(<"$CLASSPATH_FILE")" \
      -Dlog4j2.configurationFile="$LOG4J2_CONFIG" -Dkafka.logs.dir="$LOG_DIR" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$CONFIG" \
      > "$LOG_DIR/format.log" 2>&1; then
    cat "$LOG_DIR/format.log" >&2
    die "formatting the KRaft storage failed (see above)"
  fi
}

# ---------------------------------------------------------------- commands

cmd_start() {
  validate_env
  need_python
  lock_state
  local pid
  if pid=$(find_pid); then
    local asked=${QW_KAFKA_PORT:-}
    use_started_ports
    if [[ -n "$asked" && "$asked" != "$KAFKA_PORT" ]]; then
      die "Kafka from $KAFKA_DIR already runs (pid $pid) on $HOST:$KAFKA_PORT, not on" \
        "QW_KAFKA_PORT=$asked: stop it first ($0 stop), or use another QW_STATE_DIR"
    fi
    if probe_ready --group-coordinator >/dev/null 2>&1; then
      log "Kafka already running (pid $pid) on $HOST:$KAFKA_PORT"
      return 0
    fi
    log "Kafka (pid $pid) is running but not ready yet; waiting"
    wait_ready "$pid"
    return 0
  fi
  if probe_ready >/dev/null 2>&1; then
    log "a Kafka broker already answers on $HOST:$KAFKA_PORT (not started from $KAFKA_DIR); using it"
    return 0
  fi
  local port
  for port in "$KAFKA_PORT" "$CONTROLLER_PORT"; do
    if ! port_free "$port"; then
      die "port $HOST:$port is taken by something else (not a Kafka broker answering there):
$(who_listens "$port")
stop it, or choose other ports with QW_KAFKA_PORT / QW_KAFKA_CONTROLLER_PORT"
    fi
  done
  find_java
  cmd_install
  write_config
  format_storage

  : > "$LOG_DIR/kafka.out"
  if [[ -f "$LOG_DIR/server.log" ]]; then
    LOG_START_LINE=$(( $(wc -l < "$LOG_DIR/server.log") + 1 ))
  fi
  # shellcheck disable=SC2086  # HEAP_OPTS is a list of JVM options on purpose
  setsid "$JAVA" $HEAP_OPTS -server \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$LOG4J2_CONFIG" -Dkafka.logs.dir="$LOG_DIR" \
    -cp "$(<"$CLASSPATH_FILE")" \
    kafka.Kafka "$CONFIG" \
    >> "$LOG_DIR/kafka.out" 2>&1 < /dev/null 9>&- &
  pid=$!
  echo "$pid" > "$PID_FILE"
  log "started Kafka $KAFKA_VERSION (pid $pid), waiting up to ${START_TIMEOUT}s for $HOST:$KAFKA_PORT ..."
  wait_ready "$pid"
}

replication_hint() {  # after start: qwatch's defaults need three brokers
  if [[ "${QW_KAFKA_REPLICATION_FACTOR:-}" != 1 || "${QW_KAFKA_MIN_INSYNC_REPLICAS:-}" != 1 ]]; then
    log "hint: the local broker is a single node; run qwatch commands against it with" \
      "QW_KAFKA_REPLICATION_FACTOR=1 QW_KAFKA_MIN_INSYNC_REPLICAS=1 (the defaults, 3 and 2," \
      "need three brokers)"
  fi
}

wait_ready() {  # pid
  local pid=$1 deadline=$(( SECONDS + START_TIMEOUT )) t_start=$EPOCHREALTIME info
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      show_log_tail 60
      die "the Kafka broker (pid $pid) exited during startup (logs: $LOG_DIR)"
    fi
    if info=$(probe_ready --timeout 2 --group-coordinator 2>/dev/null); then
      local elapsed
      elapsed=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
      log "Kafka $KAFKA_VERSION ready on $HOST:$KAFKA_PORT after ${elapsed}s (pid $pid, $info)"
      echo "$KAFKA_VERSION" > "$VERSION_MARK"
      return 0
    fi
    sleep 0.25
  done
  show_log_tail 60
  log "Kafka did not become ready within ${START_TIMEOUT}s (raise QW_KAFKA_START_TIMEOUT?); stopping it"
  stop_pid "$pid"
  die "Kafka failed to start (logs: $LOG_DIR)"
}

stop_pid() {
  local pid=$1 deadline
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$(( SECONDS + STOP_TIMEOUT ))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "Kafka (pid $pid) still alive after ${STOP_TIMEOUT}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$PID_FILE"
}

cmd_stop() {
  lock_state
  local pid t0=$SECONDS
  if ! pid=$(find_pid); then
    rm -f "$PID_FILE"
    log "Kafka is not running (state dir $KAFKA_DIR)"
    return 0
  fi
  log "stopping Kafka (pid $pid) ..."
  stop_pid "$pid"
  log "Kafka stopped in $((SECONDS - t0))s"
  # A deleted topic's files are renamed <topic>-<partition>.<id>-delete and removed only
  # file.delete.delay.ms (a minute) later: a broker stopped sooner (the demo deletes its
  # run's topics, then stops the broker it started) left them on disk. It is stopped: they go.
  local gone
  gone=$(find "$DATA_DIR" -mindepth 1 -maxdepth 1 -type d -name '*-delete' -print -exec rm -rf -- {} + 2>/dev/null | wc -l)
  if (( gone > 0 )); then
    log "removed the files of $gone deleted topic partition(s) the broker had not removed yet"
  fi
}

cmd_status() {
  need_python
  local pid info
  if pid=$(find_pid); then
    use_started_ports
    if info=$(probe_ready 2>/dev/null); then
      echo "running: pid $pid, Kafka $KAFKA_VERSION, bootstrap $HOST:$KAFKA_PORT, $info, state $KAFKA_DIR"
      return 0
    fi
    echo "running but not answering: pid $pid, bootstrap $HOST:$KAFKA_PORT (see: $0 logs)"
    return 1
  fi
  if info=$(probe_ready 2>/dev/null); then
    echo "not started from $KAFKA_DIR, but a broker answers on $HOST:$KAFKA_PORT ($info)"
    return 0
  fi
  echo "stopped (state $KAFKA_DIR)"
  return 3
}

cmd_logs() {
  local follow=0 n=100 arg
  for arg in "$@"; do
    case "$arg" in
      -f|--follow) follow=1 ;;
      *[!0-9]*) die "usage: $0 logs [-f] [N]" ;;
      *) n=$arg ;;
    esac
  done
  [[ -f "$LOG_DIR/server.log" ]] || die "no log yet: $LOG_DIR/server.log"
  if (( follow )); then
    exec tail -n "$n" -F "$LOG_DIR/server.log"
  fi
  tail -n "$n" "$LOG_DIR/server.log"
}

cmd_restart() {
  if find_pid > /dev/null; then
    # the same broker again: on its ports, unless the environment names others
    local client=${QW_KAFKA_PORT:-} controller=${QW_KAFKA_CONTROLLER_PORT:-}
    use_started_ports
    KAFKA_PORT=${client:-$KAFKA_PORT}
    CONTROLLER_PORT=${controller:-$CONTROLLER_PORT}
    validate_env
  fi
  cmd_stop
  cmd_start
}

cmd_reset() {
  cmd_stop
  log "deleting $DATA_DIR"
  rm -rf -- "$DATA_DIR" "$VERSION_MARK"
}

usage() { sed -n '2,/^set -euo pipefail/{/^#/s/^# \{0,1\}//p}' "$0"; }

main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) cmd_install ;;
    start) cmd_start; replication_hint ;;
    stop) cmd_stop ;;
    restart) cmd_restart; replication_hint ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    reset) cmd_reset ;;
    help|-h|--help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
