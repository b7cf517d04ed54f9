"""Configuration: the strict YAML subset parser, key handling, env overrides, bad configs."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import PYTHON, StandinFactory, base_config


def to_nice_yaml(tree: Any, indent: int = 4, sort_keys: bool = True) -> str:
    """What Ansible's `to_nice_yaml` filter emits for plain data (same libyaml dumper and call).

    Ansible is not imported here: importing it patches `sys.intern` for the whole process,
    which breaks torch's dynamo import in the other suites sharing this pytest run.
    `test_to_nice_yaml_matches_ansible` proves the equivalence in a subprocess.
    """
    return yaml.dump(
        tree,
        Dumper=yaml.CSafeDumper,
        indent=indent,
        allow_unicode=True,
        default_flow_style=False,
        sort_keys=sort_keys,
    )


def test_to_nice_yaml_matches_ansible() -> None:
    tree = {
        "service": {"host": "127.0.0.1", "http_port": 6333, "api_key": None, "grpc_port": None},
        "storage": {"storage_path": "/var/lib/qdrant/storage", "on_disk_payload": True},
        "telemetry_disabled": True,
        "log_level": "INFO",
        "list": ["a", 1, {"b": "c: d"}, []],
        "quoted": "yes",
        "empty": {},
        "": "empty key",
    }
    script = (
        "import json, sys\n"
        "from ansible.plugins.filter.core import to_nice_yaml\n"
        "tree, indent = json.loads(sys.stdin.read())\n"
        "sys.stdout.write(to_nice_yaml(tree, indent=indent, sort_keys=True))\n"
    )
    for indent in (2, 4):
        ansible = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps([tree, indent]),
            capture_output=True,
            text=True,
            check=True,
        )
        assert ansible.stdout == to_nice_yaml(tree, indent=indent, sort_keys=True)


REALISTIC = """\
# Managed by Ansible
cluster:
    enabled: false
log_level: INFO
service:
    api_key: null
    enable_cors: false
    enable_tls: false
    grpc_port: null
    host: 127.0.0.1   # loopback only
    http_port: 6333
    max_request_size_mb: 32
    read_only_api_key: ~
storage:
    hnsw_index:
        on_disk: true
    on_disk_payload: true
    optimizers: {}
    snapshots_path: '/var/lib/qdrant/snapshots'
    storage_path: "/var/lib/qdrant/storage"
telemetry_disabled: true
tls:
    cert: ./tls/cert.pem
extra:
- a
-   b: 1
    c:
    - 1.5
    - -2
- []
-
    - nested
