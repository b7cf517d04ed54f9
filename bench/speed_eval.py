"""The code-search evaluation of `make bench-speed`, and the vector comparisons it reports.

Pairs (query, expected chunk) come from Python's own standard library, read with `ast`: for
every function or method with a docstring, the query is the docstring's first line (what a
person would type: "Return the number of ..."), the chunk is the function's source without its
docstring (so the query is not found verbatim), cut at line ends to Roo Code's chunk size. The
search is the cosine argmax over all the evaluation's chunks. Deterministic: sorted files,
evenly spaced picks.
"""

from __future__ import annotations

import ast
import functools
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.corpus import MAX_CHUNK_CHARS, MIN_CHUNK_CHARS

MIN_QUERY_CHARS = 20
MAX_QUERY_CHARS = 200


@dataclass(frozen=True)
class SearchPair:
    query: str
    chunk: str
    where: str  # "file.py:function"


def _without_docstring(
    lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef
) -> str | None:
    """The function's source lines with the docstring's lines removed."""
    doc = node.body[0]
    if doc.end_lineno is None or node.end_lineno is None:
        return None
    start = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    kept = lines[start : doc.lineno - 1] + lines[doc.end_lineno : node.end_lineno]
    text = ""
    for line in kept:  # cut at a line end, like the corpus
        if len(text) + len(line) > MAX_CHUNK_CHARS:
            break
        text += line
    return text


def _pairs_of_file(path: Path) -> list[SearchPair]:
    source = path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines = source.splitlines(keepends=True)
    pairs = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        docstring = ast.get_docstring(node)
        if not docstring:
            continue
        query = docstring.strip().splitlines()[0].strip()
        if not MIN_QUERY_CHARS <= len(query) <= MAX_QUERY_CHARS:
            continue
        chunk = _without_docstring(lines, node)
        if chunk is None or len(chunk.strip()) < MIN_CHUNK_CHARS:
            continue
        pairs.append(SearchPair(query, chunk, f"{path.name}:{node.name}"))
    return pairs


@functools.cache
def _all_pairs() -> tuple[SearchPair, ...]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    seen_queries: set[str] = set()
    seen_chunks: set[str] = set()
    every: list[SearchPair] = []
    for path in sorted(stdlib.glob("*.py")):
        for pair in _pairs_of_file(path):
            if pair.query in seen_queries or pair.chunk in seen_chunks:
                continue
            seen_queries.add(pair.query)
            seen_chunks.add(pair.chunk)
            every.append(pair)
    return tuple(every)


def search_pairs(count: int) -> list[SearchPair]:
    """`count` pairs spread evenly over the stdlib's `*.py` files; distinct queries and chunks."""
    every = _all_pairs()
    if len(every) < count:
        raise RuntimeError(f"the stdlib yields only {len(every)} search pairs, not {count}")
    step = len(every) / count
    return [every[int(k * step)] for k in range(count)]


def top1(queries: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """Index of the most similar chunk for each query (rows are unit vectors)."""
    return np.asarray(np.argmax(queries @ chunks.T, axis=1))


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of `a` with the same row of `b`."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return np.asarray(np.sum(a64 * b64, axis=1) / np.maximum(norms, 1e-30))


def cosine_summary(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cosines = rowwise_cosine(a, b)
    return {
        "min": round(float(cosines.min()), 6),
        "mean": round(float(cosines.mean()), 6),
        "max_abs_diff": float(np.max(np.abs(a - b))),
    }


def search_summary(expected: list[int], found: np.ndarray) -> dict[str, float]:
    hits = int(np.sum(found == np.asarray(expected)))
    return {"pairs": len(expected), "top1_hits": hits, "top1_accuracy": hits / len(expected)}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of queries whose top-1 result is the same chunk under both."""
    return float(np.mean(a == b))
