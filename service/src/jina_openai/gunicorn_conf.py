"""gunicorn configuration for production:

    gunicorn -c python:jina_openai.gunicorn_conf 'jina_openai.asgi:create_app()'

Read from the same `JINA_OPENAI_*` environment as the app. Workers are uvicorn workers (the
maintained `uvicorn-worker` package) with this service's connection bounds and proxy trust
(`jina_openai.http_server.BoundedUvicornWorker`), one per device by default: each loads its
own model copy in its own lifespan, after the fork. The master never imports the app, torch or CUDA
(`preload_app = False`). Workers are recycled after `max_requests` (+ jitter) and given
`graceful_timeout` seconds to finish in-flight requests.
"""

from __future__ import annotations

from jina_openai.settings import Settings


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


__all__ = [  # what `from jina_openai.gunicorn_conf import *` gives a deployment's own config
    "accesslog",
    "bind",
    "errorlog",
    "forwarded_allow_ips",
    "graceful_timeout",
    "keepalive",
    "loglevel",
    "max_requests",
    "max_requests_jitter",
    "preload_app",
    "proc_name",
    "timeout",
    "worker_class",
    "workers",
]

_settings = Settings()  # type: ignore[call-arg]  # a gunicorn config module is evaluated for its names

bind = [bind_address(_settings.host, _settings.port)]
workers = _settings.workers
worker_class = "jina_openai.http_server.BoundedUvicornWorker"
# Only configured proxies may set X-Forwarded-For (gunicorn's default trusts 127.0.0.1).
forwarded_allow_ips = ",".join(_settings.trusted_proxies)
preload_app = False
max_requests = _settings.max_requests
max_requests_jitter = _settings.max_requests_jitter
graceful_timeout = _settings.graceful_timeout
timeout = _settings.worker_timeout
keepalive = _settings.keepalive
accesslog = None  # the app logs one structured line per request
errorlog = "-"
loglevel = _settings.log_level
proc_name = "jina-openai"
