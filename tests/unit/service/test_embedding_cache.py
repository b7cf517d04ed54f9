"""The embedding cache: hits answer without a batch, only misses are batched, vectors agree,
memory and disk stay within their caps, the disk tier survives restarts and is invalidated by
a change of model or dtype, and a broken file never fails a request."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jina_openai.engine.embedding_cache import ENTRY_OVERHEAD_BYTES, MemoryTier, model_fingerprint
from jina_openai.engine.embedding_store import EmbeddingStore

from .test_api_embeddings import embed, vectors_of

TEXTS = ["def f(x):\n    return x + 1\n", "import os\nprint(os.getcwd())", "class A:\n    pass\n"]


def metric(client: Any, name: str, **labels: str) -> float:
    text = client.get("/metrics").text
    selector = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name + ("{" + selector + "}" if selector else "")) + r" ([0-9.e+-]+)"
    match = re.search(pattern, text)
    assert match, f"{name} {labels} not in /metrics"
    return float(match.group(1))


def test_a_repeated_request_is_answered_from_memory_without_a_batch(
    instrumented_app: Any,
) -> None:
    with instrumented_app(cache_memory_mb=8) as (client, embedder):
        first = embed(client, input=TEXTS)
        batches = len(embedder.batches)
        assert embedder.embedded_inputs == 3
        second = embed(client, input=TEXTS)
        assert len(embedder.batches) == batches  # nothing was embedded again
        np.testing.assert_array_equal(vectors_of(first), vectors_of(second))
        assert second.json()["usage"] == first.json()["usage"]  # tokens are still counted
        assert metric(client, "jina_openai_cache_hits_total", tier="memory") == 3
        assert metric(client, "jina_openai_cache_misses_total") == 3
        assert metric(client, "jina_openai_cache_entries", tier="memory") == 3
        assert metric(client, "jina_openai_cache_bytes", tier="memory") > 0


def test_a_request_mixing_hits_and_misses_is_batched_for_its_misses_only(
    instrumented_app: Any, tiny_model_dir: Path
) -> None:
    mixed = [TEXTS[0], "a chunk never seen before", TEXTS[2], "another new one"]
    with instrumented_app(cache_memory_mb=0) as (client, _):
        reference = vectors_of(embed(client, input=mixed))  # no cache: every input computed
    with instrumented_app(cache_memory_mb=8) as (client, embedder):
        embed(client, input=TEXTS)
        embedder.batches.clear()
        vectors = vectors_of(embed(client, input=mixed))
        embedded = [ids for batch in embedder.batches for ids in batch]
        new_ids = [embedder.prepare(ids) for ids in embedder.tokenize([mixed[1], mixed[3]])]
        assert sorted(embedded) == sorted(new_ids)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.9999, cosines


def test_token_id_inputs_are_cached_like_texts(instrumented_app: Any) -> None:
    with instrumented_app(cache_memory_mb=8) as (client, embedder):
        first = vectors_of(embed(client, input=[[5, 6, 7], [8, 9]]))
        count = embedder.embedded_inputs
        second = vectors_of(embed(client, input=[[8, 9], [5, 6, 7]]))
        assert embedder.embedded_inputs == count
        np.testing.assert_array_equal(first[::-1], second)


def test_the_disk_tier_survives_a_restart_and_is_dropped_when_the_dtype_changes(
    instrumented_app: Any, tmp_path: Path
) -> None:
    path = tmp_path / "state" / "embedding-cache.sqlite3"
    with instrumented_app(cache_memory_mb=0, cache_path=path) as (client, _):
        computed = vectors_of(embed(client, input=TEXTS))
        client.app.state.service.engine.cache.store.flush()
        identity = client.get("/info").json()["cache"]["identity"]
    with instrumented_app(cache_memory_mb=8, cache_path=path) as (client, embedder):
        info = client.get("/info").json()["cache"]
        assert info == {
            "memory_mb": 8,
            "disk_path": str(path),
            "disk_mb": 1024,
            "identity": identity,
        }
        restored = vectors_of(embed(client, input=TEXTS))
        assert embedder.embedded_inputs == 0
        assert metric(client, "jina_openai_cache_hits_total", tier="disk") == 3
        embed(client, input=TEXTS)  # promoted to memory by the disk hit
        assert metric(client, "jina_openai_cache_hits_total", tier="memory") == 3
        assert metric(client, "jina_openai_cache_entries", tier="disk") == 3
    np.testing.assert_array_equal(computed, restored)
    with instrumented_app(cache_memory_mb=0, cache_path=path, dtype="bfloat16") as (client, emb):
        assert client.get("/info").json()["cache"]["identity"] != identity
        assert metric(client, "jina_openai_cache_entries", tier="disk") == 0  # invalidated
        embed(client, input=TEXTS)
        assert emb.embedded_inputs == 3


def test_a_changed_model_file_changes_the_fingerprint(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    before = model_fingerprint(copy)
    assert model_fingerprint(copy) == before
    (copy / ".cache").mkdir()
    (copy / ".cache" / "download.lock").write_text("x")  # hub bookkeeping: not the model
    assert model_fingerprint(copy) == before
    config = copy / "config.json"
    config.write_text(config.read_text().replace("}", ', "note": 1}', 1))
    assert model_fingerprint(copy) != before


def test_the_memory_tier_stays_within_its_bytes_and_evicts_the_least_recently_used() -> None:
    vector = bytes(128)
    cost = len(vector) + ENTRY_OVERHEAD_BYTES
    tier = MemoryTier(capacity_bytes=3 * cost)
    for key in (b"a", b"b", b"c"):
        assert tier.put(key, vector) == 0
    assert tier.get(b"a") == vector  # a is now the most recently used
    assert tier.put(b"d", vector) == 1  # evicts b
    assert tier.get(b"b") is None
    assert {key for key in (b"a", b"c", b"d") if tier.get(key)} == {b"a", b"c", b"d"}
    assert tier.bytes == 3 * cost <= tier.capacity_bytes
    assert tier.evictions == 1
    assert MemoryTier(capacity_bytes=cost - 1).put(b"x", vector) == 0  # too big: not kept


def store_pairs(count: int, *, start: int = 0, size: int = 3072) -> list[tuple[bytes, bytes]]:
    return [(i.to_bytes(16, "big"), bytes([i % 251]) * size) for i in range(start, start + count)]


def test_the_disk_tier_is_capped_and_keeps_what_was_used_recently(tmp_path: Path) -> None:
    evicted: list[int] = []
    cap = 1 << 20
    store = EmbeddingStore(
        tmp_path / "cache.sqlite3", identity="a", max_bytes=cap, on_evicted=evicted.append
    )
    try:
        store.put_many(store_pairs(200))  # ~800 KB: under the cap
        store.flush()
        assert evicted == []
        keep = [key for key, _ in store_pairs(10)]
        assert len(store.get_many(keep)) == 10  # touched: now more recent than 10..199
        store.flush()
        store.put_many(store_pairs(100, start=200))  # over the cap: the oldest go
        store.flush()
        assert sum(evicted) > 0
        assert len(store.get_many(keep)) == 10
        assert store.get_many([store_pairs(1, start=10)[0][0]]) == {}
        for start in range(300, 1500, 100):
            store.put_many(store_pairs(100, start=start))
            store.flush()
            assert store.used_bytes() <= cap + 100 * 4096 + 65536  # one batch over, at most
        assert sum(evicted) == store.evictions
        assert store.entries() < 300
        assert (tmp_path / "cache.sqlite3").stat().st_size <= 2 * cap
    finally:
        store.close()


def test_workers_share_one_file(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite3"
    writer = EmbeddingStore(path, identity="a", max_bytes=1 << 24)
    reader = EmbeddingStore(path, identity="a", max_bytes=1 << 24)
    try:
        writer.put_many(store_pairs(5))
        writer.flush()
        assert reader.get_many([key for key, _ in store_pairs(5)]) == dict(store_pairs(5))
    finally:
        writer.close()
        reader.close()


def test_an_unreadable_file_is_moved_aside_and_a_failing_one_turns_the_tier_off(
    tmp_path: Path,
) -> None:
    path = tmp_path / "cache.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    store = EmbeddingStore(path, identity="a", max_bytes=1 << 24)
    try:
        assert (tmp_path / "cache.sqlite3.corrupt").read_bytes().startswith(b"this is not")
        store.put_many(store_pairs(2))
        store.flush()
        assert len(store.get_many([key for key, _ in store_pairs(2)])) == 2
        with sqlite3.connect(path) as other:
            other.execute("DROP TABLE vectors")
        assert store.get_many([b"x" * 16]) == {}  # the error turns the tier off ...
        assert not store.enabled
        assert store.get_many([key for key, _ in store_pairs(2)]) == {}  # ... and it stays off
    finally:
        store.close()


@pytest.mark.parametrize("memory_mb", [0, 8])
def test_a_broken_disk_tier_never_fails_a_request(
    instrumented_app: Any, tmp_path: Path, memory_mb: int
) -> None:
    path = tmp_path / "cache.sqlite3"
    with instrumented_app(cache_memory_mb=memory_mb, cache_path=path) as (client, _):
        with sqlite3.connect(path) as other:
            other.execute("DROP TABLE vectors")
        assert embed(client, input=TEXTS).status_code == 200
        assert embed(client, input=TEXTS).status_code == 200


def test_a_cache_path_that_cannot_be_opened_leaves_memory_only_and_is_not_touched(
    instrumented_app: Any, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-directory"
    blocker.mkdir()
    (blocker / "keep").write_text("user data")
    with instrumented_app(cache_memory_mb=8, cache_path=blocker) as (client, _):
        assert client.get("/info").json()["cache"]["disk_path"] is None
        assert embed(client, input=TEXTS).status_code == 200
        embed(client, input=TEXTS)
        assert metric(client, "jina_openai_cache_hits_total", tier="memory") == 3
    assert (blocker / "keep").read_text() == "user data"
