"""Raw requests shaped exactly like Roo Code's (v3.52, @qdrant/js-client-rest 1.14)."""

from __future__ import annotations

import hashlib
import math
import uuid
from typing import Any

import pytest

from .conftest import StandinFactory

DIM = 8
# Roo's fixed namespace for uuidv5 point ids (the value does not matter to the server).
NAMESPACE = uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479")
PAYLOAD_INCLUDE = ["filePath", "codeChunk", "startLine", "endLine", "pathSegments"]


def collection_name(workspace: str) -> str:
    return "ws-" + hashlib.sha256(workspace.encode()).hexdigest()[:16]


def embed(seed: int) -> list[float]:
    """A deterministic unit-ish vector; neighbouring seeds are similar."""
    return [math.cos(seed * 0.3 + i) + 1.5 for i in range(DIM)]


def code_point(file_path: str, start: int, seed: int) -> dict[str, Any]:
    segments = file_path.split("/")
    segment_hash = hashlib.sha256(f"{file_path}:{start}".encode()).hexdigest()
    return {
        "id": str(uuid.uuid5(NAMESPACE, segment_hash)),
        "vector": embed(seed),
        "payload": {
            "filePath": file_path,
            "codeChunk": f"// chunk {start} of {file_path}",
            "startLine": start,
            "endLine": start + 9,
            "segmentHash": segment_hash,
            "pathSegments": {str(i): seg for i, seg in enumerate(segments)},
        },
    }


def path_filter(file_path: str) -> dict[str, Any]:
    return {
        "must": [
            {"key": f"pathSegments.{i}", "match": {"value": seg}}
            for i, seg in enumerate(file_path.split("/"))
        ]
    }


