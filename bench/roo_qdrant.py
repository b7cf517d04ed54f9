"""The Qdrant half of Roo's batch, optional in `make roo-load` (`--qdrant-url`): each workspace
gets Roo's collection (`ws-` + 16 hex of sha256 of its path, Cosine, on disk, hnsw m 64 /
ef_construct 512), recreated empty at the start, and every embedded batch is upserted with
`wait=true`, as Roo's QdrantVectorStore does. Works against Qdrant or tests/qdrant-standin.
Loopback only."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import httpx

from bench.loadgen import check_loopback
from bench.roo_client import Upsert, check_vectors

# Roo's QDRANT_CODE_BLOCK_NAMESPACE (uuidv5 namespace of the points' ids)
POINT_NAMESPACE = uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479")


def collection_name(workspace_path: str) -> str:
    return "ws-" + hashlib.sha256(workspace_path.encode()).hexdigest()[:16]


class QdrantUpserter:
    def __init__(self, base_url: str, api_key: str = "") -> None:
        check_loopback(base_url)
        headers = {"api-key": api_key} if api_key else {}
        self.client = httpx.AsyncClient(base_url=base_url, headers=headers, timeout=300.0)

    async def for_workspace(self, name: str) -> Upsert:
        path = f"/roo-load/{name}"
        collection = collection_name(path)
        await self.client.delete(f"/collections/{collection}")
        created = False
        creating = asyncio.Lock()

        async def upsert(texts: list[str], vectors: list[list[float]]) -> None:
            nonlocal created
            check_vectors(texts, vectors)
            async with creating:  # the first batch creates it, at the vectors' size
                if not created:
                    body = {
                        "vectors": {"size": len(vectors[0]), "distance": "Cosine", "on_disk": True},
                        "hnsw_config": {"m": 64, "ef_construct": 512, "on_disk": True},
                    }
                    response = await self.client.put(f"/collections/{collection}", json=body)
                    response.raise_for_status()
                    created = True
            points = [
                {
                    "id": str(
                        uuid.uuid5(POINT_NAMESPACE, hashlib.sha256(text.encode()).hexdigest())
                    ),
                    "vector": vector,
                    "payload": {"filePath": f"{name}/chunk.py", "codeChunk": text},
                }
                for text, vector in zip(texts, vectors, strict=True)
            ]
            response = await self.client.put(
                f"/collections/{collection}/points",
                params={"wait": "true"},
                json={"points": points},
            )
            response.raise_for_status()

        return upsert

    async def close(self) -> None:
        await self.client.aclose()
