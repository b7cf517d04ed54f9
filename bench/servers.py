"""Start and stop the servers under test, on 127.0.0.1 and a free port.

`ours`: the service exactly as the systemd unit runs it - gunicorn with
`jina_openai.gunicorn_conf` and uvicorn workers, configured by `JINA_OPENAI_*` variables, plus
the allocator variables the role puts into the unit. `naive`: bench/naive_server.py.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "bench-key"
READY_TIMEOUT_S = 600.0
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class RunningServer:
    name: str
    base_url: str
    pid: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


OURS_APP = "jina_openai.asgi:create_app()"


def ours_command(app: str = OURS_APP) -> list[str]:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return [str(gunicorn), "-c", "python:jina_openai.gunicorn_conf", app]


def ours_environment(
    model: Path, port: int, *, device: str, threads: int, settings: dict[str, str]
) -> dict[str, str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "JINA_OPENAI_MODEL_DIR": str(model),
        "JINA_OPENAI_MODEL_ID": "bench",
        "JINA_OPENAI_API_KEYS": API_KEY,
        "JINA_OPENAI_HOST": "127.0.0.1",
        "JINA_OPENAI_PORT": str(port),
        "JINA_OPENAI_DEVICE": device,
        "JINA_OPENAI_TORCH_THREADS": str(threads),
        "JINA_OPENAI_LOG_LEVEL": "warning",
    }
    env.update(settings)
    return env


@contextmanager
def serve(
    kind: str,
    model: Path,
    *,
    device: str,
    threads: int,
    settings: dict[str, str] | None = None,
    log: Path | None = None,
    app: str = OURS_APP,
    nofile: int | None = None,
    cpus: Collection[int] | None = None,
) -> Iterator[RunningServer]:
    """Run `ours` (settings: extra environment; `app`: the gunicorn app, e.g. the torture's
    fault-injecting one) or `naive` until the block ends; `nofile`: RLIMIT_NOFILE (soft and
    hard) of the server's processes; `cpus`: pin the whole process tree to these cores
    (`taskset --cpu-list` execs the server pinned, so gunicorn's workers and every thread
    inherit it; no preexec_fn, so servers may be started from several threads)."""
    port = free_port()
    if kind == "ours":
        command = ours_command(app)
        env = ours_environment(model, port, device=device, threads=threads, settings=settings or {})
    elif kind == "naive":
        command = [
            sys.executable,
            "-m",
            "bench.naive_server",
            "--model",
            str(model),
            "--port",
            str(port),
            "--device",
            device,
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        env.update(settings or {})
    else:
        raise ValueError(kind)
    if cpus is not None:
        command = [_taskset(), "--cpu-list", ",".join(str(cpu) for cpu in sorted(cpus)), *command]
    output = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        command,
        env=env,
        cwd=REPO_ROOT,
        stdout=output,
        stderr=output,
        start_new_session=True,
        preexec_fn=None if nofile is None else _limit_nofile(nofile),
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, base_url)
        yield RunningServer(kind, base_url, process.pid)
    finally:
        _stop(process)
        if log is not None:
            output.close()  # type: ignore[union-attr]


def _taskset() -> str:
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError("pinning a server to cores needs taskset (util-linux)")
    return taskset


def _limit_nofile(limit: int) -> Callable[[], None]:
    def apply() -> None:  # in the child, before exec
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def _wait_ready(process: subprocess.Popen[bytes], base_url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} while starting")
        try:
            if httpx.get(f"{base_url}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server was not ready within {READY_TIMEOUT_S:.0f} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only what we started
            process.wait(10)
