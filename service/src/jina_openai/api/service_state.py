"""Everything the routes need, stored on `app.state.service` by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from jina_openai.engine.engine import EmbeddingEngine
from jina_openai.metrics import ServiceMetrics
from jina_openai.settings import Settings


@dataclass
class ServiceState:
    settings: Settings
    engine: EmbeddingEngine
    metrics: ServiceMetrics

    def served_model_id(self) -> str | None:
        """The id the model is served under; None until it is loaded (unless configured)."""
        if self.settings.model_id:
            return self.settings.model_id
        embedder = self.engine.embedder
        return embedder.model_id if embedder is not None else None

    def accepted_model_ids(self) -> list[str]:
        served = self.served_model_id()
        ids = [served] if served else []
        return ids + [alias for alias in self.settings.model_aliases if alias != served]


def service(request: Request) -> ServiceState:
    state = request.app.state.service
    assert isinstance(state, ServiceState)
    return state
