"""The `jina-openai` command line: flags onto Settings, provisioning wiring, gunicorn config."""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jina_openai import cli


def test_serve_flags_map_onto_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_OPENAI_MAX_QUEUED_TOKENS", "777")
    args = cli.build_parser().parse_args(
        [
            "serve",
            "--model",
            "/m",
            "--port",
            "5000",
            "--api-key",
            "a",
            "--api-key",
            "b",
            "--alias",
            "x",
            "--device",
            "auto",
            "--dtype",
            "bfloat16",
            "--no-truncate",
            "--max-batch-tokens",
            "2048",
            "--torch-threads",
            "3",
        ]
    )
    settings = cli.settings_from_args(args)
    assert settings.model_dir == Path("/m")
    assert settings.port == 5000
    assert settings.api_key_values() == ["a", "b"]
    assert settings.model_aliases == ["x"]
    assert (settings.device, settings.dtype) == ("auto", "bfloat16")
    assert settings.truncate_inputs is False
    assert settings.max_batch_tokens == 2048
    assert settings.torch_threads == 3
    assert settings.max_queued_tokens == 777  # not given as a flag: from the environment
    assert settings.host == "127.0.0.1"


def test_serve_refuses_invalid_settings(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["serve", "--model", "/m", "--port", "99999"]) == 2
    assert "port" in capsys.readouterr().err


@dataclass
class FakeReport:
    text: str

    def format(self) -> str:
        return self.text


@pytest.fixture
def fake_provisioning(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    module = types.ModuleType("jina_openai.models.provisioning")
    module.DEFAULT_REVISION = "pinned-rev"  # type: ignore[attr-defined]

    def fetch_model(dest: Path, *, repo_id: str, revision: str, force: bool = False) -> Path:
        calls.append(("fetch", (dest, repo_id, revision, force)))
        return dest / "snapshot"

    def check_model(model_dir: Path, *, device: str = "cpu", dtype: str = "auto") -> FakeReport:
        calls.append(("check", (model_dir, device, dtype)))
        return FakeReport("all good")

    module.fetch_model = fetch_model  # type: ignore[attr-defined]
    module.check_model = check_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "jina_openai.models.provisioning", module)
    import jina_openai.models

    monkeypatch.setattr(jina_openai.models, "provisioning", module, raising=False)
    return calls


def test_fetch_model_wiring(
    fake_provisioning: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["fetch-model", "--dest", "/d"]) == 0
    assert fake_provisioning[-1] == (
        "fetch",
        (Path("/d"), "jinaai/jina-embeddings-v2-base-code", "pinned-rev", False),
    )
    assert (
        cli.main(
            ["fetch-model", "--dest", "/d", "--repo-id", "o/r", "--revision", "abc", "--force"]
        )
        == 0
    )
    assert fake_provisioning[-1] == ("fetch", (Path("/d"), "o/r", "abc", True))
    assert "/d/snapshot" in capsys.readouterr().out


def test_fetch_model_requires_dest() -> None:
    with pytest.raises(SystemExit):
        cli.main(["fetch-model"])


def test_check_model_wiring(
    fake_provisioning: list[tuple[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["check-model", "/m", "--device", "cpu", "--dtype", "float32"]) == 0
    assert fake_provisioning[-1] == ("check", (Path("/m"), "cpu", "float32"))
    assert capsys.readouterr().out.strip() == "all good"


def test_subcommand_errors_exit_1(
    monkeypatch: pytest.MonkeyPatch, fake_provisioning: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise FileNotFoundError("no such checkpoint")

    monkeypatch.setattr(sys.modules["jina_openai.models.provisioning"], "check_model", broken)
    assert cli.main(["check-model", "/m"]) == 1
    assert "no such checkpoint" in capsys.readouterr().err


def test_gunicorn_config_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JINA_OPENAI_MODEL_DIR", "/m")
    monkeypatch.setenv("JINA_OPENAI_HOST", "::1")
    monkeypatch.setenv("JINA_OPENAI_PORT", "4100")
    monkeypatch.setenv("JINA_OPENAI_MAX_REQUESTS", "500")
    sys.modules.pop("jina_openai.gunicorn_conf", None)
    conf = importlib.import_module("jina_openai.gunicorn_conf")
    try:
        assert conf.bind == ["[::1]:4100"]
        assert conf.workers == 1
        assert conf.worker_class == "jina_openai.http_server.BoundedUvicornWorker"
        assert conf.forwarded_allow_ips == ""  # no proxy is trusted unless configured
        assert conf.preload_app is False
        assert (conf.max_requests, conf.max_requests_jitter) == (500, 1000)
        assert conf.graceful_timeout == 30
        assert conf.timeout == 120
    finally:
        sys.modules.pop("jina_openai.gunicorn_conf", None)


def test_asgi_module_builds_nothing_on_import() -> None:
    module = importlib.import_module("jina_openai.asgi")
    assert "app" not in vars(module)
    with pytest.raises(AttributeError):
        module.something_else  # noqa: B018


def test_asgi_app_is_built_on_first_lookup_once(monkeypatch: pytest.MonkeyPatch) -> None:
    module = importlib.import_module("jina_openai.asgi")
    built: list[object] = []

    def build() -> object:
        built.append(object())
        return built[-1]

    monkeypatch.setattr(module, "create_app", build)
    module._app_of_this_process.cache_clear()
    try:
        assert not built
        first = module.app
        assert module.app is first
        assert built == [first]
    finally:
        module._app_of_this_process.cache_clear()
