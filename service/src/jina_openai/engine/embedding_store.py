"""The embedding cache's disk tier: one sqlite file, shared by the workers, capped in bytes.

    meta(name PRIMARY KEY, value)          identity: what the vectors were computed with
    vectors(key UNIQUE, vector, used)      used: milliseconds since the epoch of the last hit

- WAL mode: readers (each worker's tokenization pool, through one lock-guarded connection) never
  wait for the writer; `synchronous=NORMAL`, since a lost last transaction only costs a re-embed.
- Writes and the hits' `used` updates go through a bounded queue to one writer thread per worker,
  so a request never waits for the disk; when the queue is full the write is dropped (counted).
- After each write the file's used pages are compared with the cap, and the least recently used
  rows are deleted down to EVICT_TO of it (freed pages are reused; the file does not grow past
  the cap by more than one batch).
- Opening with another identity (model files, dtype or truncation changed) empties the table:
  those vectors can never be hit again. A file sqlite cannot read is moved aside to
  `<name>.corrupt` and a new one created; an error while serving turns the tier off (logged).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

EVICT_TO = 0.9  # after going over the cap, evict down to this share of it
WRITE_QUEUE_BATCHES = 256
LOOKUP_CHUNK = 500  # keys per SELECT (sqlite's bound on parameters is 32766; stay small)
BUSY_TIMEOUT_S = 5.0

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vectors ("
    "key BLOB NOT NULL UNIQUE, vector BLOB NOT NULL, used INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS vectors_used ON vectors (used)",
)

Pairs = Sequence[tuple[bytes, bytes]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class EmbeddingStore:
    def __init__(
        self,
        path: Path,
        *,
        identity: str,
        max_bytes: int,
        on_evicted: Callable[[int], None] = lambda count: None,
    ) -> None:
        self.path = path
        self.identity = identity
        self.max_bytes = max_bytes
        self._on_evicted = on_evicted
        self.enabled = True
        self.dropped_writes = 0
        self.evictions = 0
        self.invalidated = 0  # rows of another identity removed at open
        self._read_lock = threading.Lock()
        self._reader = self._open()
        self._writes: queue.Queue[tuple[str, list[tuple[bytes, bytes]] | list[bytes]] | None] = (
            queue.Queue(maxsize=WRITE_QUEUE_BATCHES)
        )
        self._writer = threading.Thread(
            target=self._write_loop, name="jina-openai-cache-writer", daemon=True
        )
        self._writer.start()

    # --- opening --------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect_and_check()
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) or not self.path.is_file():
                raise  # cannot open or lock it (permissions, a directory): not ours to move
            aside = self.path.with_name(self.path.name + ".corrupt")
            logger.warning(
                "embedding cache %s is unreadable (%s): moved to %s", self.path, exc, aside
            )
            for suffix in ("-wal", "-shm"):
                self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
            self.path.replace(aside)
            return self._connect_and_check()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        return connection

    def _connect_and_check(self) -> sqlite3.Connection:
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            for statement in SCHEMA:
                connection.execute(statement)
            row = connection.execute("SELECT value FROM meta WHERE name = 'identity'").fetchone()
            if row is None or row[0] != self.identity:
                self.invalidated = connection.execute("DELETE FROM vectors").rowcount
                connection.execute(
                    "INSERT OR REPLACE INTO meta (name, value) VALUES ('identity', ?)",
                    (self.identity,),
                )
                if row is not None:
                    logger.info(
                        "embedding cache %s: model, dtype or truncation changed, %d vectors "
                        "removed",
                        self.path,
                        self.invalidated,
                    )
            connection.execute("COMMIT")
        except BaseException:
            connection.close()
            raise
        return connection

    # --- reading (tokenization pool threads) ----------------------------------------------------
    def get_many(self, keys: list[bytes]) -> dict[bytes, bytes]:
        if not self.enabled or not keys:
            return {}
        found: dict[bytes, bytes] = {}
        try:
            with self._read_lock:
                for start in range(0, len(keys), LOOKUP_CHUNK):
                    chunk = keys[start : start + LOOKUP_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows = self._reader.execute(
                        f"SELECT key, vector FROM vectors WHERE key IN ({marks})", chunk
                    ).fetchall()
                    found.update((bytes(key), bytes(vector)) for key, vector in rows)
        except sqlite3.Error as exc:
            self._disable(exc)
            return {}
        if found:
            self._enqueue(("touch", list(found)))
        return found

    # --- writing (one thread) -------------------------------------------------------------------
    def put_many(self, pairs: Pairs) -> None:
        if self.enabled and pairs:
            self._enqueue(("put", list(pairs)))

    def _enqueue(self, item: tuple[str, list[tuple[bytes, bytes]] | list[bytes]]) -> None:
        try:
            self._writes.put_nowait(item)
        except queue.Full:
            self.dropped_writes += 1

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every queued write is done (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._writes.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)

    def _write_loop(self) -> None:
        try:
            connection = self._connect()
        except sqlite3.Error as exc:
            self._disable(exc)
            return
        try:
            while True:
                item = self._writes.get()
                try:
                    if item is None:
                        return
                    if self.enabled:
                        self._write(connection, *item)
                except sqlite3.Error as exc:
                    self._disable(exc)
                finally:
                    self._writes.task_done()
        finally:
            connection.close()

    def _write(
        self,
        connection: sqlite3.Connection,
        kind: str,
        rows: list[tuple[bytes, bytes]] | list[bytes],
    ) -> None:
        now = _now_ms()
        connection.execute("BEGIN IMMEDIATE")
        try:
            if kind == "put":
                connection.executemany(
                    "INSERT OR IGNORE INTO vectors (key, vector, used) VALUES (?, ?, ?)",
                    [(key, vector, now) for key, vector in rows],  # type: ignore[misc]
                )
            else:
                connection.executemany(
                    "UPDATE vectors SET used = ? WHERE key = ?", [(now, key) for key in rows]
                )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        if kind == "put":
            self._evict(connection)

    def used_bytes(self) -> int:
        """Bytes of the file's pages in use (the file less its free pages)."""
        return self._read_gauge(_used_bytes)

    def _evict(self, connection: sqlite3.Connection) -> None:
        used = _used_bytes(connection)
        if used <= self.max_bytes:
            return
        rows = _row_count(connection)
        if rows == 0:
            return
        surplus = 1.0 - EVICT_TO * self.max_bytes / used
        count = max(1, int(rows * surplus))
        deleted = connection.execute(
            "DELETE FROM vectors WHERE rowid IN (SELECT rowid FROM vectors ORDER BY used LIMIT ?)",
            (count,),
        ).rowcount
        self.evictions += deleted
        self._on_evicted(deleted)

    def entries(self) -> int:
        return self._read_gauge(_row_count)

    def _read_gauge(self, read: Callable[[sqlite3.Connection], int]) -> int:
        """A figure for /metrics from the reader connection; 0 when off or unreadable."""
        if not self.enabled:
            return 0
        try:
            with self._read_lock:
                return read(self._reader)
        except sqlite3.Error:
            return 0

    # --- failure and shutdown -------------------------------------------------------------------
    def _disable(self, exc: BaseException) -> None:
        if self.enabled:
            self.enabled = False
            logger.error("embedding cache %s failed, disk tier off: %s", self.path, exc)

    def close(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(queue.Full):
            self._writes.put(None, timeout=timeout)
        self._writer.join(timeout)
        with self._read_lock:
            self._reader.close()


def _used_bytes(connection: sqlite3.Connection) -> int:
    pages = connection.execute("PRAGMA page_count").fetchone()[0]
    free = connection.execute("PRAGMA freelist_count").fetchone()[0]
    size = connection.execute("PRAGMA page_size").fetchone()[0]
    return int((pages - free) * size)


def _row_count(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
