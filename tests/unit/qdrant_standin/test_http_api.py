"""REST details: envelopes, errors, distances, filters, payload selection, API keys, limits."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .conftest import RELEASE_VERSION, Standin, StandinFactory


@pytest.fixture
def http(shared_qdrant: Standin) -> Iterator[httpx.Client]:
    with shared_qdrant.http() as client:
        yield client


def make_collection(
    http: httpx.Client, name: str, size: int, distance: str, points: list[dict[str, Any]]
) -> None:
    http.delete(f"/collections/{name}")
    created = http.put(
        f"/collections/{name}", json={"vectors": {"size": size, "distance": distance}}
    )
    assert created.status_code == 200, created.text
    if points:
        done = http.put(f"/collections/{name}/points?wait=true", json={"points": points})
        assert done.status_code == 200, done.text


def result(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert isinstance(body["time"], float)
    return body["result"]


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "time"}
    return str(body["status"]["error"])


def test_root_health_and_metrics(http: httpx.Client) -> None:
    root = http.get("/")
    assert root.json() == {
        "title": "qdrant - vector search engine (stand-in for tests)",
        "version": RELEASE_VERSION,
        "commit": None,
    }
    for path, text in [
        ("/healthz", "healthz check passed"),
        ("/livez", "healthz check passed"),
        ("/readyz", "all shards are ready"),
    ]:
        response = http.get(path)
        assert response.status_code == 200
        assert response.text == text
        assert response.headers["content-type"].startswith("text/plain")
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    assert f'app_info{{name="qdrant",version="{RELEASE_VERSION}"' in metrics.text
    assert "\ncollections_total " in metrics.text


def test_not_found_envelopes(http: httpx.Client) -> None:
    name = "does-not-exist"
    expected = f"Not found: Collection `{name}` doesn't exist!"
    requests = [
        ("GET", f"/collections/{name}", None),
        ("PUT", f"/collections/{name}/points?wait=true", {"points": []}),
        ("POST", f"/collections/{name}/points/query", {"query": [1.0]}),
        ("POST", f"/collections/{name}/points/search", {"vector": [1.0], "limit": 1}),
        ("POST", f"/collections/{name}/points/scroll", {}),
        ("POST", f"/collections/{name}/points/count", {}),
        ("POST", f"/collections/{name}/points/delete", {"points": [1]}),
        ("PUT", f"/collections/{name}/index", {"field_name": "a", "field_schema": "keyword"}),
        ("GET", f"/collections/{name}/snapshots", None),
        ("POST", f"/collections/{name}/snapshots", None),
    ]
    for method, path, body in requests:
        response = http.request(method, path, json=body)
        assert error(response, 404) == expected, (method, path)
    assert result(http.get(f"/collections/{name}/exists")) == {"exists": False}
    assert result(http.delete(f"/collections/{name}")) is False
    assert "no route" in error(http.get("/no/such/route"), 404)


def test_create_conflict_and_validation(http: httpx.Client) -> None:
    make_collection(http, "conflict", 2, "Dot", [])
    again = http.put("/collections/conflict", json={"vectors": {"size": 2, "distance": "Dot"}})
    assert error(again, 409) == "Wrong input: Collection `conflict` already exists!"
    bad_distance = http.put("/collections/bad1", json={"vectors": {"size": 2, "distance": "L2"}})
    assert "unknown variant `L2`" in error(bad_distance, 400)
    zero = http.put("/collections/bad2", json={"vectors": {"size": 0, "distance": "Dot"}})
    assert "vectors.size" in error(zero, 422)
    named = http.put("/collections/bad3", json={"vectors": {"a": {"size": 2, "distance": "Dot"}}})
    assert "not supported by the Qdrant stand-in" in error(named, 400)
    assert error(http.put("/collections/bad%2Fname", json={}), 422).startswith("Validation")
    assert result(http.get("/collections/conflict/exists")) == {"exists": True}
    assert {"name": "conflict"} in result(http.get("/collections"))["collections"]


def test_malformed_requests_never_break_the_server(http: httpx.Client) -> None:
    make_collection(http, "malformed", 2, "Dot", [])
    cases: list[tuple[bytes, int, str]] = [
        (b"{not json", 400, "Format error in JSON body"),
        (b"[1, 2]", 400, "Format error in JSON body"),
        (b'{"query": [NaN, 1]}', 400, "Format error in JSON body"),
        (b'{"query": [1, 2], "limit": "x"}', 400, "`limit` must be an integer"),
        (b'{"query": [1, 2], "limit": 0}', 422, "limit: value 0 invalid"),
        (b'{"query": [1, 2], "filter": {"must": [{"foo": 1}]}}', 400, "filter condition"),
        (b'{"query": [1, 2], "with_payload": 5}', 400, "with_payload"),
        (b"\xff\xfe", 400, "Format error in JSON body"),
    ]
    for raw, status, message in cases:
        response = http.post(
            "/collections/malformed/points/query",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert message in error(response, status), raw
    bad_ids = http.put(
        "/collections/malformed/points?wait=true",
        json={"points": [{"id": "not-a-uuid", "vector": [1, 2]}, {"id": -1, "vector": [1, 2]}]},
    )
    assert "is not a valid point ID" in error(bad_ids, 400)
    no_vector = http.put("/collections/malformed/points", json={"points": [{"id": 1}]})
    assert error(no_vector, 400) == "Format error in JSON body: missing field `vector`"
    assert http.get("/healthz").status_code == 200


def test_vector_size_is_checked_everywhere(http: httpx.Client) -> None:
    make_collection(http, "dims", 3, "Cosine", [{"id": 1, "vector": [1, 2, 3]}])
    expected = "Wrong input: Vector dimension error: expected dim: 3, got 2"
    upsert = http.put(
        "/collections/dims/points?wait=true", json={"points": [{"id": 2, "vector": [1, 2]}]}
    )
    assert error(upsert, 400) == expected
    batch = http.put(
        "/collections/dims/points?wait=true",
        json={"batch": {"ids": [3, 4], "vectors": [[1, 2, 3], [1, 2]]}},
    )
    assert error(batch, 400) == expected
    query = http.post("/collections/dims/points/query", json={"query": [1, 2]})
    assert error(query, 400) == expected
    search = http.post("/collections/dims/points/search", json={"vector": [1, 2], "limit": 3})
    assert error(search, 400) == expected
    # Nothing of the rejected batch was written.
    assert result(http.post("/collections/dims/points/count", json={})) == {"count": 1}


VECTORS = {1: [1.0, 0.0], 2: [3.0, 4.0], 3: [-1.0, 0.5], 4: [0.5, 0.5]}


def _scores(http: httpx.Client, name: str, query: list[float], **extra: Any) -> list[tuple]:
    body = {"query": query, "limit": 10, **extra}
    points = result(http.post(f"/collections/{name}/points/query", json=body))["points"]
    return [(p["id"], p["score"]) for p in points]


def test_distances_rank_and_score_like_qdrant(http: httpx.Client) -> None:
    points = [{"id": i, "vector": v} for i, v in VECTORS.items()]
    for distance in ("Cosine", "Dot", "Euclid", "Manhattan"):
        make_collection(http, f"dist-{distance.lower()}", 2, distance, points)
    query = [1.0, 1.0]

    cosine = _scores(http, "dist-cosine", query)
    assert [i for i, _ in cosine] == [4, 2, 1, 3]
    assert cosine[0][1] == pytest.approx(1.0, abs=1e-6)
    assert cosine[1][1] == pytest.approx(7 / (5 * math.sqrt(2)), abs=1e-6)
    # Cosine collections store normalised vectors, as Qdrant does.
    stored = result(http.get("/collections/dist-cosine/points/2"))["vector"]
    assert stored == pytest.approx([0.6, 0.8], abs=1e-6)

    dot = _scores(http, "dist-dot", query)
    assert [i for i, _ in dot] == [2, 1, 4, 3]
    assert [s for _, s in dot] == pytest.approx([7.0, 1.0, 1.0, -0.5])
    assert result(http.get("/collections/dist-dot/points/2"))["vector"] == [3.0, 4.0]

    euclid = _scores(http, "dist-euclid", query)
    assert [i for i, _ in euclid] == [4, 1, 3, 2]
    assert [s for _, s in euclid] == pytest.approx(
        [math.sqrt(0.5), 1.0, math.sqrt(4.25), math.sqrt(13)]
    )
    # For distances the threshold is an upper bound.
    assert [i for i, _ in _scores(http, "dist-euclid", query, score_threshold=1.0)] == [4, 1]

    manhattan = _scores(http, "dist-manhattan", query)
    assert [i for i, _ in manhattan] == [1, 4, 3, 2]  # ties: lower id first
    assert [s for _, s in manhattan] == pytest.approx([1.0, 1.0, 2.5, 5.0])

    assert [i for i, _ in _scores(http, "dist-dot", query, score_threshold=1.0)] == [2, 1, 4]
    assert [i for i, _ in _scores(http, "dist-dot", query, limit=2, offset=1)] == [1, 4]

    legacy = result(
        http.post(
            "/collections/dist-dot/points/search",
            json={"vector": query, "limit": 2, "with_payload": True, "with_vector": True},
        )
    )
    assert [p["id"] for p in legacy] == [2, 1]
    assert legacy[0]["vector"] == [3.0, 4.0]
    assert legacy[0]["payload"] == {}
    no_query = result(http.post("/collections/dist-dot/points/query", json={"limit": 2}))
    assert [p["id"] for p in no_query["points"]] == [1, 2]
    near_point = result(
        http.post("/collections/dist-cosine/points/query", json={"query": 4, "limit": 1})
    )["points"]
    assert [p["id"] for p in near_point] == [2]


PAYLOADS: dict[Any, dict[str, Any]] = {
    1: {"kind": "file", "path": {"0": "src", "1": "a.py"}, "tags": ["x", "y"], "size": 10},
    2: {"kind": "file", "path": {"0": "src", "1": "b.py"}, "tags": ["z"], "size": 200},
    3: {"kind": "dir", "path": {"0": "docs"}, "tags": [], "size": None},
    "a2f1c2b1-0000-4000-8000-000000000001": {
        "kind": "file",
        "path": {"0": "docs", "1": "c.md"},
        "items": [{"k": 1}, {"k": 2}],
        "flag": True,
    },
}


@pytest.fixture
def filtered(http: httpx.Client) -> str:
    points = [
        {"id": pid, "vector": [1.0, float(i)], "payload": p}
        for i, (pid, p) in enumerate(PAYLOADS.items())
    ]
    make_collection(http, "filters", 2, "Dot", points)
    return "filters"


@pytest.mark.parametrize(
    ("filt", "expected"),
    [
        (
            {"must": [{"key": "kind", "match": {"value": "file"}}]},
            [1, 2, "a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        ({"must": {"key": "path.0", "match": {"value": "src"}}}, [1, 2]),
        (
            {"must_not": [{"key": "path.0", "match": {"value": "src"}}]},
            [3, "a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        (
            {
                "should": [
                    {"key": "path.1", "match": {"value": "a.py"}},
                    {"key": "path.1", "match": {"value": "c.md"}},
                ]
            },
            [1, "a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        ({"must": [{"key": "tags", "match": {"value": "y"}}]}, [1]),
        ({"must": [{"key": "tags", "match": {"any": ["z", "q"]}}]}, [2]),
        ({"must": [{"key": "kind", "match": {"except": ["file"]}}]}, [3]),
        (
            {"must": [{"has_id": [3, "A2F1C2B1-0000-4000-8000-000000000001"]}]},
            [3, "a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        ({"must": [{"key": "size", "range": {"gte": 10, "lt": 200}}]}, [1]),
        (
            {"must": [{"key": "items[].k", "match": {"value": 2}}]},
            ["a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        (
            {"must": [{"key": "flag", "match": {"value": True}}]},
            ["a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        ({"must": [{"key": "size", "match": {"value": True}}]}, []),
        ({"must": [{"is_empty": {"key": "tags"}}]}, [3, "a2f1c2b1-0000-4000-8000-000000000001"]),
        ({"must": [{"is_null": {"key": "size"}}]}, [3]),
        (
            {
                "must": [{"key": "kind", "match": {"value": "file"}}],
                "should": [
                    {
                        "must": [
                            {"key": "path.0", "match": {"value": "src"}},
                            {"key": "size", "range": {"gt": 100}},
                        ]
                    },
                    {"must_not": [{"key": "path.0", "match": {"value": "src"}}]},
                ],
            },
            [2, "a2f1c2b1-0000-4000-8000-000000000001"],
        ),
        ({"must": []}, [1, 2, 3, "a2f1c2b1-0000-4000-8000-000000000001"]),
    ],
)
def test_filters(
    http: httpx.Client, filtered: str, filt: dict[str, Any], expected: list[Any]
) -> None:
    scrolled = result(
        http.post(f"/collections/{filtered}/points/scroll", json={"filter": filt, "limit": 10})
    )
    assert [p["id"] for p in scrolled["points"]] == expected
    counted = result(http.post(f"/collections/{filtered}/points/count", json={"filter": filt}))
    assert counted == {"count": len(expected)}
    queried = result(
        http.post(
            f"/collections/{filtered}/points/query", json={"query": [1.0, 0.0], "filter": filt}
        )
    )
    assert sorted(map(str, (p["id"] for p in queried["points"]))) == sorted(map(str, expected))


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        (True, PAYLOADS[1]),
        (False, None),
        (["kind", "size"], {"kind": "file", "size": 10}),
        ({"include": ["path.0", "missing"]}, {"path": {"0": "src"}}),
        ({"exclude": ["tags", "path.1"]}, {"kind": "file", "path": {"0": "src"}, "size": 10}),
    ],
)
def test_with_payload_selectors(
    http: httpx.Client, filtered: str, selector: Any, expected: Any
) -> None:
    body = {"query": [1.0, 0.0], "filter": {"must": [{"has_id": [1]}]}, "with_payload": selector}
    (point,) = result(http.post(f"/collections/{filtered}/points/query", json=body))["points"]
    assert point.get("payload") == expected
    (record,) = result(
        http.post(f"/collections/{filtered}/points", json={"ids": [1], "with_payload": selector})
    )
    assert record.get("payload") == expected


def test_scroll_pages_and_point_lookup(http: httpx.Client) -> None:
    ids: list[Any] = [5, 1, 3, "00000000-0000-0000-0000-000000000002", 2]
    make_collection(
        http,
        "paging",
        1,
        "Dot",
        [{"id": i, "vector": [1.0], "payload": {"i": str(i)}} for i in ids],
    )
    seen: list[Any] = []
    offset: Any = None
    while True:
        page = result(
            http.post("/collections/paging/points/scroll", json={"limit": 2, "offset": offset})
        )
        seen += [p["id"] for p in page["points"]]
        offset = page["next_page_offset"]
        if offset is None:
            break
    assert seen == [1, 2, 3, 5, "00000000-0000-0000-0000-000000000002"]
    assert result(http.get("/collections/paging/points/3")) == {
        "id": 3,
        "payload": {"i": "3"},
        "vector": [1.0],
    }
    assert "No point with id 4 found" in error(http.get("/collections/paging/points/4"), 404)
    batch = http.put(
        "/collections/paging/points?wait=true",
        json={"batch": {"ids": [7, 8], "vectors": [[2.0], [3.0]], "payloads": [{"b": 1}, None]}},
    )
    assert result(batch)["status"] == "completed"
    records = result(
        http.post("/collections/paging/points", json={"ids": [8, 7, 99], "with_vector": True})
    )
    assert records == [
        {"id": 8, "payload": {}, "vector": [3.0]},
        {"id": 7, "payload": {"b": 1}, "vector": [2.0]},
    ]
    acknowledged = http.put(
        "/collections/paging/points", json={"points": [{"id": 9, "vector": [1]}]}
    )
    assert result(acknowledged)["status"] == "acknowledged"


def test_snapshots(http: httpx.Client, shared_qdrant: Standin) -> None:
    make_collection(http, "snaps", 2, "Dot", [{"id": 1, "vector": [1, 2], "payload": {"a": 1}}])
    assert result(http.get("/collections/snaps/snapshots")) == []
    first = result(http.post("/collections/snaps/snapshots?wait=true"))
    second = result(http.post("/collections/snaps/snapshots?wait=true"))
    assert first["name"] != second["name"]
    assert first["name"].startswith("snaps-")
    assert first["name"].endswith(".snapshot")
    listed = result(http.get("/collections/snaps/snapshots"))
    assert sorted(s["name"] for s in listed) == sorted([first["name"], second["name"]])
    download = http.get(f"/collections/snaps/snapshots/{first['name']}")
    assert download.status_code == 200
    assert len(download.content) == first["size"]
    path = shared_qdrant.workdir / "snapshots" / "snaps" / first["name"]
    assert path.read_bytes() == download.content
    assert result(http.delete(f"/collections/snaps/snapshots/{first['name']}")) is True
    assert not path.exists()
    assert error(http.get("/collections/snaps/snapshots/../../etc"), 404)


def test_api_keys(standin_factory: StandinFactory) -> None:
    server = standin_factory(api_key="rw-key", read_only_api_key="ro-key")
    url = server.url
    # Open endpoints.
    for path in ("/", "/healthz", "/livez", "/readyz"):
        assert httpx.get(url + path).status_code == 200, path
    # Missing and wrong keys: 401 with Qdrant's plain-text messages.
    missing = httpx.get(f"{url}/collections")
    assert missing.status_code == 401
    assert missing.text == "Must provide an API key or an Authorization bearer token"
    wrong = httpx.get(f"{url}/collections", headers={"api-key": "rw-kex"})
    assert (wrong.status_code, wrong.text) == (401, "Invalid API key or JWT")
    assert httpx.get(f"{url}/metrics").status_code == 401
    assert httpx.get(f"{url}/metrics", headers={"api-key": "ro-key"}).status_code == 200
    # The read-write key, as `api-key` or as a bearer token.
    rw = {"api-key": "rw-key"}
    body = {"vectors": {"size": 2, "distance": "Dot"}}
    assert httpx.put(f"{url}/collections/k", json=body, headers=rw).status_code == 200
    bearer = {"authorization": "Bearer rw-key"}
    points = {"points": [{"id": 1, "vector": [1, 0], "payload": {"a": "b"}}]}
    assert (
        httpx.put(f"{url}/collections/k/points?wait=true", json=points, headers=bearer).status_code
        == 200
    )
    # The read-only key reads...
    ro = {"api-key": "ro-key"}
    reads = [
        ("GET", "/collections", None),
        ("GET", "/collections/k", None),
        ("GET", "/collections/k/exists", None),
        ("GET", "/collections/k/points/1", None),
        ("GET", "/collections/k/snapshots", None),
        ("POST", "/collections/k/points", {"ids": [1]}),
        ("POST", "/collections/k/points/query", {"query": [1, 0]}),
        ("POST", "/collections/k/points/search", {"vector": [1, 0], "limit": 1}),
        ("POST", "/collections/k/points/scroll", {}),
        ("POST", "/collections/k/points/count", {}),
    ]
    for method, path, payload in reads:
        response = httpx.request(method, url + path, json=payload, headers=ro)
        assert response.status_code == 200, (method, path, response.text)
    # ...but every write is forbidden.
    writes = [
        ("PUT", "/collections/other", body),
        ("DELETE", "/collections/k", None),
        ("PATCH", "/collections/k", {"optimizers_config": {"indexing_threshold": 1}}),
        ("PUT", "/collections/k/points?wait=true", points),
        ("POST", "/collections/k/points/delete?wait=true", {"points": [1]}),
        ("PUT", "/collections/k/index", {"field_name": "a", "field_schema": "keyword"}),
        ("POST", "/collections/k/snapshots", None),
    ]
    for method, path, payload in writes:
        response = httpx.request(method, url + path, json=payload, headers=ro)
        assert response.status_code == 403, (method, path)
        assert "Forbidden" in response.json()["status"]["error"]
    counted = httpx.post(f"{url}/collections/k/points/count", json={}, headers=rw)
    assert counted.json()["result"] == {"count": 1}
    assert httpx.get(f"{url}/collections/k", headers=rw).status_code == 200


def test_request_size_limit(standin_factory: StandinFactory) -> None:
    server = standin_factory(max_request_size_mb=1)
    url = server.url
    assert (
        httpx.put(
            f"{url}/collections/big", json={"vectors": {"size": 1, "distance": "Dot"}}
        ).status_code
        == 200
    )
    points = {
        "points": [{"id": i, "vector": [0.5], "payload": {"pad": "x" * 1000}} for i in range(1500)]
    }
    response = httpx.put(f"{url}/collections/big/points?wait=true", json=points, timeout=10)
    assert response.status_code == 413
    assert "larger than allowed" in response.json()["status"]["error"]
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.get(f"{url}/collections/big").json()["result"]["points_count"] == 0


def test_truncated_request_does_not_hang_the_server(qdrant: Standin) -> None:
    with socket.create_connection(("127.0.0.1", qdrant.port), timeout=5) as sock:
        sock.sendall(b"PUT /collections/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    with socket.create_connection(("127.0.0.1", qdrant.port), timeout=5) as sock:
        sock.sendall(b"BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 501")
    with qdrant.http() as http:
        body = json.dumps({"vectors": {"size": 1, "distance": "Dot"}})
        assert http.put("/collections/x", content=body).status_code == 200
        assert http.get("/readyz").status_code == 200
