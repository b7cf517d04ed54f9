"""The thing we replaced, kept as the baseline of `make bench`: the obvious embeddings server.

FastAPI; a semaphore of 8 requests in flight; each request is one `encode` call (batches of 32
in the request's own order, as sentence-transformers' `encode` does) run in a thread; then
`gc.collect()` after every request, the usual remedy for "memory keeps growing". No token budget,
no admission control, no batching across requests.

    python -m bench.naive_server --model DIR --port 4100 [--device cpu]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
from pathlib import Path
from typing import Any

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import AutoModel, AutoTokenizer

CONCURRENCY = 8
ENCODE_BATCH = 32


class EmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str | None = None
    encoding_format: str = "float"


class NaiveEncoder:
    def __init__(self, model_dir: Path, device: str) -> None:
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).to(self.device).eval()
        self.max_length = min(512, int(self.model.config.max_position_embeddings))
        config = model_dir / "sentence_bert_config.json"
        if config.is_file():
            import json

            self.max_length = int(json.loads(config.read_text())["max_seq_length"])

    def encode(self, texts: list[str]) -> tuple[np.ndarray, int]:
        vectors: list[np.ndarray] = []
        tokens = 0
        for start in range(0, len(texts), ENCODE_BATCH):
            batch = self.tokenizer(
                texts[start : start + ENCODE_BATCH],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            ).to(self.device)
            mask = batch["attention_mask"]
            tokens += int(mask.sum())
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
                pooled = (hidden * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
            vectors.append(pooled.float().cpu().numpy())
        return np.concatenate(vectors), tokens


def create_app(encoder: NaiveEncoder) -> FastAPI:
    app = FastAPI()
    semaphore = asyncio.Semaphore(CONCURRENCY)

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return {"status": "ready"}

    @app.post("/v1/embeddings")
    async def embeddings(request: EmbeddingRequest) -> dict[str, Any]:
        texts = [request.input] if isinstance(request.input, str) else request.input
        async with semaphore:
            vectors, tokens = await asyncio.to_thread(encoder.encode, texts)
            gc.collect()
        data: list[dict[str, Any]] = []
        for index, vector in enumerate(vectors):
            if request.encoding_format == "base64":
                value: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                value = vector.tolist()
            data.append({"object": "embedding", "index": index, "embedding": value})
        return {
            "object": "list",
            "data": data,
            "model": request.model or "naive",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    app = create_app(NaiveEncoder(args.model, args.device))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
