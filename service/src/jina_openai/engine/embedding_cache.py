"""A content-addressed cache of embedding vectors: never embed the same prepared input twice.

Roo Code re-sends chunks the service has already embedded: after "Clear Index Data", after an
indexing error (Roo drops the whole collection), for a second worktree or window of the same
repository, and for every colleague who indexes it on a shared host. A vector is a function of
the model files, the dtype, the truncation settings and the prepared token ids (special tokens
added, truncation applied), so those are the key:

    identity = sha256(cache format, jina_openai and torch versions, model files, dtype,
                      max_input_tokens, truncate_inputs)
    key      = blake2b(prepared int32 ids, key=identity, 16 bytes)

Two tiers, looked up in order from the tokenization pool, after an input is prepared:

- memory: an LRU of vectors bounded in bytes (`memory_bytes`, counted inside the worker's memory
  budget: engine.py adds it to the resident memory the bounds are derived from);
- disk (optional): one sqlite file under the service's state directory, shared by the workers,
  surviving restarts, capped in bytes with least-recently-used eviction, emptied when the
  identity changes (engine/embedding_store.py). Its hits are promoted to memory.

A request's hits are answered from the cache and only its misses are queued and batched; their
vectors are stored once computed. The cache is an optimisation: a failing disk tier logs and
turns itself off, it never fails a request.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import jina_openai
from jina_openai.engine.embedding_store import EmbeddingStore
from jina_openai.engine.input_preparation import PreparedInputs
from jina_openai.engine.observer import EngineObserver
from jina_openai.models.base import Embedder
from jina_openai.models.device import dtype_name

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the key or the stored vector layout changes
KEY_BYTES = 16
# A memory entry beyond its vector's bytes: the key and value `bytes` objects and the LRU's node.
ENTRY_OVERHEAD_BYTES = 200


@dataclass(frozen=True)
class CacheConfig:
    model_dir: Path  # its files are part of the identity
    memory_bytes: int  # 0: no memory tier
    disk_path: Path | None  # None: no disk tier
    disk_bytes: int


def model_fingerprint(model_dir: Path) -> str:
    """sha256 over every regular file under `model_dir`: relative path, size and contents."""
    digest = hashlib.sha256()
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(model_dir).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue  # .cache/ and lock files of hub downloads: not the model
        digest.update(f"{relative}\0{path.stat().st_size}\0".encode())
        with path.open("rb") as handle:
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()


def cache_identity(*parts: object) -> str:
    """sha256 of everything besides the input that determines a vector."""
    return hashlib.sha256("\0".join(str(part) for part in parts).encode()).hexdigest()


@dataclass
class CacheLookup:
    """One request's inputs against the cache: the hits' vectors and the misses' positions."""

    keys: list[bytes]
    hits: dict[int, np.ndarray]  # input index -> float32 vector
    misses: list[int]  # input indices, ascending

    def missing_inputs(self, prepared: PreparedInputs) -> PreparedInputs:
        ids = [prepared.ids[index] for index in self.misses]
        return PreparedInputs(
            ids=ids,
            token_count=sum(int(array.shape[0]) for array in ids),
            truncated_inputs=0,  # not used past admission; the request reports its own count
        )

    def merge(self, computed: np.ndarray | None, *, dimension: int) -> np.ndarray:
        """All vectors in input order: the hits, and `computed` (the misses', in order)."""
        vectors = np.empty((len(self.keys), dimension), dtype=np.float32)
        for index, vector in self.hits.items():
            vectors[index] = vector
        if self.misses:
            assert computed is not None
            vectors[self.misses] = computed
        return vectors


