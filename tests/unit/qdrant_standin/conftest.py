"""Fixtures for the Qdrant stand-in's conformance tests.

The stand-in is exercised the way the roles use it: built into a release-shaped tarball by
build_release.py, extracted, configured by a YAML file written like Ansible's
`to_nice_yaml`, and started as a process. Every process started here is killed at the end.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml
from qdrant_client import QdrantClient

REPO = Path(__file__).resolve().parents[3]
STANDIN_DIR = REPO / "tests" / "qdrant-standin"
RELEASE_VERSION = "1.15.5"
# The bare Debian 12 interpreter when there is one: proves the program needs nothing else.
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
LISTEN_RE = re.compile(r"Qdrant HTTP listening on \S+:(\d+)")


def load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def nice_yaml(data: Any) -> str:
    """What Ansible's to_nice_yaml writes (PyYAML, indent 4, block style)."""
    return yaml.dump(data, indent=4, allow_unicode=True, default_flow_style=False)


@pytest.fixture(autouse=True)
def _no_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback requests must not be sent to a proxy configured for the package mirrors."""
    for name in ("http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture(scope="session")
def standin() -> ModuleType:
    """The stand-in program imported as a module (for in-process parser tests)."""
    return load_module("qdrant_standin_program", STANDIN_DIR / "qdrant.py")


@pytest.fixture(scope="session")
def builder() -> ModuleType:
    return load_module("qdrant_standin_build_release", STANDIN_DIR / "build_release.py")


@pytest.fixture(scope="session")
def release_tarball(builder: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("release")
    return builder.build_release(RELEASE_VERSION, out_dir, "x86_64")


@pytest.fixture(scope="session")
def qdrant_binary(release_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("bin")
    with tarfile.open(release_tarball) as tar:
        tar.extractall(target, filter="data")
    binary = target / "qdrant"
    assert os.access(binary, os.X_OK)
    return binary


class Standin:
    """One stand-in server (its storage survives restarts)."""

    def __init__(
        self, binary: Path, workdir: Path, config: dict[str, Any], env: dict[str, str]
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.config = config
        self.env = env
        self.config_path = workdir / "config.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.starts = 0
        self.log_path = workdir / "qdrant-0.log"
        self.extra_args: list[str] = []  # e.g. --storage-snapshot FILE, for the next start
        self.write_config()

    def write_config(self) -> None:
        self.config_path.write_text(nice_yaml(self.config), encoding="utf-8")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage(self) -> Path:
        return self.workdir / self.config["storage"]["storage_path"]

    def start(self, timeout: float = 15.0) -> Standin:
        assert self.proc is None, "already running"
        self.starts += 1
        self.log_path = self.workdir / f"qdrant-{self.starts}.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **self.env}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    PYTHON,
                    "-I",
                    str(self.binary),
                    "--config-path",
                    str(self.config_path),
                    *self.extra_args,
                ],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"stand-in exited with {code}:\n{self.log()}")
            match = LISTEN_RE.search(self.log())
            if match or self.fixed_port:
                self.port = int(match.group(1)) if match else self.fixed_port
                try:
                    if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"stand-in not ready after {timeout}s:\n{self.log()}")

    @property
    def fixed_port(self) -> int:
        """The configured port, or 0 when the OS picks one (read from the log then)."""
        return int(self.env.get("QDRANT__SERVICE__HTTP_PORT", self.config["service"]["http_port"]))

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, as systemd does; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL: no chance to flush or compact anything."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def restart(self, hard: bool = False) -> Standin:
        if hard:
            self.kill()
        else:
            assert self.stop() == 0
        return self.start()

    def client(self, api_key: str | None = None) -> QdrantClient:
        return QdrantClient(
            url=self.url,
            api_key=api_key,
            https=False,
            check_compatibility=False,
            timeout=10,
        )

    def http(self, api_key: str | None = None) -> httpx.Client:
        headers = {"api-key": api_key} if api_key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


StandinFactory = Callable[..., Standin]


def base_config(**service: Any) -> dict[str, Any]:
    return {
        "log_level": "INFO",
        "service": {"host": "127.0.0.1", "http_port": 0, "grpc_port": None, **service},
        "storage": {"storage_path": "./storage", "snapshots_path": "./snapshots"},
        "telemetry_disabled": True,
    }


@pytest.fixture
def standin_factory(qdrant_binary: Path, tmp_path: Path) -> Iterator[StandinFactory]:
    """Make (and always clean up) stand-in servers: factory(start=True, env=..., **service)."""
    made: list[Standin] = []

    def make(
        start: bool = True,
        env: dict[str, str] | None = None,
        config: dict[str, Any] | None = None,
        **service: Any,
    ) -> Standin:
        workdir = tmp_path / f"node{len(made)}"
        workdir.mkdir()
        server = Standin(qdrant_binary, workdir, config or base_config(**service), env or {})
        made.append(server)
        return server.start() if start else server

    try:
        yield make
    finally:
        for server in made:
            server.kill()


@pytest.fixture
def qdrant(standin_factory: StandinFactory) -> Standin:
    """A fresh stand-in without an API key."""
    return standin_factory()


@pytest.fixture(scope="module")
def shared_qdrant(
    qdrant_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Standin]:
    """One stand-in per test module, for tests that use their own collections."""
    workdir = tmp_path_factory.mktemp("shared")
    server = Standin(qdrant_binary, workdir, base_config(), {})
    try:
        yield server.start()
    finally:
        server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
