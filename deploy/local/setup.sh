#!/usr/bin/env bash
# Install what QualityWatch needs on this machine. Idempotent; fast when already done.
#
#   deploy/local/setup.sh          the virtualenv with the project (for the demo)
#   deploy/local/setup.sh --test   also the test tools: PostgreSQL, Prometheus (promtool)
#                                  and Alertmanager (amtool) from Debian's packages,
#                                  Chromium (the wall's browser test drives it),
#                                  docker-compose (v1) to validate the compose file, the
#                                  Kafka broker's jars (~/.m2), and kustomize (built from
#                                  its Go module into .venv/bin) to render deploy/kubernetes
#
# Downloads are cached in the user's home (pip's cache, ~/.m2), never in the repository.
set -euo pipefail

REPO=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO"
PYTHON=${PYTHON:-python3}
log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PYTHON" >/dev/null || die "$PYTHON not found: install Python 3.11 or newer"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "Python 3.11 or newer is needed, $PYTHON is $("$PYTHON" -V 2>&1)"

extras="dev"
test_tools=0
for arg in "$@"; do
  case "$arg" in
    --test) test_tools=1; extras="dev,bench" ;;
    *) die "unknown option $arg" ;;
  esac
done

if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.qw-installed-$extras
built() { compgen -G 'shared/stats/_lattice*.so' >/dev/null && compgen -G 'shared/_rfc3339*.so' >/dev/null; }
# can it be built? a C compiler and Python's headers (Debian's python3 needs python3-dev)
buildable() {
  command -v cc >/dev/null && .venv/bin/python -c \
    'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'
}
# (again when a C module is missing and it can be built now: setup.py builds them)
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" || setup.py -nt "$stamp" \
      || shared/stats/_lattice.c -nt "$stamp" || shared/_rfc3339.c -nt "$stamp" ]] \
      || { ! built && buildable; }; then
  log "installing the project and its [$extras] extras into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  touch "$stamp"
fi
# the C modules (setup.py: the exact CUSUM ARL, event times), built in place by the install:
# optional, so a failed build does not stop it, and pip -q does not show why
built || log "warning: shared/stats/_lattice.c and shared/_rfc3339.c were not compiled (they" \
  "need a C compiler and Python's headers: apt-get install gcc python3-dev): CUSUM designs" \
  "run several times slower, and ingest reads event times through pydantic"

if (( test_tools )); then
  missing=()
  [[ -x /usr/lib/postgresql/15/bin/postgres ]] || ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
    || missing+=(postgresql)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null && command -v amtool >/dev/null \
    || missing+=(prometheus-alertmanager)
  command -v chromium >/dev/null || missing+=(chromium)
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  # kustomize renders deploy/kubernetes for tests/deploy/test_kubernetes.py. Pinned, built
  # from its Go module (Go's build cache makes a rebuild quick); v5.7 builds with Go >= 1.22.
  KUSTOMIZE_VERSION=v5.7.1
  kustomize_ok() { [[ $(.venv/bin/kustomize version 2>/dev/null) == "$KUSTOMIZE_VERSION" ]]; }
  kustomize_ok || command -v go >/dev/null || missing+=(golang-go)
  if (( ${#missing[@]} )); then
    if [[ $(id -u) -ne 0 ]]; then
      die "missing ${missing[*]}: run as root, or sudo apt-get install -y ${missing[*]}"
    fi
    log "installing ${missing[*]} from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian's prometheus packages may start daemons on machines with systemd; tests run
    # their own (deploy/local/prometheus.sh, alertmanager.sh), so make sure none is left
    # listening on the default ports.
    if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
      systemctl disable --now prometheus prometheus-node-exporter prometheus-alertmanager \
        >/dev/null 2>&1 || true
    fi
  fi
  if ! kustomize_ok; then
    log "building kustomize $KUSTOMIZE_VERSION into .venv/bin"
    GOBIN="$REPO/.venv/bin" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  fi
  bash deploy/local/kafka.sh install
fi
log "ready"