class MemoryTier:
    """An LRU of key -> vector bytes, bounded by `capacity_bytes`. Thread-safe."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity_bytes = capacity_bytes
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: bytes, value: bytes) -> int:
        """Store one entry; returns how many were evicted to make room."""
        cost = len(value) + ENTRY_OVERHEAD_BYTES
        if cost > self.capacity_bytes:
            return 0
        evicted = 0
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return 0
            while self.bytes + cost > self.capacity_bytes:
                _, old = self._entries.popitem(last=False)
                self.bytes -= len(old) + ENTRY_OVERHEAD_BYTES
                evicted += 1
            self._entries[key] = value
            self.bytes += cost
            self.evictions += evicted
        return evicted


class EmbeddingCache:
    def __init__(
        self,
        *,
        identity: str,
        memory: MemoryTier | None,
        store: EmbeddingStore | None,
        observer: EngineObserver,
    ) -> None:
        self.identity = identity
        self.memory = memory
        self.store = store
        self._observer = observer
        self._key = bytes.fromhex(identity)[:32]

    def key(self, ids: np.ndarray) -> bytes:
        return hashlib.blake2b(ids.tobytes(), digest_size=KEY_BYTES, key=self._key).digest()

    def look_up(self, prepared: PreparedInputs) -> CacheLookup:
        """Which inputs are cached (runs in the tokenization pool: the disk tier blocks)."""
        keys = [self.key(ids) for ids in prepared.ids]
        found: dict[int, bytes] = {}
        if self.memory is not None:
            for index, key in enumerate(keys):
                value = self.memory.get(key)
                if value is not None:
                    found[index] = value
        memory_hits = len(found)
        if self.store is not None and len(found) < len(keys):
            wanted = {keys[i]: i for i in range(len(keys)) if i not in found}
            promoted = self.store.get_many(list(wanted))
            for key, value in promoted.items():
                found[wanted[key]] = value
            self._remember(promoted.items())
        hits = {index: np.frombuffer(value, dtype=np.float32) for index, value in found.items()}
        misses = [index for index in range(len(keys)) if index not in hits]
        self._observer.cache_looked_up(
            memory_hits=memory_hits, disk_hits=len(hits) - memory_hits, misses=len(misses)
        )
        return CacheLookup(keys=keys, hits=hits, misses=misses)

    def store_computed(self, lookup: CacheLookup, computed: np.ndarray) -> None:
        """Keep the misses' vectors (cheap: the disk tier writes from its own thread)."""
        pairs = [
            (lookup.keys[index], np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for index, vector in zip(lookup.misses, computed, strict=True)
        ]
        self._remember(pairs)
        if self.store is not None:
            self.store.put_many(pairs)

    def _remember(self, pairs: Iterable[tuple[bytes, bytes]]) -> None:
        if self.memory is None:
            return
        evicted = sum(self.memory.put(key, value) for key, value in pairs)
        if evicted:
            self._observer.cache_evicted("memory", evicted)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def open_cache(
    config: CacheConfig | None,
    *,
    embedder: Embedder,
    truncate_inputs: bool,
    observer: EngineObserver,
) -> EmbeddingCache | None:
    """The engine's cache for the loaded model (None when both tiers are off). A disk tier
    that cannot be opened is logged and left out: the cache never stops the service."""
    if config is None or (config.memory_bytes <= 0 and config.disk_path is None):
        return None
    identity = cache_identity(
        CACHE_FORMAT,
        jina_openai.__version__,
        torch.__version__,
        model_fingerprint(config.model_dir),
        dtype_name(embedder.dtype),
        embedder.max_input_tokens,
        truncate_inputs,
    )
    store = None
    if config.disk_path is not None:
        try:
            store = EmbeddingStore(
                config.disk_path,
                identity=identity,
                max_bytes=config.disk_bytes,
                on_evicted=lambda count: observer.cache_evicted("disk", count),
            )
        except (OSError, sqlite3.Error) as exc:
            logger.error("embedding cache %s cannot be used: %s", config.disk_path, exc)
    memory = MemoryTier(config.memory_bytes) if config.memory_bytes > 0 else None
    logger.info(
        "embedding cache: memory %.0f MiB, disk %s",
        config.memory_bytes / (1 << 20),
        f"{store.path} (up to {config.disk_bytes / (1 << 20):.0f} MiB)" if store else "off",
    )
    return EmbeddingCache(
        identity=identity,
        memory=memory,
        store=store,
        observer=observer,
    )
