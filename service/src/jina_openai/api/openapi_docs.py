"""OpenAPI details FastAPI cannot infer: the hand-parsed request body and error responses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from jina_openai.api.schemas import EmbeddingRequest, ErrorResponse

_ERROR_DESCRIPTIONS = {
    400: "Invalid request (bad JSON, wrong types, empty input, unknown token ids...)",
    401: "Missing or incorrect API key",
    404: "Unknown model or route",
    405: "Method not allowed",
    408: "The request body did not arrive within body_timeout_s",
    413: "Request body or token count too large",
    415: "Content-Type is not JSON",
    429: "Server at capacity; retry after the Retry-After header's seconds",
    500: "Server error",
    503: "Model loading, failed, shutting down, or the request passed its deadline",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorResponse, "description": _ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


EMBEDDING_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/EmbeddingRequest"}}
        },
    }
}


def install_openapi(app: FastAPI) -> None:
    """Add the request schema of the hand-parsed embeddings body to the generated document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas["EmbeddingRequest"] = EmbeddingRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
