"""The HTTP layer, a module per part a request passes through:

- `middleware.py`: request id, access log and metrics (outermost), then the API-key check;
- `embeddings.py`: POST /v1/embeddings, from the body's limits to the encoded response;
- `routes.py`: every other route (models, health, ready, info, metrics) and their shared state;
- `errors.py`: the OpenAI error envelope, every error (engine errors included) mapped in one place;
- `schemas.py`: request and response bodies, the OpenAPI details, the per-request log record.

`jina_openai.app.create_app` wires them together.
"""
