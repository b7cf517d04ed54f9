#!/usr/bin/env python3
"""Check a rendered jina-embeddings configuration file before it is written.

Runs on the host with the service's virtualenv (roles/jina_embeddings, template `validate:`):

    check-config.py env FILE        the EnvironmentFile
    check-config.py gunicorn FILE   the gunicorn configuration

env: every JINA_OPENAI_* key must be a field of the installed jina_openai Settings (the service
ignores unknown keys silently, so a typo would be a silent misconfiguration), every field must
appear (set, or as a "# KEY is not set" line: the role maps the settings one-to-one), and the
values must pass the service's own validation.
gunicorn: the file must be valid Python (it is imported by gunicorn at start).
"""

from __future__ import annotations

import ast
import os
import re
import sys

UNSET_LINE = re.compile(r"^#\s*([A-Z0-9_]+) is not set\b")


def check_env(path: str) -> list[str]:
    from dotenv import dotenv_values
    from jina_openai.settings import Settings
    from pydantic import ValidationError

    prefix = Settings.model_config.get("env_prefix", "")
    fields = {prefix + name.upper() for name in Settings.model_fields}
    values = dotenv_values(path)
    with open(path, encoding="utf-8") as handle:
        unset = {m.group(1) for line in handle if (m := UNSET_LINE.match(line.strip()))}

    errors = [
        f"{key}: not a setting of this jina-openai version"
        for key in sorted(set(values) | unset)
        if key not in fields
    ]
    errors += [
        f"{key}: a setting of jina-openai that the role does not write (add a role variable)"
        for key in sorted(fields - set(values) - unset)
    ]
    if errors:
        return errors

    for key in [k for k in os.environ if k.startswith(prefix)]:
        del os.environ[key]
    os.environ.update({k: v for k, v in values.items() if v is not None})
    try:
        Settings()
    except ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            errors.append(f"{prefix}{field.upper()}: {error['msg']}")
    return errors


def check_gunicorn(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    try:
        ast.parse(source, filename=path)
    except SyntaxError as exc:
        return [f"not valid Python: {exc}"]
    return []


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in {"env", "gunicorn"}:
        print("usage: check-config.py env|gunicorn FILE", file=sys.stderr)
        return 2
    kind, path = argv
    errors = check_env(path) if kind == "env" else check_gunicorn(path)
    for error in errors:
        # Messages name keys and rules, never values: the file holds the API keys.
        print(f"jina-embeddings {kind} file: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
