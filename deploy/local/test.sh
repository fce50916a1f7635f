#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, starts a private Kafka
# broker and PostgreSQL on their own ports and state directory, runs lint, types and every
# test, and stops what it started. Extra arguments go to pytest.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
bash deploy/local/setup.sh --test

# Private state and ports: a running demo (9092) is left alone. The directory must be
# traversable by the postgres user, hence /tmp rather than a clone under /root.
QW_STATE_DIR=$(mktemp -d /tmp/qw-test.XXXXXX)
chmod 755 "$QW_STATE_DIR"
export QW_STATE_DIR
export QW_KAFKA_PORT=${QW_TEST_KAFKA_PORT:-19092}
export QW_KAFKA_CONTROLLER_PORT=${QW_TEST_KAFKA_CONTROLLER_PORT:-19093}
export QW_KAFKA_BOOTSTRAP=127.0.0.1:$QW_KAFKA_PORT
# the broker is a single node: every topic the tests and services create gets one replica
export QW_KAFKA_REPLICATION_FACTOR=1 QW_KAFKA_MIN_INSYNC_REPLICAS=1
export QW_PG_PORT=${QW_TEST_PG_PORT:-15432}

cleanup() {
  bash deploy/local/kafka.sh stop || true
  bash deploy/postgres/postgres.sh stop >/dev/null 2>&1 || true
  rm -rf "$QW_STATE_DIR"
}
trap cleanup EXIT

bash deploy/local/kafka.sh start
QW_TEST_PG_URL=$(bash deploy/postgres/postgres.sh start)
export QW_TEST_PG_URL

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
PYTEST=(.venv/bin/pytest -q -p no:cacheprovider)
if [ $# -gt 0 ]; then
  echo "== pytest $*"
  "${PYTEST[@]}" --durations=30 "$@"
  exit
fi
# The unit tests use no service and share nothing: two processes (pytest-xdist). The rest
# share one broker, one PostgreSQL and the machine's two cores with the services they start,
# and some measure time: one at a time. Each run prints its slowest tests.
# Both run whatever the first gave, so one run shows every failure.
echo "== pytest tests/unit (two processes)"
unit=0
"${PYTEST[@]}" -n 2 --durations=15 tests/unit || unit=$?
echo "== pytest: integration, deploy and end-to-end tests"
rest=0
"${PYTEST[@]}" --durations=30 --ignore=tests/unit tests || rest=$?
if [ "$unit" -ne 0 ] || [ "$rest" -ne 0 ]; then
  echo "test.sh: pytest failed (unit tests: exit $unit; the others: exit $rest)" >&2
  exit 1
fi
