#!/usr/bin/env bash
# Validate docker-compose.yml with the best real validators this machine has:
#
#   1. `docker compose config --quiet` (the Compose v2 plugin: the reference implementation).
#      When present it is the only check run.
#   2. Otherwise every one of these that is available, all of which must pass:
#      a. `docker-compose config --quiet` (Compose v1, Debian's docker-compose package):
#         interpolation, merge keys, service and volume references;
#      b. deploy/docker/validate_compose.py: the current Compose Specification JSON schema
#         (vendored in compose-spec.schema.json) plus reference checks; needs a Python with
#         PyYAML and jsonschema (the project's .venv by default).
#   Fails when none can run.
#
# Required variables (${VAR:?...}) that are unset get a placeholder for the check only, so
# validation does not need real secrets.
#
# usage: deploy/docker/check-compose.sh [COMPOSE_FILE]          (default: <repo>/docker-compose.yml)
#        deploy/docker/check-compose.sh update-schema [VERSION]  refresh compose-spec.schema.json
#                                                              from the npm package dclint
# Environment: QW_PYTHON  Python for validate_compose.py (default <repo>/.venv/bin/python, else python3)
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd)
SCHEMA="$SCRIPT_DIR/compose-spec.schema.json"
DCLINT_VERSION_DEFAULT=3.1.0

log() { printf 'check-compose.sh: %s\n' "$*" >&2; }
die() { printf 'check-compose.sh: ERROR: %s\n' "$*" >&2; exit 1; }

pick_python() {
  if [[ -n "${QW_PYTHON:-}" ]]; then
    echo "$QW_PYTHON"
  elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    echo "$REPO_ROOT/.venv/bin/python"
  else
    command -v python3 || true
  fi
}

update_schema() {
  local version=${1:-$DCLINT_VERSION_DEFAULT}
  command -v npm >/dev/null 2>&1 || die "npm not found (apt-get install -y npm)"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT  # $tmp is global on purpose: the trap runs after we return
  (cd "$tmp" && npm pack --silent "dclint@$version" >/dev/null) || die "npm pack dclint@$version failed"
  tar -xzf "$tmp"/dclint-*.tgz -C "$tmp" package/schemas/compose.schema.json \
    || die "dclint@$version ships no schemas/compose.schema.json"
  cp "$tmp/package/schemas/compose.schema.json" "$SCHEMA"
  log "updated $SCHEMA from dclint@$version"
}

placeholder_required_vars() {  # export a dummy value for every unset ${VAR:?...} / ${VAR?...}
  local file=$1 var
  while read -r var; do
    if [[ -z "${!var:-}" ]]; then
      export "$var=check-compose-placeholder"
      log "placeholder for required variable $var (validation only)"
    fi
  done < <(grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*:?\?' "$file" | sed -E 's/^\$\{([A-Za-z0-9_]+).*/\1/' | sort -u)
}

main() {
  if [[ "${1:-}" == update-schema ]]; then
    shift
    update_schema "$@"
    return 0
  fi
  [[ "${1:-}" != -h && "${1:-}" != --help ]] || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'; return 0; }

  local file=${1:-$REPO_ROOT/docker-compose.yml}
  [[ -f "$file" ]] || die "no compose file at $file"
  file=$(cd -- "$(dirname -- "$file")" && pwd)/$(basename -- "$file")
  placeholder_required_vars "$file"

  if docker compose version >/dev/null 2>&1; then
    log "validator: docker compose $(docker compose version --short 2>/dev/null || true)"
    docker compose -f "$file" config --quiet || die "docker compose config rejected $file"
    log "OK: $file is valid (docker compose)"
    return 0
  fi

  local ran=() python
  if command -v docker-compose >/dev/null 2>&1; then
    log "validator: $(docker-compose version --short 2>/dev/null || echo docker-compose) (Compose v1)"
    docker-compose -f "$file" config --quiet || die "docker-compose config rejected $file"
    ran+=("docker-compose v1")
  fi
  python=$(pick_python)
  if [[ -n "$python" ]] && "$python" -c 'import yaml, jsonschema' >/dev/null 2>&1; then
    log "validator: Compose Specification JSON schema ($python $SCRIPT_DIR/validate_compose.py)"
    "$python" "$SCRIPT_DIR/validate_compose.py" --schema "$SCHEMA" "$file" >&2 \
      || die "the Compose Specification schema rejected $file"
    ran+=("compose-spec schema")
  fi
  if (( ${#ran[@]} == 0 )); then
    die "no compose validator available. Install one of:
    the Docker Compose v2 plugin (docker compose),
    apt-get install -y docker-compose          (Compose v1, Debian),
    pip install pyyaml jsonschema              (into the Python in QW_PYTHON or .venv)"
  fi
  local joined
  joined=$(printf '%s, ' "${ran[@]}")
  log "OK: $file is valid (${joined%, })"
}

main "$@"
