"""roles/stack_cli/files/jina_stack.py (installed as /usr/local/bin/jina-stack): command line,
exit codes, the API key lookup and the warmup request, against a small local HTTP server.
The systemd side runs on the molecule test host (molecule/default/tests/test_stack_cli.py)."""

from __future__ import annotations

import base64
import importlib.util
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest
from fake_http import JsonHandler, serve

SCRIPT = Path(__file__).resolve().parents[3] / "roles/stack_cli/files/jina_stack.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("jina_stack", SCRIPT)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cli = _load()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "no action given"),
        (["launch"], "unknown action 'launch'"),
        (["start", "everything"], "unknown target 'everything'"),
        (["start", "all", "now"], "too many arguments"),
        (["logs", "--lines"], "--lines needs a number"),
        (["status", "--verbose"], "unknown option --verbose"),
    ],
)
def test_usage_errors_exit_2_and_say_why(argv, message, capsys):
    assert cli.main(argv) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert "ACTION" in err  # the usage follows


def test_the_sudoed_program_runs_its_interpreter_isolated():
    """Run as root through sudo: nothing planted next to it, nor PYTHON* variables, may be
    imported or honoured (python3 -I: no script directory or user site on sys.path)."""
    assert SCRIPT.read_text().splitlines()[0] == "#!/usr/bin/python3 -I"


def test_help_exits_0_and_lists_every_action_and_exit_code(capsys):
    assert cli.main(["help"]) == 0
    out = capsys.readouterr().out
    for action in cli.ACTIONS:
        assert action in out
    assert "--since WHEN" in out
    for code, meaning in ((3, "not healthy"), (4, "needs root"), (5, "doctor found a problem")):
        assert f"{code} " in out
        assert meaning in out


def test_target_defaults_to_all():
    assert cli.parse_args(["status"])["target"] == "all"
    assert cli.parse_args(["logs", "jina", "-n", "5", "-f"]) | {} == {
        "action": "logs",
        "target": "jina",
        "lines": 5,
        "follow": True,
        "timeout": None,
        "since": "1h",
    }


def config(tmp_path: Path, url: str = "http://127.0.0.1:9", qdrant: bool = True) -> dict:
    env_file = tmp_path / "jina-embeddings.env"
    env_file.write_text('# JINA_OPENAI_MODEL_ID is not set\nJINA_OPENAI_API_KEYS="k1,k2"\n')
    return {
        "warmup_timeout": 2,
        "qdrant": {"managed": qdrant, "unit": "qdrant.service", "url": url, "port": 6333},
        "jina": {
            "managed": True,
            "unit": "jina-x.service",
            "url": url,
            "port": 4000,
            "env_file": str(env_file),
        },
    }


def test_components_run_qdrant_first_and_refuse_what_the_host_does_not_run(tmp_path):
    assert cli.components(config(tmp_path), "all") == ["qdrant", "jina"]
    assert cli.components(config(tmp_path, qdrant=False), "all") == ["jina"]
    with pytest.raises(cli.UsageError, match="qdrant is not managed on this host"):
        cli.components(config(tmp_path, qdrant=False), "qdrant")


def test_api_key_is_the_first_of_the_environment_file(tmp_path):
    assert cli.api_key(config(tmp_path)) == "k1"
    assert cli.api_key({"jina": {"env_file": str(tmp_path / "missing")}}) == ""


class FakeService(JsonHandler):
    ready_status = 200
    seen: ClassVar[list[dict]] = []

    def do_GET(self) -> None:
        self.send_json(self.ready_status, {"status": "ready", "model": "m-1"})

    def do_POST(self) -> None:
        body = self.read_json()
        type(self).seen.append({"auth": self.headers.get("Authorization"), "body": body})
        vector = base64.b64encode(struct.pack("<3f", 0.1, 0.2, 0.3)).decode()
        self.send_json(200, {"data": [{"index": 0, "embedding": vector}]})


@pytest.fixture
def service() -> Iterator[str]:
    FakeService.seen = []
    FakeService.ready_status = 200
    with serve(FakeService) as server:
        yield server.url


def test_warmup_sends_one_base64_request_with_the_key(tmp_path, service, capsys):
    assert cli.warmup(config(tmp_path, service), 5) == cli.EXIT_OK
    assert FakeService.seen == [
        {
            "auth": "Bearer k1",
            "body": {"input": [cli.WARMUP_INPUT], "model": "m-1", "encoding_format": "base64"},
        }
    ]
    assert "3 dims" in capsys.readouterr().out


def test_warmup_of_a_service_that_never_gets_ready_exits_3(tmp_path, service, monkeypatch):
    FakeService.ready_status = 503
    monkeypatch.setattr(cli, "unit_state", lambda config, name: ("activating", {}))
    assert cli.warmup(config(tmp_path, service), 1.5) == cli.EXIT_UNHEALTHY
    assert FakeService.seen == []


def test_health_exits_3_when_nothing_answers(tmp_path, capsys):
    assert cli.health(config(tmp_path), ["qdrant", "jina"]) == cli.EXIT_UNHEALTHY
    assert "NOT READY" in capsys.readouterr().out
