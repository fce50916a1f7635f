#!/usr/bin/env bash
# Check QualityWatch's Prometheus artefacts with promtool:
#   1. promtool check config  prometheus.yml and prometheus.compose.yml (and the rules they load)
#   2. promtool check rules   rules/*.yml
#   3. promtool test rules    tests/*.yml (unit tests of every alerting rule)
# Exits non-zero on the first failing step.
#
# promtool comes with Debian's prometheus package:
#   apt-get install -y --no-install-recommends prometheus
# Environment: PROMTOOL  promtool binary to use (default: promtool on PATH)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
PROMTOOL=${PROMTOOL:-promtool}

die() { printf 'check.sh: ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PROMTOOL" >/dev/null 2>&1 || die "promtool not found (PROMTOOL=$PROMTOOL). Install it with:
    apt-get install -y --no-install-recommends prometheus
(Debian's package ships prometheus and promtool), or set PROMTOOL to its path."

cd "$SCRIPT_DIR"
shopt -s nullglob
configs=(prometheus.yml prometheus.compose.yml)
rules=(rules/*.yml)
tests=(tests/*.yml)
(( ${#rules[@]} > 0 )) || die "no rule files in $SCRIPT_DIR/rules"
(( ${#tests[@]} > 0 )) || die "no rule unit tests in $SCRIPT_DIR/tests"

step() {
  printf '== %s\n' "$*"
  "$@" || die "failed: $*"
}

"$PROMTOOL" --version 2>&1 | head -n 1
step "$PROMTOOL" check config "${configs[@]}"
step "$PROMTOOL" check rules "${rules[@]}"
step "$PROMTOOL" test rules "${tests[@]}"
echo "check.sh: all Prometheus checks passed"
