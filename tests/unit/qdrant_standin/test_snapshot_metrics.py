"""roles/qdrant/files/qdrant-snapshot.py metrics: the textfile the node exporter serves.

systemd runs ``qdrant-snapshot metrics`` as the service's ExecStopPost with SERVICE_RESULT and
EXIT_STATUS of the run that just ended. The file must say when that run ended, whether it
succeeded, and when a run last succeeded (kept across failed runs), and be replaced atomically
(no temporary file left that the exporter would read).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .conftest import REPO

SCRIPT = REPO / "roles" / "qdrant" / "files" / "qdrant-snapshot.py"
NAME = "jina_stack_qdrant_snapshot.prom"


def metrics(directory: Path, **outcome: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **outcome}
    if directory.name:
        env["QDRANT_SNAPSHOT_TEXTFILE_DIR"] = str(directory)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "metrics"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def samples(path: Path) -> dict[str, float]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return {name: float(value) for name, value in (line.split() for line in lines)}


def test_success_then_failure_keeps_the_last_success(tmp_path: Path) -> None:
    directory = tmp_path / "textfile"  # created by the script when missing
    done = metrics(directory, SERVICE_RESULT="success", EXIT_CODE="exited", EXIT_STATUS="0")
    assert done.returncode == 0, done.stderr
    first = samples(directory / NAME)
    assert first["jina_stack_qdrant_snapshot_last_run_ok"] == 1
    assert (
        first["jina_stack_qdrant_snapshot_last_success_timestamp_seconds"]
        == first["jina_stack_qdrant_snapshot_last_run_timestamp_seconds"]
        > 0
    )
    assert (directory / NAME).stat().st_mode & 0o777 == 0o644

    failed = metrics(directory, SERVICE_RESULT="exit-code", EXIT_CODE="exited", EXIT_STATUS="1")
    assert failed.returncode == 0, failed.stderr
    second = samples(directory / NAME)
    assert second["jina_stack_qdrant_snapshot_last_run_ok"] == 0
    assert (
        second["jina_stack_qdrant_snapshot_last_run_timestamp_seconds"]
        >= first["jina_stack_qdrant_snapshot_last_run_timestamp_seconds"]
    )
    assert (
        second["jina_stack_qdrant_snapshot_last_success_timestamp_seconds"]
        == first["jina_stack_qdrant_snapshot_last_success_timestamp_seconds"]
    )
    assert sorted(p.name for p in directory.iterdir()) == [NAME]


def test_a_killed_run_is_a_failure_and_never_succeeded_is_zero(tmp_path: Path) -> None:
    # A run killed at TimeoutStartSec: systemd says "timeout", the status is a signal.
    done = metrics(tmp_path, SERVICE_RESULT="timeout", EXIT_CODE="killed", EXIT_STATUS="TERM")
    assert done.returncode == 0, done.stderr
    values = samples(tmp_path / NAME)
    assert values["jina_stack_qdrant_snapshot_last_run_ok"] == 0
    assert values["jina_stack_qdrant_snapshot_last_success_timestamp_seconds"] == 0


def test_without_a_directory_nothing_is_written(tmp_path: Path) -> None:
    done = metrics(Path(""), SERVICE_RESULT="success", EXIT_STATUS="0")
    assert done.returncode == 2
    assert "QDRANT_SNAPSHOT_TEXTFILE_DIR" in done.stderr
