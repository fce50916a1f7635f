"""Validate a Compose file against the Compose Specification's JSON schema.

What ``docker compose config`` does first, for machines without the compose plugin: read the
YAML (anchors and ``<<`` merge keys resolved), interpolate ``${VAR}`` forms from the
environment and a ``.env`` beside the file, validate against ``compose-spec.schema.json``
(JSON Schema draft 7), then check that ``depends_on`` and named volumes refer to things the
file defines.

    python deploy/docker/validate_compose.py [docker-compose.yml] [--schema PATH]

Exit 0 when valid, 1 with every problem listed otherwise, 2 on a usage or setup error.
Needs PyYAML and jsonschema.

The schema is vendored: ``compose-spec.schema.json`` is the compose-spec project's
``schema/compose-spec.json`` as shipped in the npm package ``dclint`` (``schemas/
compose.schema.json``); ``deploy/docker/check-compose.sh update-schema`` refreshes it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_SCHEMA = HERE / "compose-spec.schema.json"

# $$ | ${NAME} | ${NAME<op>word} | $NAME, where <op> is one of :- - :? ? :+ +
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a .env file (comments, blank lines and ``export`` allowed)."""
    out: dict[str, str] = {}
    if not path.is_file():
        return out
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


def interpolate(value: str, env: Mapping[str, str], where: str, errors: list[str]) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("named") or m.group("braced")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        if op is None:
            return current or ""
        unset_or_empty = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset_or_empty else str(current)
        if op.endswith("?"):
            if unset_or_empty:
                errors.append(f"{where}: required variable {name} is not set: {arg}")
                return ""
            return str(current)
        # + : the word when set (and non-empty for :+), else empty
        return "" if unset_or_empty else arg

    return _VAR.sub(sub, value)


def interpolate_tree(node: Any, env: Mapping[str, str], path: str, errors: list[str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env, path, errors)
    if isinstance(node, list):
        return [interpolate_tree(v, env, f"{path}[{i}]", errors) for i, v in enumerate(node)]
    if isinstance(node, dict):
        return {
            k: interpolate_tree(v, env, f"{path}.{k}" if path else str(k), errors)
            for k, v in node.items()
        }
    return node


def reference_errors(doc: Mapping[str, Any]) -> list[str]:
    """depends_on targets and named volumes that the file does not define."""
    errors: list[str] = []
    services = doc.get("services") or {}
    volumes = doc.get("volumes") or {}
    for name, svc in services.items():
        if not isinstance(svc, dict):
            continue
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else list(deps):
            if dep not in services:
                errors.append(f"services.{name}.depends_on: unknown service {dep!r}")
        for vol in svc.get("volumes") or []:
            if isinstance(vol, dict):
                if vol.get("type", "volume") != "volume":
                    continue
                source = vol.get("source")
            else:
                parts = str(vol).split(":")
                if len(parts) < 2:
                    continue  # anonymous volume: "/data"
                source = parts[0]
            if not source or source.startswith(("/", ".", "~")):
                continue  # a bind mount
            if source not in volumes:
                errors.append(f"services.{name}.volumes: named volume {source!r} is not declared")
    return errors


def validate(compose_file: Path, schema_file: Path) -> list[str]:
    import yaml
    from jsonschema import Draft7Validator

    doc = yaml.safe_load(compose_file.read_text(encoding="utf-8"))
    if not isinstance(doc, dict):
        return [f"{compose_file}: not a YAML mapping"]
    env = {**read_dotenv(compose_file.parent / ".env"), **os.environ}
    errors: list[str] = []
    doc = interpolate_tree(doc, env, "", errors)
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = Draft7Validator(schema)
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        errors.append(f"{where}: {err.message}")
    errors.extend(reference_errors(doc))
    return errors


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default="docker-compose.yml", type=Path)
    ap.add_argument("--schema", default=DEFAULT_SCHEMA, type=Path)
    args = ap.parse_args(argv)
    try:
        import jsonschema  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as exc:
        print(
            f"validate_compose.py: ERROR: {exc.name} is missing; install it with\n"
            "    pip install pyyaml jsonschema",
            file=sys.stderr,
        )
        return 2
    for f in (args.file, args.schema):
        if not f.is_file():
            print(f"validate_compose.py: ERROR: no such file: {f}", file=sys.stderr)
            return 2
    errors = validate(args.file, args.schema)
    if errors:
        print(f"validate_compose.py: {args.file} is INVALID:", file=sys.stderr)
        for e in errors:
            print(f"  - {e}", file=sys.stderr)
        return 1
    print(f"validate_compose.py: {args.file} is valid against the Compose Specification schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