"""


def test_realistic_config_parses(standin: ModuleType) -> None:
    parsed = standin.parse_yaml(REALISTIC, "config.yaml")
    assert parsed == yaml.safe_load(REALISTIC)
    assert parsed["service"]["host"] == "127.0.0.1"
    assert parsed["service"]["api_key"] is None
    assert parsed["storage"]["optimizers"] == {}
    assert parsed["extra"] == ["a", {"b": 1, "c": [1.5, -2]}, [], ["nested"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 'it''s'\n", {"a": "it's"}),
        ('a: "tab\\there \\u00e9 \\x41"\n', {"a": "tab\there é A"}),
        ("a: x#y\n", {"a": "x#y"}),
        ("a: 0x1F\n", {"a": 31}),
        ("a: 1.0e+3\n", {"a": 1000.0}),
        ("a: 1e5\n", {"a": "1e5"}),
        ("a: 0777\n", {"a": "0777"}),
        ("a: -.inf\n", {"a": -math.inf}),
        ("a: yes\n", {"a": "yes"}),
        ("a: True\n", {"a": True}),
        ("a:\n", {"a": None}),
        ("a: 'one\n    two\n\n    three'\n", {"a": "one two\nthree"}),
        ('a: "x\\\n    y"\n', {"a": "xy"}),
        ("a: plain\n    continued\n", {"a": "plain continued"}),
        ("---\na: 1\n...\n", {"a": 1}),
        ("", None),
        ("# only a comment\n", None),
    ],
)
def test_scalars(standin: ModuleType, text: str, expected: Any) -> None:
    assert standin.parse_yaml(text, "c.yaml") == expected


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a: 1\n  b: 2\n", 2, "mapping values are not allowed"),
        ("a:\n    b: 1\n   c: 2\n", 3, "indentation"),
        ("a: 1\na: 2\n", 2, "duplicate key"),
        ("a: {b: 1}\n", 1, "flow collections"),
        ("a: [1, 2]\n", 1, "flow collections"),
        ("a: &x 1\n", 1, "anchors"),
        ("a: *x\n", 1, "anchors"),
        ("a: !!str 1\n", 1, "tags"),
        ("a: |\n  text\n", 1, "block scalars"),
        ("a: 'open\n", 1, "unterminated"),
        ("a: b: c\n", 1, "mapping values are not allowed"),
        ("a:\n\t- 1\n", 2, "tab"),
        ("a: 1\n---\nb: 2\n", 2, "one YAML document"),
        ("a: '1' x\n", 1, "unexpected text"),
        ('a: "\\q"\n', 1, "unknown escape"),
        ("- a\nb: 1\n", 2, "unexpected content"),
    ],
)
def test_errors_name_file_and_line(standin: ModuleType, text: str, line: int, message: str) -> None:
    with pytest.raises(standin.ConfigError, match=rf"^conf\.yaml:{line}: .*{message}"):
        standin.parse_yaml(text, "conf.yaml")


_keys = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters="\x85"),
    max_size=12,
)
# Fragments that exercise quoting, escaping and line folding in long strings.
_PIECES = ["word", "x", " ", "  ", "\n", "\n\n", "\t", "#", ": ", "'", '"', "\\", "- ", "é", "\x07"]
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=True)
    | st.text(max_size=120)
    | st.sampled_from(["yes", "no", "on", "0777", "09", "1e5", "0x1F", "1_0", "~", "- a", "a: b"])
    | st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)
)
_trees = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=4),
    max_leaves=16,
)


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.dictionaries(_keys, _trees, max_size=5), st.sampled_from([2, 4]))
def test_parser_agrees_with_pyyaml_on_to_nice_yaml_output(
    standin: ModuleType, tree: dict[str, Any], indent: int
) -> None:
    # The Qdrant role renders its config with to_nice_yaml(indent=2, sort_keys=true).
    text = to_nice_yaml(tree, indent=indent, sort_keys=True)
    assert standin.parse_yaml(text, "generated.yaml") == yaml.safe_load(text)


def test_settings_defaults_file_and_env(standin: ModuleType, tmp_path: Path) -> None:
    defaults = standin.load_settings(None, {}, cwd="/srv")
    assert (defaults.host, defaults.http_port) == ("0.0.0.0", 6333)
    assert defaults.storage_path == "/srv/storage"
    assert defaults.snapshots_path == "/srv/snapshots"
    assert defaults.api_key is None
    config = tmp_path / "config.yaml"
    config.write_text(
        to_nice_yaml(
            {
                "log_level": "DEBUG",
                "service": {"host": "127.0.0.1", "http_port": 7000, "api_key": "from-file"},
                "storage": {"storage_path": "data", "snapshots_path": "/abs/snaps"},
            }
        )
    )
    env = {
        "QDRANT__SERVICE__API_KEY": "from-env",
        "QDRANT__SERVICE__READ_ONLY_API_KEY": "ro",
        "QDRANT__SERVICE__HTTP_PORT": "7001",
        "QDRANT__STORAGE__STORAGE_PATH": "./other",
        "QDRANT__LOG_LEVEL": "warn",
        "UNRELATED": "x",
    }
    loaded = standin.load_settings(str(config), env, cwd="/work")
    assert loaded.api_key == "from-env"
    assert loaded.read_only_api_key == "ro"
    assert loaded.http_port == 7001
    assert loaded.host == "127.0.0.1"
    assert loaded.storage_path == "/work/other"
    assert loaded.snapshots_path == "/abs/snaps"
    assert loaded.log_level == "warn"


def test_api_key_text_is_kept_verbatim(standin: ModuleType, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("service:\n    api_key: 0x10\n    read_only_api_key: 1.50\n")
    loaded = standin.load_settings(str(config), {}, cwd="/")
    assert (loaded.api_key, loaded.read_only_api_key) == ("0x10", "1.50")


def test_other_qdrant_keys_are_accepted_and_typos_warned(
    standin: ModuleType, tmp_path: Path
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(REALISTIC + "servcie:\n    http_port: 1\n")
    loaded = standin.load_settings(str(config), {}, cwd="/")
    warnings = [message for level, message in loaded.notes if level >= 30]
    assert sorted(warnings) == [
        "unknown configuration key `extra` (real Qdrant ignores it)",
        "unknown configuration key `servcie` (real Qdrant ignores it)",
    ]


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("service:\n    http_port: 'x'\n", {}, r"config\.yaml: `service\.http_port` must be an"),
        ("service:\n    http_port: 70000\n", {}, "from 0 to 65535"),
        ("service: 5\n", {}, "`service` must be a mapping"),
        ("storage:\n    storage_path: []\n", {}, "must be a string"),
        ("", {"QDRANT__SERVICE__HTTP_PORT": "abc"}, "QDRANT__SERVICE__HTTP_PORT"),
    ],
)
def test_bad_values_are_rejected(
    standin: ModuleType, tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    with pytest.raises(standin.ConfigError, match=message):
        standin.load_settings(str(config), env, cwd="/")


def test_bad_config_fails_the_process_clearly(qdrant_binary: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("service:\n    host: 127.0.0.1\n     http_port: 6333\n")
    out = subprocess.run(
        [PYTHON, "-I", str(qdrant_binary), "--config-path", str(config)],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert f"configuration error: {config}:3:" in out.stderr
    assert not (tmp_path / "storage").exists()


def test_missing_config_file_fails(qdrant_binary: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [PYTHON, "-I", str(qdrant_binary), "--config-path", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=20,
        cwd=tmp_path,
    )
    assert out.returncode != 0
    assert "nope.yaml: cannot read the configuration file" in out.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_running_process_honours_file_and_env(standin_factory: StandinFactory) -> None:
    port = _free_port()
    config = base_config(http_port=1, api_key="file-key")
    config["storage"] = {"storage_path": "./data/st", "snapshots_path": "snaps"}
    server = standin_factory(
        config=config,
        env={"QDRANT__SERVICE__HTTP_PORT": str(port), "QDRANT__SERVICE__API_KEY": "env-key"},
    )
    assert server.port == port
    assert httpx.get(f"{server.url}/collections").status_code == 401
    assert httpx.get(f"{server.url}/collections", headers={"api-key": "file-key"}).is_error
    response = httpx.get(f"{server.url}/collections", headers={"api-key": "env-key"})
    assert response.status_code == 200
    # Relative storage paths resolve against the working directory, as Qdrant does.
    assert (server.workdir / "data" / "st").is_dir()
    assert (server.workdir / "snaps").is_dir()
    assert "stand-in for tests" in server.log()


def test_log_level_is_honoured(standin_factory: StandinFactory) -> None:
    quiet = standin_factory(
        env={"QDRANT__LOG_LEVEL": "warn", "QDRANT__SERVICE__HTTP_PORT": str(_free_port())}
    )
    httpx.get(f"{quiet.url}/collections")
    assert " INFO " not in quiet.log()
    assert " WARNING " in quiet.log()  # the stand-in banner
    config = base_config()
    config["log_level"] = "debug"
    chatty = standin_factory(config=config)
    assert "DEBUG qdrant::standin: key `service.grpc_port` accepted" in chatty.log()
