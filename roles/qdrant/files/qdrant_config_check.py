#!/usr/bin/env python3
"""Check a rendered Qdrant config.yaml before it is written.

Qdrant silently ignores keys it does not know, so a typo in a configuration
key is a silent misconfiguration. This check fails instead: the file must be
valid YAML whose top level is a mapping, and every key path in it must be one
Qdrant reads (the list is kept in roles/qdrant/vars/main.yml). An entry ending
in ".*" accepts anything below it.

Runs on the Ansible controller with the controller's Python (PyYAML is an
ansible-core dependency):

    qdrant_config_check.py --known-key-paths '["log_level", ...]' FILE|-
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys

import yaml


def key_paths(node: object, prefix: str = "") -> list[str]:
    """Leaf key paths of a nested mapping ("a.b.c"); a non-empty mapping is not a leaf."""
    if isinstance(node, dict) and node:
        paths: list[str] = []
        for key, value in node.items():
            if not isinstance(key, str):
                raise ValueError(f"key {key!r} under '{prefix or '<top>'}' is not a string")
            paths.extend(key_paths(value, f"{prefix}.{key}" if prefix else key))
        return paths
    return [prefix]


def is_known(path: str, known: list[str]) -> bool:
    for entry in known:
        if entry.endswith(".*"):
            base = entry[:-2]
            if path == base or path.startswith(base + "."):
                return True
        elif path == entry:
            return True
        # A whole section set to null or {} (e.g. optimizers_overwrite: null).
        if entry.startswith(path + "."):
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known-key-paths", required=True, help="JSON list of key paths")
    parser.add_argument("--name", default="config.yaml", help="name used in messages")
    parser.add_argument("file", help="file to check, - for stdin")
    args = parser.parse_args(argv)

    known = json.loads(args.known_key_paths)
    try:
        if args.file == "-":
            data = yaml.safe_load(sys.stdin.read())
        else:
            with open(args.file, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        print(f"{args.name} is not valid YAML: {error}", file=sys.stderr)
        return 1
    if not isinstance(data, dict):
        print(f"{args.name} must be a YAML mapping, got {type(data).__name__}", file=sys.stderr)
        return 1
    try:
        paths = key_paths(data)
    except ValueError as error:
        print(f"{args.name}: {error}", file=sys.stderr)
        return 1

    unknown = [path for path in paths if not is_known(path, known)]
    if not unknown:
        return 0
    plain = [entry for entry in known if not entry.endswith(".*")]
    for path in unknown:
        hint = difflib.get_close_matches(path, plain, n=1)
        suggestion = f" (did you mean '{hint[0]}'?)" if hint else ""
        print(f"{args.name}: unknown Qdrant key '{path}'{suggestion}", file=sys.stderr)
    print(
        "Qdrant ignores unknown keys silently. Fix the key in qdrant_config_extra (or the role "
        "variable that sets it); if Qdrant really has this key, add it to "
        "_qdrant_config_key_paths in roles/qdrant/vars/main.yml.",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
