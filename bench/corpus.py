"""The inputs every benchmark uses: Roo-Code-sized chunks of Python's own standard library.

Roo Code cuts files into chunks of at most ~1150 characters (1000 plus 15 % tolerance) along
line boundaries; `code_chunks` does the same over the stdlib's `*.py` files in sorted order (its
top-level modules first, then its packages, for loads that need more than the ~4,000 chunks the
modules give, e.g. `make roo-load` with 8 workspaces of 1,000), so every run on every machine
with the same Python gets the same inputs.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

MAX_CHUNK_CHARS = 1150
MIN_CHUNK_CHARS = 100


def code_chunks(count: int, *, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """`count` chunks of up to `max_chars` characters, cut at line ends, deterministic."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    min_chars = min(MIN_CHUNK_CHARS, max_chars // 2)
    chunks: list[str] = []
    packages = (p for p in stdlib.glob("*/**/*.py") if "site-packages" not in p.parts)
    for source in [*sorted(stdlib.glob("*.py")), *sorted(packages)]:
        text = source.read_text(encoding="utf-8", errors="replace")
        current = ""
        for line in text.splitlines(keepends=True):
            if len(current) + len(line) > max_chars:
                if len(current) >= min_chars:
                    chunks.append(current)
                    if len(chunks) >= count:
                        return chunks
                current = line[:max_chars]
            else:
                current += line
    if len(chunks) < count:
        raise RuntimeError(f"the stdlib at {stdlib} yields only {len(chunks)} chunks")
    return chunks
