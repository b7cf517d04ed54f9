#!/usr/bin/python3
"""End-to-end check of a provisioned stack, done the way Roo Code does it (playbooks/verify.yml).

Runs on the embeddings host with python3's standard library. Settings come from the
environment (so keys never show in a process list): VERIFY_EMBEDDINGS_URL (base URL ending in
/v1), VERIFY_EMBEDDINGS_API_KEY, VERIFY_QDRANT_URL, VERIFY_QDRANT_API_KEY (may be empty),
VERIFY_WORKSPACE (the fake workspace path the collection name is hashed from).

Steps: Roo's configuration check, embedding real code chunks with base64, a ws-<hash>
collection with Roo's parameters and payload indexes, an upsert with Roo's payload and metadata
point, Roo's query shape (the expected chunk must rank first), a delete by filter, and dropping
the collection. Prints one JSON object (timings in ms); exits 1 with "error" set on failure.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import math
import os
import struct
import sys
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

# Roo Code's namespace for uuidv5 point ids (QDRANT_CODE_BLOCK_NAMESPACE).
NAMESPACE = uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479")
PAYLOAD_FIELDS = ["filePath", "codeChunk", "startLine", "endLine", "pathSegments"]

CHUNKS = [
    (
        "src/billing/invoice.py",
        1,
        9,
        "def invoice_total(lines, tax_rate):\n"
        '    """Sum the invoice lines and add the tax."""\n'
        "    subtotal = sum(line.price * line.quantity for line in lines)\n"
        "    tax = subtotal * tax_rate\n"
        "    return round(subtotal + tax, 2)\n",
    ),
    (
        "src/db/users.sql",
        1,
        4,
        "SELECT id, email, created_at\nFROM users\n"
        "WHERE active = TRUE\nORDER BY created_at DESC;\n",
    ),
    (
        "src/web/api.ts",
        10,
        18,
        "export async function fetchJson<T>(url: string): Promise<T> {\n"
        "  const response = await fetch(url, { headers: { Accept: 'application/json' } });\n"
        "  if (!response.ok) throw new Error(`HTTP ${response.status}`);\n"
        "  return (await response.json()) as T;\n}\n",
    ),
    (
        "scripts/backup.sh",
        1,
        6,
        '#!/bin/sh\nset -eu\nstamp=$(date +%Y%m%d)\ntar -czf "/backups/home-$stamp.tar.gz" /home\n'
        'find /backups -name "home-*.tar.gz" -mtime +7 -delete\n',
    ),
    (
        "src/util/strings.rs",
        3,
        9,
        "pub fn slugify(title: &str) -> String {\n"
        '    title.to_lowercase().split_whitespace().collect::<Vec<_>>().join("-")\n}\n',
    ),
]
QUERY = "compute the invoice total with tax from the invoice lines"
EXPECTED = "src/billing/invoice.py"


class CheckError(Exception):
    """A step did not behave as Roo Code needs."""


def request(
    method: str, url: str, headers: dict[str, str], body: Any = None, timeout: float = 120
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        req.add_header(name, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:300].decode(errors="replace")
        raise CheckError(f"{method} {url} answered {exc.code}: {detail}") from None
    except OSError as exc:
        raise CheckError(f"{method} {url} failed: {exc}") from None


def decode(item: Any, dimension: int | None) -> list[float]:
    embedding = item.get("embedding")
    if not isinstance(embedding, str):
        raise CheckError("the service did not answer base64 when asked for it")
    raw = base64.b64decode(embedding)
    vector = list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not vector or (dimension is not None and len(vector) != dimension):
        raise CheckError(f"vector of {len(vector)} dimensions, expected {dimension}")
    if not all(math.isfinite(v) for v in vector):
        raise CheckError("a vector holds NaN or infinity")
    return vector


def main() -> int:
    env = os.environ
    embed_url = env["VERIFY_EMBEDDINGS_URL"].rstrip("/")
    qdrant_url = env["VERIFY_QDRANT_URL"].rstrip("/")
    workspace = env.get("VERIFY_WORKSPACE", "/srv/jina-stack-verify/workspace")
    embed_headers = {"Authorization": f"Bearer {env.get('VERIFY_EMBEDDINGS_API_KEY', '')}"}
    qdrant_headers = (
        {"api-key": env["VERIFY_QDRANT_API_KEY"]} if env.get("VERIFY_QDRANT_API_KEY") else {}
    )
    collection = "ws-" + hashlib.sha256(workspace.encode()).hexdigest()[:16]
    report: dict[str, Any] = {"collection": collection, "timings_ms": {}}
    timings = report["timings_ms"]

    def timed(name: str, method: str, url: str, headers: dict[str, str], body: Any = None) -> Any:
        started = time.monotonic()
        answer = request(method, url, headers, body)
        timings[name] = round((time.monotonic() - started) * 1000, 1)
        return answer

    try:
        models = timed("list_models", "GET", f"{embed_url}/models", embed_headers)
        model, dimension = models["data"][0]["id"], int(models["data"][0]["dimension"])
        report.update(model=model, dimension=dimension)
        # Roo's configuration check: one request with input ["test"].
        check = timed(
            "config_check",
            "POST",
            f"{embed_url}/embeddings",
            embed_headers,
            {"input": ["test"], "model": model, "encoding_format": "base64"},
        )
        decode(check["data"][0], dimension)
        answer = timed(
            "embed_chunks",
            "POST",
            f"{embed_url}/embeddings",
            embed_headers,
            {"input": [chunk[3] for chunk in CHUNKS], "model": model, "encoding_format": "base64"},
        )
        vectors = [decode(item, dimension) for item in answer["data"]]
        if len(vectors) != len(CHUNKS):
            raise CheckError(f"{len(CHUNKS)} inputs gave {len(vectors)} vectors")

        base = f"{qdrant_url}/collections/{collection}"
        with contextlib.suppress(CheckError):  # a collection left behind by an interrupted run
            request("DELETE", base, qdrant_headers)
        timed(
            "create_collection",
            "PUT",
            base,
            qdrant_headers,
            {
                "vectors": {"size": dimension, "distance": "Cosine", "on_disk": True},
                "hnsw_config": {"m": 64, "ef_construct": 512, "on_disk": True},
            },
        )
        started = time.monotonic()
        for field in ["type"] + [f"pathSegments.{i}" for i in range(5)]:
            request(
                "PUT",
                f"{base}/index?wait=true",
                qdrant_headers,
                {"field_name": field, "field_schema": "keyword"},
            )
        timings["payload_indexes"] = round((time.monotonic() - started) * 1000, 1)

        points = []
        for (path, start, end, code), vector in zip(CHUNKS, vectors, strict=True):
            segment_hash = hashlib.sha256(f"{path}-{start}-{end}-{code}".encode()).hexdigest()
            points.append(
                {
                    "id": str(uuid.uuid5(NAMESPACE, segment_hash)),
                    "vector": vector,
                    "payload": {
                        "filePath": path,
                        "codeChunk": code,
                        "startLine": start,
                        "endLine": end,
                        "segmentHash": segment_hash,
                        "pathSegments": {str(i): part for i, part in enumerate(path.split("/"))},
                    },
                }
            )
        metadata_id = str(uuid.uuid5(NAMESPACE, "__indexing_metadata__"))
        metadata = {
            "id": metadata_id,
            "vector": [0.0] * dimension,
            "payload": {"type": "metadata", "indexing_complete": False},
        }
        timed(
            "upsert",
            "PUT",
            f"{base}/points?wait=true",
            qdrant_headers,
            {"points": [*points, metadata]},
        )
        metadata["payload"]["indexing_complete"] = True
        request("PUT", f"{base}/points?wait=true", qdrant_headers, {"points": [metadata]})

        query = timed(
            "embed_query",
            "POST",
            f"{embed_url}/embeddings",
            embed_headers,
            {"input": [QUERY], "model": model, "encoding_format": "base64"},
        )
        query_vector = decode(query["data"][0], dimension)
        found = timed(
            "query",
            "POST",
            f"{base}/points/query",
            qdrant_headers,
            {
                "query": query_vector,
                "filter": {
                    "must": [{"key": "pathSegments.0", "match": {"value": "src"}}],
                    "must_not": [{"key": "type", "match": {"value": "metadata"}}],
                },
                "score_threshold": 0.4,
                "limit": 50,
                "params": {"hnsw_ef": 128, "exact": False},
                "with_payload": {"include": PAYLOAD_FIELDS},
            },
        )["result"]["points"]
        report["ranking"] = [
            {"filePath": p["payload"]["filePath"], "score": round(p["score"], 4)} for p in found
        ]
        if not found or found[0]["payload"]["filePath"] != EXPECTED:
            raise CheckError(f"expected {EXPECTED} first for {QUERY!r}, got {report['ranking']}")
        if any(p["payload"]["filePath"].startswith("scripts/") for p in found):
            raise CheckError("the pathSegments.0 filter let a point outside src/ through")

        # Roo deletes a changed file's points by filter on its path segments.
        timed(
            "delete_by_filter",
            "POST",
            f"{base}/points/delete?wait=true",
            qdrant_headers,
            {
                "filter": {
                    "must": [
                        {"key": f"pathSegments.{i}", "match": {"value": segment}}
                        for i, segment in enumerate(EXPECTED.split("/"))
                    ]
                }
            },
        )
        left = request("POST", f"{base}/points/count", qdrant_headers, {"exact": True})["result"][
            "count"
        ]
        if left != len(CHUNKS):  # the other chunks plus the metadata point
            raise CheckError(
                f"{left} points left after deleting {EXPECTED}, expected {len(CHUNKS)}"
            )
        timed("drop_collection", "DELETE", base, qdrant_headers)
        try:
            request("GET", base, qdrant_headers)
        except CheckError:
            pass
        else:
            raise CheckError(f"{collection} still exists after DELETE")
    except (CheckError, KeyError, IndexError, TypeError, ValueError) as exc:
        report["error"] = (
            f"{type(exc).__name__}: {exc}" if not isinstance(exc, CheckError) else str(exc)
        )
        print(json.dumps(report))
        return 1
    report["ok"] = True
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
