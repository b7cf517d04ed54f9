"""Process logging: one line per record, JSON (default) or key=value text, on stderr.

Called by the entry points (CLI, gunicorn worker app factory), never at import time. Request
lines carry their fields in `record.fields` (see api/middleware.py).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        payload.update(_fields(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False, default=str)


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [stamp, record.levelname.lower(), record.name, record.getMessage()]
        parts += [f"{key}={_quote(value)}" for key, value in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=')) else text


class RepeatLimitFilter(logging.Filter):
    """Lets one record whose message starts with `prefix` through per `interval_s`, noting how
    many were held back. For asyncio's "socket.accept() out of system resource", which it logs
    once per pending connection, in a loop, when descriptors run out (http_server.py)."""

    def __init__(
        self, prefix: str, *, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._prefix = prefix
        self._interval_s = interval_s
        self._clock = clock
        self._next = float("-inf")
        self._held_back = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith(self._prefix):
            return True
        now = self._clock()
        if now < self._next:
            self._held_back += 1
            return False
        if self._held_back:
            record.msg = f"{record.msg} ({self._held_back} more since the last such line)"
            record.args = None
        self._held_back = 0
        self._next = now + self._interval_s
        return True


def configure_logging(level: str = "info", log_format: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "gunicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Requests are logged by jina_openai.access with their timings; uvicorn's line would repeat it.
    logging.getLogger("uvicorn.access").disabled = True
    asyncio_logger = logging.getLogger("asyncio")
    asyncio_logger.filters[:] = [RepeatLimitFilter("socket.accept() out of system resource")]