@pytest.mark.parametrize("api_key", [None, "roo-secret-key"])
def test_roo_code_indexing_session(standin_factory: StandinFactory, api_key: str | None) -> None:
    server = standin_factory(api_key=api_key) if api_key else standin_factory()
    http = server.http(api_key)
    name = collection_name("/home/dev/project")
    assert name.startswith("ws-")
    assert len(name) == 19

    # getCollectionInfo: 404 means "create it".
    missing = http.get(f"/collections/{name}")
    assert missing.status_code == 404
    assert missing.json()["status"] == {"error": f"Not found: Collection `{name}` doesn't exist!"}
    assert isinstance(missing.json()["time"], float)

    created = http.put(
        f"/collections/{name}",
        json={
            "vectors": {"size": DIM, "distance": "Cosine", "on_disk": True},
            "hnsw_config": {"m": 64, "ef_construct": 512, "on_disk": True},
        },
    )
    assert created.status_code == 200
    assert created.json()["result"] is True
    assert created.json()["status"] == "ok"

    for field_name in ["type"] + [f"pathSegments.{i}" for i in range(5)]:
        indexed = http.put(
            f"/collections/{name}/index",
            params={"wait": "true"},
            json={"field_name": field_name, "field_schema": "keyword"},
        )
        assert indexed.status_code == 200, indexed.text
        assert indexed.json()["result"]["status"] == "completed"

    info = http.get(f"/collections/{name}").json()["result"]
    assert info["config"]["params"]["vectors"]["size"] == DIM
    assert set(info["payload_schema"]) == {"type"} | {f"pathSegments.{i}" for i in range(5)}

    files = {
        "src/app.ts": 1,
        "src/lib/util.ts": 2,
        "src/lib/deep/more.ts": 3,
        "docs/readme.md": 20,
    }
    points = [code_point(path, start, seed) for path, seed in files.items() for start in (1, 11)]
    upserted = http.put(
        f"/collections/{name}/points", params={"wait": "true"}, json={"points": points}
    )
    assert upserted.status_code == 200, upserted.text
    assert upserted.json()["result"]["status"] == "completed"

    metadata_id = str(uuid.uuid5(NAMESPACE, "__indexing_metadata__"))
    marked = http.put(
        f"/collections/{name}/points",
        params={"wait": "true"},
        json={
            "points": [
                {
                    "id": metadata_id,
                    "vector": [0] * DIM,
                    "payload": {"type": "metadata", "indexing_complete": True},
                }
            ]
        },
    )
    assert marked.status_code == 200, marked.text

    retrieved = http.post(f"/collections/{name}/points", json={"ids": [metadata_id]})
    assert retrieved.json()["result"] == [
        {"id": metadata_id, "payload": {"type": "metadata", "indexing_complete": True}}
    ]

    # Search in directory "src/lib", like Roo's directory-scoped search.
    query = {
        "query": embed(2),
        "filter": {
            "must": [
                {"key": "pathSegments.0", "match": {"value": "src"}},
                {"key": "pathSegments.1", "match": {"value": "lib"}},
            ],
            "must_not": [{"key": "type", "match": {"value": "metadata"}}],
        },
        "score_threshold": 0.4,
        "limit": 50,
        "params": {"hnsw_ef": 128, "exact": False},
        "with_payload": {"include": PAYLOAD_INCLUDE},
    }
    found = http.post(f"/collections/{name}/points/query", json=query)
    assert found.status_code == 200, found.text
    hits = found.json()["result"]["points"]
    assert {h["payload"]["filePath"] for h in hits} == {"src/lib/util.ts", "src/lib/deep/more.ts"}
    assert hits[0]["payload"]["filePath"] == "src/lib/util.ts"
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    for hit in hits:
        assert set(hit["payload"]) == set(PAYLOAD_INCLUDE)
        assert hit["score"] >= 0.4
        assert isinstance(hit["version"], int)
        assert "vector" not in hit

    # Whole-workspace search: the zero-vector metadata point never shows up.
    query["filter"] = {"must_not": [{"key": "type", "match": {"value": "metadata"}}]}
    query["score_threshold"] = 0.0
    everything = http.post(f"/collections/{name}/points/query", json=query).json()["result"]
    assert len(everything["points"]) == len(points)
    query["score_threshold"] = 0.9999
    best = http.post(f"/collections/{name}/points/query", json=query).json()["result"]["points"]
    assert {h["payload"]["filePath"] for h in best} == {"src/lib/util.ts"}
    assert len(best) == 2

    # Roo deletes the points of changed files with a should-of-musts filter.
    deleted = http.post(
        f"/collections/{name}/points/delete",
        params={"wait": "true"},
        json={"filter": {"should": [path_filter("src/app.ts"), path_filter("docs/readme.md")]}},
    )
    assert deleted.status_code == 200, deleted.text
    counted = http.post(f"/collections/{name}/points/count", json={"exact": True})
    assert counted.json()["result"] == {"count": len(points) - 4 + 1}
    remaining = http.post(
        f"/collections/{name}/points/scroll", json={"limit": 100, "with_payload": True}
    ).json()["result"]
    paths = {p["payload"].get("filePath") for p in remaining["points"]}
    assert paths == {"src/lib/util.ts", "src/lib/deep/more.ts", None}

    # One file only: the plain must filter.
    http.post(
        f"/collections/{name}/points/delete",
        params={"wait": "true"},
        json={"filter": path_filter("src/lib/util.ts")},
    ).raise_for_status()
    info = http.get(f"/collections/{name}").json()["result"]
    assert info["points_count"] == 3

    # clearCollection: an empty filter matches everything.
    http.post(
        f"/collections/{name}/points/delete", params={"wait": "true"}, json={"filter": {"must": []}}
    ).raise_for_status()
    assert http.get(f"/collections/{name}").json()["result"]["points_count"] == 0

    removed = http.delete(f"/collections/{name}")
    assert removed.json()["result"] is True
    assert http.get(f"/collections/{name}").status_code == 404


def test_roo_recreates_on_dimension_change(standin_factory: StandinFactory) -> None:
    server = standin_factory()
    http = server.http()
    name = collection_name("/srv/repo")
    body = {
        "vectors": {"size": DIM, "distance": "Cosine", "on_disk": True},
        "hnsw_config": {"m": 64, "ef_construct": 512, "on_disk": True},
    }
    http.put(f"/collections/{name}", json=body).raise_for_status()
    wrong = http.put(
        f"/collections/{name}/points",
        params={"wait": "true"},
        json={"points": [code_point("a/b.py", 1, 1) | {"vector": [0.5] * (DIM + 1)}]},
    )
    assert wrong.status_code == 400
    assert wrong.json()["status"]["error"] == (
        f"Wrong input: Vector dimension error: expected dim: {DIM}, got {DIM + 1}"
    )
    # Roo sees the size mismatch in getCollectionInfo, deletes and recreates.
    assert http.get(f"/collections/{name}").json()["result"]["config"]["params"]["vectors"][
        "size"
    ] == (DIM)
    assert http.delete(f"/collections/{name}").json()["result"] is True
    body["vectors"]["size"] = DIM + 1
    assert http.put(f"/collections/{name}", json=body).status_code == 200
    fixed = http.put(
        f"/collections/{name}/points",
        params={"wait": "true"},
        json={"points": [code_point("a/b.py", 1, 1) | {"vector": [0.5] * (DIM + 1)}]},
    )
    assert fixed.status_code == 200
