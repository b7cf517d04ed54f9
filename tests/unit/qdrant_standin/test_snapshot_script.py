"""roles/qdrant/files/qdrant-snapshot.py: the snapshot timer's program.

Against the stand-in: snapshots of every collection, pruning of the timer's own snapshots only
(a snapshot taken by hand survives), restore (the current state kept first). Against a fake
server that misbehaves for some collections: a refused answer, a dropped connection
(RemoteDisconnected) and a timeout each fail only their collection, are all reported, and the
run goes on. The copy step runs rsync with the snapshots directory (a fake rsync on PATH here;
molecule's qdrant-upgrade scenario runs the real one).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_http import JsonHandler, serve

from .conftest import REPO, Standin

SCRIPT = REPO / "roles" / "qdrant" / "files" / "qdrant-snapshot.py"


def run_script(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def fill(http: httpx.Client, name: str, ids: list[int]) -> None:
    result(http.put(f"/collections/{name}", json={"vectors": {"size": 2, "distance": "Dot"}}))
    points = [{"id": i, "vector": [1.0, float(i)]} for i in ids]
    result(http.put(f"/collections/{name}/points?wait=true", json={"points": points}))


def names(http: httpx.Client, collection: str) -> set[str]:
    return {s["name"] for s in result(http.get(f"/collections/{collection}/snapshots"))}


@pytest.fixture
def env(qdrant: Standin, tmp_path: Path) -> dict[str, str]:
    return {
        "QDRANT_URL": qdrant.url,
        "QDRANT_SNAPSHOT_KEEP": "2",
        "QDRANT_SNAPSHOT_STATE": str(tmp_path / "state" / "own-snapshots.json"),
        "QDRANT_SNAPSHOTS_PATH": str(qdrant.workdir / "snapshots"),
    }


def test_prunes_only_its_own_snapshots(qdrant: Standin, env: dict[str, str]) -> None:
    with qdrant.http() as http:
        fill(http, "a", [1, 2])
        fill(http, "b", [3])
        manual = result(http.post("/collections/a/snapshots?wait=true"))["name"]
        for _ in range(4):
            done = run_script(env, "run")
            assert done.returncode == 0, done.stderr
            time.sleep(1.05)  # stand-in snapshot names carry the time to the second
        assert "snapshotted 2 of 2 collections, 0 error(s)" in done.stdout
        assert f"left alone (not made by this timer): {manual}" in done.stdout
        own = json.loads(Path(env["QDRANT_SNAPSHOT_STATE"]).read_text())
        assert len(own["a"]) == 2
        assert names(http, "a") == {manual, *own["a"]}
        assert names(http, "b") == set(own["b"])
    listed = run_script(env, "list", "a")
    assert listed.returncode == 0
    assert f"a\t{manual}\t" in listed.stdout
    assert listed.stdout.count("\ttimer") == 2


def test_restore_brings_a_collection_back_and_keeps_the_current_state(
    qdrant: Standin, env: dict[str, str]
) -> None:
    with qdrant.http() as http:
        fill(http, "r", [1, 2, 3])
        assert run_script(env, "run").returncode == 0
        result(http.post("/collections/r/points/delete?wait=true", json={"points": [1, 2]}))
        time.sleep(1.1)  # the restore's own snapshot of this state is named a second later
        done = run_script(env, "restore", "r")
        assert done.returncode == 0, done.stderr
        assert "current state kept as snapshot" in done.stdout
        count = http.post("/collections/r/points/count", json={"exact": True})
        assert result(count)["count"] == 3
        # The collection deleted altogether: restored from the snapshot files, from the timer's
        # newest, not from the newer one the first restore took of the state it replaced.
        result(http.delete("/collections/r"))
        done = run_script(env, "restore", "r")
        assert done.returncode == 0, done.stderr
        assert result(http.post("/collections/r/points/count", json={"exact": True}))["count"] == 3
    missing = run_script(env, "restore", "r", "no-such.snapshot")
    assert missing.returncode == 1
    assert "no snapshot no-such.snapshot; available:" in missing.stderr


# --- a server that fails for some collections -------------------------------------------------


class _Faulty(JsonHandler):
    protocol_version = "HTTP/1.1"
    collections = ("a-timeout", "b-disconnect", "c-refused", "d-good", "e-good")
    made: dict[str, list[str]]  # a fresh dict per server (fixture below)

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == ["collections"]:
            names = [{"name": c} for c in self.collections]
            self.send_json(200, {"result": {"collections": names}})
        else:
            made = self.made.get(parts[1], [])
            self.send_json(200, {"result": [{"name": n, "creation_time": n} for n in made]})

    def do_POST(self) -> None:
        name = self.path.split("/")[2]
        if name == "a-timeout":
            time.sleep(3)
        elif name == "b-disconnect":
            self.close_connection = True
            self.connection.close()
            return
        elif name == "c-refused":
            self.send_json(500, {"status": {"error": "Service internal error: disk full"}})
            return
        snap = f"{name}-{len(self.made.setdefault(name, [])):04d}.snapshot"
        self.made[name].append(snap)
        self.send_json(200, {"result": {"name": snap, "creation_time": snap}})


@pytest.fixture
def faulty() -> Iterator[str]:
    handler = type("Handler", (_Faulty,), {"made": {}})
    # The client gives up on a-timeout before the answer: the broken pipe is expected, not news.
    with serve(handler, quiet_errors=True) as server:
        yield server.url


def test_every_error_is_reported_and_the_run_goes_on(faulty: str, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    rsync = bin_dir / "rsync"
    rsync.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/rsync-args\nexit 23\n')
    rsync.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "QDRANT_URL": faulty,
        "QDRANT_SNAPSHOT_TIMEOUT": "1",
        "QDRANT_SNAPSHOT_STATE": str(tmp_path / "own.json"),
        "QDRANT_SNAPSHOTS_PATH": "/var/lib/qdrant/snapshots",
        "QDRANT_SNAPSHOT_COPY_DEST": "backup@vault:/srv/qdrant/",
        "QDRANT_SNAPSHOT_RSYNC_ARGS": "--delete --bwlimit=10m",
    }
    done = run_script(env, "run")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 4, done.stderr
    assert errors[0].startswith("error: a-timeout: snapshot failed: TimeoutError")
    assert errors[1].startswith("error: b-disconnect: snapshot failed: RemoteDisconnected")
    assert errors[2] == (
        "error: c-refused: snapshot failed: HTTP 500 Internal Server Error:"
        " Service internal error: disk full"
    )
    assert errors[3].startswith("error: copy to backup@vault:/srv/qdrant/: rsync exited 23")
    assert "d-good: created snapshot d-good-0000.snapshot" in done.stdout
    assert "e-good: created snapshot e-good-0000.snapshot" in done.stdout
    assert "snapshotted 2 of 5 collections, 4 error(s)" in done.stdout
    args = (tmp_path / "rsync-args").read_text().split()
    assert args == [
        "--archive",
        "--partial",
        "--exclude=.*",
        "--delete",
        "--bwlimit=10m",
        "/var/lib/qdrant/snapshots/",
        "backup@vault:/srv/qdrant/",
    ]
    own = json.loads((tmp_path / "own.json").read_text())
    assert own == {"d-good": ["d-good-0000.snapshot"], "e-good": ["e-good-0000.snapshot"]}


def test_unreachable_server_is_an_error_not_a_crash(tmp_path: Path) -> None:
    done = run_script(
        {"QDRANT_URL": "http://127.0.0.1:9", "QDRANT_SNAPSHOT_STATE": str(tmp_path / "s.json")},
        "run",
    )
    assert done.returncode == 1
    assert "error: cannot list collections:" in done.stderr
    assert "Traceback" not in done.stderr
