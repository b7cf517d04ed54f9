"""GET /metrics: Prometheus text exposition of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from jina_openai.api.service_state import service
from jina_openai.metrics import METRICS_CONTENT_TYPE

router = APIRouter()


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    operation_id="metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format",
        }
    },
)
async def metrics(request: Request) -> Response:
    return Response(service(request).metrics.render(), media_type=METRICS_CONTENT_TYPE)
