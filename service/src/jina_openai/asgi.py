"""ASGI entry points for servers that import an app by name.

    gunicorn -c python:jina_openai.gunicorn_conf 'jina_openai.asgi:create_app()'
    gunicorn -c python:jina_openai.gunicorn_conf jina_openai.asgi:app
    uvicorn --factory jina_openai.asgi:create_app

Settings come from the `JINA_OPENAI_*` environment. Importing this module does nothing: `app`
is built on its first lookup (module `__getattr__`) and every later lookup in the process returns
that same app. gunicorn looks it up once per worker, after the fork (`preload_app = False`), so
each worker builds its own; `create_app()` builds a new app on every call.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from typing import Any

from fastapi import FastAPI

from jina_openai.app import create_app as create_app_from_settings
from jina_openai.logging_config import configure_logging
from jina_openai.settings import Settings

# A model that cannot load: the status gunicorn's arbiter reads as "worker failed to boot" (it
# then stops rather than respawning the worker forever); uvicorn uses it for startup failures.
EXIT_LOAD_FAILURE = 3
# The inference thread died, hung or gave up after loading: a plain failure, so gunicorn respawns
# the worker and systemd (Restart=on-failure) restarts `jina-openai serve`.
EXIT_ENGINE_FAILURE = 1


# After the engine gave up, the event loop gets this long to answer the requests it just failed
# (500 / 503 rather than a reset connection) before the process ends.
EXIT_GRACE_S = 1.0


def exit_process_on_engine_failure(exc: BaseException, during_load: bool) -> None:
    """A server process without a working model is useless: log, flush, exit. Called on the
    inference or watchdog thread (the inference thread may be hung: only exiting ends it)."""
    what = "the model could not be loaded" if during_load else "the inference thread gave up"
    logging.getLogger(__name__).critical("exiting: %s: %s", what, exc)
    if not during_load:
        time.sleep(EXIT_GRACE_S)
    logging.shutdown()
    os._exit(EXIT_LOAD_FAILURE if during_load else EXIT_ENGINE_FAILURE)


def create_app() -> FastAPI:
    settings = Settings()  # type: ignore[call-arg]  # model_dir comes from the environment
    configure_logging(settings.log_level, settings.log_format)
    return create_app_from_settings(settings, on_engine_failure=exit_process_on_engine_failure)


@functools.cache
def _app_of_this_process() -> FastAPI:
    return create_app()


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app_of_this_process()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
