"""Full-storage snapshots and recovery in the Qdrant stand-in.

What roles/qdrant relies on for upgrades, rollbacks and restores: ``POST /snapshots`` (a
snapshot of every collection), ``GET``/``DELETE /snapshots/{name}``, recovery of a whole
storage at start-up (``--storage-snapshot FILE``, as Qdrant's CLI) and of one collection
through ``PUT /collections/{c}/snapshots/recover`` with a ``file://`` location.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from .conftest import Standin, StandinFactory


def result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()["result"]


def fill(http: httpx.Client, name: str, ids: list[int]) -> None:
    result(http.put(f"/collections/{name}", json={"vectors": {"size": 2, "distance": "Dot"}}))
    points = [{"id": i, "vector": [1.0, float(i)], "payload": {"n": i}} for i in ids]
    result(http.put(f"/collections/{name}/points?wait=true", json={"points": points}))


def count(http: httpx.Client, name: str) -> int:
    return result(http.post(f"/collections/{name}/points/count", json={"exact": True}))["count"]


def test_full_snapshot_lists_downloads_deletes(qdrant: Standin) -> None:
    with qdrant.http() as http:
        fill(http, "a", [1, 2])
        made = result(http.post("/snapshots?wait=true"))
        assert made["name"].startswith("full-snapshot-")
        assert made["name"].endswith(".snapshot")
        path = qdrant.workdir / "snapshots" / made["name"]
        assert path.stat().st_size == made["size"]
        assert [s["name"] for s in result(http.get("/snapshots"))] == [made["name"]]
        assert http.get(f"/snapshots/{made['name']}").content == path.read_bytes()
        assert result(http.delete(f"/snapshots/{made['name']}")) is True
        assert not path.exists()
        assert http.get("/snapshots/nope.snapshot").status_code == 404


def test_storage_recovered_from_a_full_snapshot_at_start(standin_factory: StandinFactory) -> None:
    server = standin_factory()
    with server.http() as http:
        fill(http, "a", [1, 2])
        fill(http, "b", [7])
        made = result(http.post("/snapshots?wait=true"))
        result(
            http.put(
                "/collections/a/points?wait=true",
                json={"points": [{"id": 3, "vector": [0.0, 1.0]}]},
            )
        )
    snapshot = server.workdir / "snapshots" / made["name"]
    # Storage still holds the collections: refused without --force-snapshot.
    assert server.stop() == 0
    server.extra_args = ["--storage-snapshot", str(snapshot)]
    with pytest.raises(RuntimeError, match="--force-snapshot"):
        server.start(timeout=5)
    # Empty storage: recovered, then served; and it stays recovered without the flag.
    (server.workdir / "storage").rename(server.workdir / "storage.aside")
    server.start()
    with server.http() as http:
        assert count(http, "a") == 2
        assert count(http, "b") == 1
    server.extra_args = []
    server.restart(hard=True)
    with server.http() as http:
        assert count(http, "a") == 2


def test_collection_recovered_from_its_snapshot(qdrant: Standin) -> None:
    with qdrant.http() as http:
        fill(http, "c", [1, 2, 3])
        made = result(http.post("/collections/c/snapshots?wait=true"))
        result(http.delete("/collections/c"))
        location = f"file://{qdrant.workdir}/snapshots/c/{made['name']}"
        wrong = http.put(
            "/collections/c/snapshots/recover", json={"location": location, "checksum": "0" * 64}
        )
        assert wrong.status_code == 400
        assert "checksum" in wrong.text
        outside = http.put(
            "/collections/c/snapshots/recover", json={"location": "file:///etc/passwd"}
        )
        assert outside.status_code == 404
        body = {"location": location, "checksum": made["checksum"]}
        assert result(http.put("/collections/c/snapshots/recover", json=body)) is True
        assert count(http, "c") == 3
        # Recovery replaces what is there.
        result(http.post("/collections/c/points/delete?wait=true", json={"points": [1]}))
        assert result(http.put("/collections/c/snapshots/recover", json=body)) is True
        assert count(http, "c") == 3
    qdrant.restart(hard=True)
    with qdrant.http() as http:
        assert count(http, "c") == 3
