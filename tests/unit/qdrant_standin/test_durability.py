"""Durability: every acknowledged wait=true write survives SIGTERM, SIGKILL and torn logs."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from .conftest import Standin

WAL = "standin-wal.log"
STATE = "standin-state.json"


def create(http: httpx.Client, name: str, size: int = 2, distance: str = "Dot") -> None:
    response = http.put(
        f"/collections/{name}", json={"vectors": {"size": size, "distance": distance}}
    )
    assert response.status_code == 200, response.text


def upsert(http: httpx.Client, name: str, ids: list[int], **payload: Any) -> None:
    points = [{"id": i, "vector": [float(i), 1.0], "payload": {"i": i, **payload}} for i in ids]
    response = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
    assert response.status_code == 200, response.text
    assert response.json()["result"]["status"] == "completed"


def ids_in(http: httpx.Client, name: str) -> list[Any]:
    response = http.post(f"/collections/{name}/points/scroll", json={"limit": 100000})
    assert response.status_code == 200, response.text
    return [p["id"] for p in response.json()["result"]["points"]]


def test_sigterm_exits_zero_promptly_and_keeps_everything(qdrant: Standin) -> None:
    with qdrant.http() as http:
        create(http, "docs", distance="Cosine")
        index = {"field_name": "kind", "field_schema": "keyword"}
        assert http.put("/collections/docs/index?wait=true", json=index).status_code == 200
        upsert(http, "docs", list(range(1, 31)), kind="a")
        upsert(http, "docs", [5], kind="b")
        http.post("/collections/docs/points/delete?wait=true", json={"points": [30]})
        before = http.get("/collections/docs").json()["result"]
        point = http.get("/collections/docs/points/5").json()["result"]
        # An idle keep-alive connection must not delay the shutdown.
        started = time.monotonic()
        assert qdrant.stop() == 0
        assert time.monotonic() - started < 5
    # A clean stop compacts: the state file holds everything, the log is empty.
    assert (qdrant.storage / STATE).stat().st_size > 0
    assert (qdrant.storage / WAL).stat().st_size == 0
    qdrant.start()
    with qdrant.http() as http:
        after = http.get("/collections/docs").json()["result"]
        assert after == before
        assert after["points_count"] == 29
        assert http.get("/collections/docs/points/5").json()["result"] == point
        assert point["payload"] == {"i": 5, "kind": "b"}


def test_sigkill_right_after_each_acknowledgement(qdrant: Standin) -> None:
    steps = [
        lambda http: create(http, "k"),
        lambda http: upsert(http, "k", [1, 2, 3]),
        lambda http: http.put(
            "/collections/k/index?wait=true", json={"field_name": "i", "field_schema": "integer"}
        ).raise_for_status(),
        lambda http: upsert(http, "k", [2], changed=True),
        lambda http: http.post(
            "/collections/k/points/delete?wait=true",
            json={"filter": {"must": [{"key": "i", "match": {"value": 1}}]}},
        ).raise_for_status(),
    ]
    for step in steps:
        with qdrant.http() as http:
            step(http)
        qdrant.restart(hard=True)
    with qdrant.http() as http:
        assert ids_in(http, "k") == [2, 3]
        assert http.get("/collections/k/points/2").json()["result"]["payload"] == {
            "i": 2,
            "changed": True,
        }
        assert set(http.get("/collections/k").json()["result"]["payload_schema"]) == {"i"}


def test_sigkill_under_concurrent_load_loses_no_acknowledged_write(qdrant: Standin) -> None:
    with qdrant.http() as http:
        create(http, "load")
    acked: list[int] = []
    lock = threading.Lock()

    def writer(start: int) -> None:
        with qdrant.http() as http:
            for i in range(start, start + 100000, 4):
                try:
                    response = http.put(
                        "/collections/load/points?wait=true",
                        json={"points": [{"id": i, "vector": [1.0, 2.0], "payload": {"i": i}}]},
                    )
                except httpx.TransportError:
                    return
                if response.status_code != 200:
                    return
                with lock:
                    acked.append(i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acked) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    qdrant.kill()
    for thread in threads:
        thread.join(10)
    assert len(acked) >= 40
    qdrant.start()
    with qdrant.http() as http:
        stored = set(ids_in(http, "load"))
    missing = set(acked) - stored
    assert not missing, f"acknowledged but lost: {sorted(missing)}"


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(lambda line: line[: len(line) // 2], id="half-written-record"),
        pytest.param(lambda line: b"00000000" + line[8:], id="bad-checksum-record"),
        pytest.param(lambda line: b"\x00" * 37, id="zero-filled-block"),
    ],
)
def test_torn_last_wal_record_is_ignored(qdrant: Standin, tail: Any) -> None:
    with qdrant.http() as http:
        create(http, "torn")
        upsert(http, "torn", [1, 2])
        upsert(http, "torn", [3])
    qdrant.kill()
    wal = qdrant.storage / WAL
    good = wal.read_bytes()
    last_line = good.rstrip(b"\n").rsplit(b"\n", 1)[-1] + b"\n"
    wal.write_bytes(good + tail(last_line.replace(b'"op":', b'"op":9')))
    qdrant.start()
    assert "ignoring a torn or corrupt last record" in qdrant.log()
    with qdrant.http() as http:
        assert ids_in(http, "torn") == [1, 2, 3]
        upsert(http, "torn", [4])
    qdrant.kill()
    qdrant.start()
    with qdrant.http() as http:
        assert ids_in(http, "torn") == [1, 2, 3, 4]


def test_corruption_before_valid_records_refuses_to_start(qdrant: Standin) -> None:
    with qdrant.http() as http:
        create(http, "c")
        upsert(http, "c", [1])
        upsert(http, "c", [2])
    qdrant.kill()
    wal = qdrant.storage / WAL
    data = bytearray(wal.read_bytes())
    data[20] ^= 0x01  # inside the first record
    wal.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="refusing to start"):
        qdrant.start()


def test_deletes_stay_deleted(qdrant: Standin) -> None:
    with qdrant.http() as http:
        create(http, "gone")
        create(http, "kept")
        upsert(http, "kept", [1, 2, 3, 4])
        http.post("/collections/kept/points/delete?wait=true", json={"points": [1]})
        flt = {"filter": {"should": [{"key": "i", "match": {"value": 2}}]}}
        http.post("/collections/kept/points/delete?wait=true", json=flt).raise_for_status()
        assert http.delete("/collections/gone").json()["result"] is True
        create(http, "kept2", size=3)
    qdrant.restart(hard=True)
    with qdrant.http() as http:
        assert http.get("/collections/gone").status_code == 404
        assert ids_in(http, "kept") == [3, 4]
        names = {c["name"] for c in http.get("/collections").json()["result"]["collections"]}
        assert names == {"kept", "kept2"}
    qdrant.restart()
    with qdrant.http() as http:
        assert http.get("/collections/gone").status_code == 404
        assert ids_in(http, "kept") == [3, 4]


def test_snapshot_state_plus_wal_tail(qdrant: Standin) -> None:
    with qdrant.http() as http:
        create(http, "mix")
        upsert(http, "mix", [1, 2])
    qdrant.restart()  # SIGTERM: compacted into the state file
    with qdrant.http() as http:
        upsert(http, "mix", [3])
        http.post("/collections/mix/points/delete?wait=true", json={"points": [1]})
    qdrant.restart(hard=True)  # SIGKILL: the rest is only in the WAL
    with qdrant.http() as http:
        assert ids_in(http, "mix") == [2, 3]
        assert http.get("/collections/mix").json()["result"]["points_count"] == 2


def test_second_process_on_the_same_storage_is_refused(qdrant: Standin) -> None:
    twin = Standin(qdrant.binary, qdrant.workdir, qdrant.config, {})
    twin.starts = 100  # its own log file
    try:
        with pytest.raises(RuntimeError, match="in use by another qdrant process"):
            twin.start()
    finally:
        twin.kill()
    assert httpx.get(f"{qdrant.url}/readyz").status_code == 200
