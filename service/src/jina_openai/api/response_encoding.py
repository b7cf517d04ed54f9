"""Vectors -> the JSON body of an embeddings response (float lists or base64 float32).

Built as bytes directly: no per-float pydantic or jsonable_encoder work on large responses.
"""

from __future__ import annotations

import base64
import json
from typing import Literal

import numpy as np

EncodingFormat = Literal["float", "base64"]


def truncate_dimensions(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """Keep the first `dimensions` values of each row and re-normalise to unit length."""
    if dimensions is None or dimensions >= vectors.shape[1]:
        return vectors
    kept = np.array(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(kept, axis=1, keepdims=True)
    return kept / np.maximum(norms, 1e-12)


# Upper bounds of one encoded value, with the join's copy: float JSON writes up to ~24
# characters per float32 ("-0.012345678901234567,"), base64 4/3 of its 4 bytes.
_ENCODED_BYTES_PER_VALUE = {"float": 2 * 24, "base64": 2 * 6}


def response_size_bound(inputs: int, dimension: int, encoding_format: EncodingFormat) -> int:
    """Bytes the response body of `inputs` vectors may take while it is built."""
    return inputs * dimension * _ENCODED_BYTES_PER_VALUE[encoding_format]


def encode_embeddings_response(
    vectors: np.ndarray,
    *,
    encoding_format: EncodingFormat,
    model: str,
    prompt_tokens: int,
) -> bytes:
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    if encoding_format == "base64":
        encoded = ['"' + base64.b64encode(row.tobytes()).decode("ascii") + '"' for row in rows]
    else:
        encoded = [json.dumps(row.tolist(), separators=(",", ":")) for row in rows]
    items = ",".join(
        f'{{"object":"embedding","index":{index},"embedding":{embedding}}}'
        for index, embedding in enumerate(encoded)
    )
    usage = f'{{"prompt_tokens":{prompt_tokens},"total_tokens":{prompt_tokens}}}'
    text = f'{{"object":"list","data":[{items}],"model":{json.dumps(model)},"usage":{usage}}}'
    return text.encode("utf-8")
