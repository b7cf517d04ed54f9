"""The official qdrant-client (REST) against the stand-in."""

from __future__ import annotations

import uuid

import pytest
from qdrant_client import models
from qdrant_client.http.exceptions import UnexpectedResponse

from .conftest import RELEASE_VERSION, Standin


def _points() -> list[models.PointStruct]:
    return [
        models.PointStruct(id=1, vector=[1.0, 0.0, 0.0, 0.0], payload={"lang": "py", "n": 1}),
        models.PointStruct(id=2, vector=[0.9, 0.1, 0.0, 0.0], payload={"lang": "py", "n": 2}),
        models.PointStruct(id=3, vector=[0.0, 1.0, 0.0, 0.0], payload={"lang": "rs", "n": 3}),
        models.PointStruct(
            id="6f1c2b1e-0000-4000-8000-00000000000a",
            vector=[0.0, 0.0, 1.0, 0.0],
            payload={"lang": "go", "tags": ["a", "b"], "nested": {"k": "v"}},
        ),
    ]


def test_full_collection_lifecycle(shared_qdrant: Standin) -> None:
    client = shared_qdrant.client()
    name = "client-lifecycle"
    assert client.info().version == RELEASE_VERSION
    assert not client.collection_exists(name)
    assert client.create_collection(
        name,
        vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE, on_disk=True),
        hnsw_config=models.HnswConfigDiff(m=64, ef_construct=512, on_disk=True),
    )
    assert client.collection_exists(name)
    assert name in [c.name for c in client.get_collections().collections]
    result = client.create_payload_index(name, "lang", models.PayloadSchemaType.KEYWORD)
    assert result.status == models.UpdateStatus.COMPLETED

    result = client.upsert(name, _points(), wait=True)
    assert result.status == models.UpdateStatus.COMPLETED

    info = client.get_collection(name)
    assert info.points_count == 4
    assert info.status == models.CollectionStatus.GREEN
    assert isinstance(info.config.params.vectors, models.VectorParams)
    assert info.config.params.vectors.size == 4
    assert info.config.params.vectors.distance == models.Distance.COSINE
    assert info.config.params.vectors.on_disk is True
    assert (info.config.hnsw_config.m, info.config.hnsw_config.ef_construct) == (64, 512)
    assert info.payload_schema["lang"].data_type == models.PayloadSchemaType.KEYWORD
    assert info.payload_schema["lang"].points == 4

    py_only = models.Filter(
        must=[models.FieldCondition(key="lang", match=models.MatchValue(value="py"))]
    )
    hits = client.query_points(
        name, query=[1.0, 0.05, 0.0, 0.0], query_filter=py_only, limit=10, with_payload=True
    ).points
    assert [h.id for h in hits] == [1, 2]
    assert hits[0].score == pytest.approx(0.99875, abs=1e-4)
    assert hits[0].payload == {"lang": "py", "n": 1}
    assert hits[0].version >= 0

    unfiltered = client.query_points(
        name, query=[0.0, 0.0, 1.0, 0.0], limit=1, with_payload=False
    ).points
    assert [h.id for h in unfiltered] == ["6f1c2b1e-0000-4000-8000-00000000000a"]
    assert unfiltered[0].payload is None

    assert client.count(name, exact=True).count == 4
    assert client.count(name, count_filter=py_only).count == 2

    page, next_offset = client.scroll(name, limit=2, with_payload=True)
    assert [p.id for p in page] == [1, 2]
    page2, last = client.scroll(name, limit=2, offset=next_offset)
    assert [p.id for p in page2] == [3, "6f1c2b1e-0000-4000-8000-00000000000a"]
    assert last is None

    (record,) = client.retrieve(name, [3], with_vectors=True)
    assert record.vector == [0.0, 1.0, 0.0, 0.0]
    assert record.payload == {"lang": "rs", "n": 3}

    tag_filter = models.Filter(
        must=[models.FieldCondition(key="tags", match=models.MatchAny(any=["b", "z"]))]
    )
    assert client.count(name, count_filter=tag_filter).count == 1

    snapshot = client.create_snapshot(name, wait=True)
    assert snapshot is not None
    assert snapshot.size > 0
    assert snapshot.checksum is not None
    assert len(snapshot.checksum) == 64
    listed = client.list_snapshots(name)
    assert [s.name for s in listed] == [snapshot.name]
    snapshot_file = shared_qdrant.workdir / "snapshots" / name / snapshot.name
    assert snapshot_file.stat().st_size == snapshot.size

    result = client.delete(name, points_selector=models.FilterSelector(filter=py_only), wait=True)
    assert result.status == models.UpdateStatus.COMPLETED
    assert client.count(name).count == 2
    client.delete(name, points_selector=models.PointIdsList(points=[3]), wait=True)
    assert [p.id for p in client.scroll(name)[0]] == ["6f1c2b1e-0000-4000-8000-00000000000a"]

    assert client.delete_collection(name)
    assert not client.collection_exists(name)
    with pytest.raises(UnexpectedResponse) as caught:
        client.get_collection(name)
    assert caught.value.status_code == 404


def test_uuid_ids_are_normalised(shared_qdrant: Standin) -> None:
    client = shared_qdrant.client()
    name = "client-uuid"
    client.create_collection(name, models.VectorParams(size=2, distance=models.Distance.DOT))
    raw = "6F1C2B1E00004000800000000000000B"
    client.upsert(name, [models.PointStruct(id=raw, vector=[1.0, 2.0])], wait=True)
    (record,) = client.retrieve(name, [str(uuid.UUID(raw))])
    assert record.id == "6f1c2b1e-0000-4000-8000-00000000000b"
    client.delete_collection(name)


def test_client_errors(shared_qdrant: Standin) -> None:
    client = shared_qdrant.client()
    name = "client-errors"
    client.create_collection(name, models.VectorParams(size=3, distance=models.Distance.EUCLID))
    with pytest.raises(UnexpectedResponse) as caught:
        client.create_collection(name, models.VectorParams(size=3, distance=models.Distance.DOT))
    assert caught.value.status_code == 409
    with pytest.raises(UnexpectedResponse) as caught:
        client.upsert(name, [models.PointStruct(id=1, vector=[1.0, 2.0])], wait=True)
    assert caught.value.status_code == 400
    assert b"expected dim: 3, got 2" in caught.value.content
    with pytest.raises(UnexpectedResponse) as caught:
        client.query_points("no-such-collection", query=[1.0, 2.0, 3.0])
    assert caught.value.status_code == 404
    client.delete_collection(name)
