"""`jina-openai`: serve a model (development server), fetch a model, check a model directory.

Flags of `serve` map onto Settings fields; anything not given on the command line comes from
the `JINA_OPENAI_*` environment, then the defaults. Heavy imports happen inside subcommands.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# flag -> (Settings field, argparse options)
_SERVE_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "--model": ("model_dir", {"type": Path, "metavar": "DIR", "help": "model directory"}),
    "--model-id": ("model_id", {"help": "id to serve the model under"}),
    "--alias": (
        "model_aliases",
        {"action": "append", "metavar": "ID", "help": "another accepted model id (repeatable)"},
    ),
    "--host": ("host", {"help": "bind address (default 127.0.0.1)"}),
    "--port": ("port", {"type": int, "help": "port (default 4000)"}),
    "--api-key": (
        "api_keys",
        {
            "action": "append",
            "metavar": "KEY",
            "help": "accepted API key (repeatable; visible in the process "
            "list: prefer JINA_OPENAI_API_KEYS)",
        },
    ),
    "--device": ("device", {"help": "cpu, cuda, cuda:N or auto"}),
    "--dtype": ("dtype", {"choices": ["auto", "float32", "float16", "bfloat16"]}),
    "--torch-threads": ("torch_threads", {"type": int}),
    "--tokenizer-threads": ("tokenizer_threads", {"type": int}),
    "--max-input-tokens": ("max_input_tokens", {"type": int}),
    "--no-truncate": (
        "truncate_inputs",
        {"action": "store_const", "const": False, "help": "reject over-long inputs with 400"},
    ),
    "--max-batch-tokens": ("max_batch_tokens", {"type": int}),
    "--max-queued-tokens": ("max_queued_tokens", {"type": int}),
    "--max-queue-wait-s": ("max_queue_wait_s", {"type": float}),
    "--memory-budget-mb": ("memory_budget_mb", {"type": int}),
    "--malloc-trim-interval-s": ("malloc_trim_interval_s", {"type": float}),
    "--cache-memory-mb": ("cache_memory_mb", {"type": int, "help": "0: no in-memory cache"}),
    "--cache-path": ("cache_path", {"metavar": "FILE", "help": "sqlite file of the disk cache"}),
    "--cache-disk-mb": ("cache_disk_mb", {"type": int}),
    "--max-inputs-per-request": ("max_inputs_per_request", {"type": int}),
    "--max-body-bytes": ("max_body_bytes", {"type": int}),
    "--request-timeout-s": ("request_timeout_s", {"type": float}),
    "--batch-timeout-s": ("batch_timeout_s", {"type": float}),
    "--header-timeout-s": ("header_timeout_s", {"type": float}),
    "--body-timeout-s": ("body_timeout_s", {"type": float}),
    "--max-connections": ("max_connections", {"type": int}),
    "--trusted-proxy": (
        "trusted_proxies",
        {"action": "append", "metavar": "ADDR", "help": "believe X-Forwarded-For from ADDR"},
    ),
    "--log-level": ("log_level", {"choices": ["debug", "info", "warning", "error", "critical"]}),
    "--log-format": ("log_format", {"choices": ["json", "text"]}),
    "--no-warmup": ("warmup", {"action": "store_const", "const": False}),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jina-openai", description="OpenAI-compatible embeddings service."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the service (uvicorn, for development)")
    for flag, (field, options) in _SERVE_FLAGS.items():
        serve.add_argument(flag, dest=field, default=None, **options)
    serve.set_defaults(handler=_serve)

    fetch = commands.add_parser("fetch-model", help="download a model snapshot")
    fetch.add_argument("--dest", type=Path, required=True, metavar="DIR")
    fetch.add_argument("--repo-id", default="jinaai/jina-embeddings-v2-base-code")
    fetch.add_argument("--revision", default=None, help="hub revision (default: the pinned one)")
    fetch.add_argument("--force", action="store_true", help="download even if present")
    fetch.set_defaults(handler=_fetch_model)

    check = commands.add_parser("check-model", help="load a model directory and test it")
    check.add_argument("model_dir", type=Path, metavar="DIR")
    check.add_argument("--device", default="cpu")
    check.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"]
    )
    check.set_defaults(handler=_check_model)
    return parser


def settings_from_args(args: argparse.Namespace) -> Any:
    """Settings with the given flags overriding the environment."""
    from jina_openai.settings import Settings

    overrides = {
        field: getattr(args, field)
        for field, _ in _SERVE_FLAGS.values()
        if getattr(args, field, None) is not None
    }
    return Settings(**overrides)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from pydantic import ValidationError

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"jina-openai serve: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    from jina_openai.app import create_app
    from jina_openai.asgi import exit_process_on_engine_failure
    from jina_openai.http_server import uvicorn_options
    from jina_openai.logging_config import configure_logging

    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings, on_engine_failure=exit_process_on_engine_failure)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=settings.graceful_timeout,
        **uvicorn_options(settings),
    )
    return 0


def _fetch_model(args: argparse.Namespace) -> int:
    from jina_openai.models import provisioning

    revision = args.revision or provisioning.DEFAULT_REVISION
    path = provisioning.fetch_model(
        args.dest, repo_id=args.repo_id, revision=revision, force=args.force
    )
    print(path)
    return 0


def _check_model(args: argparse.Namespace) -> int:
    from jina_openai.models.provisioning import check_model

    report = check_model(args.model_dir, device=args.device, dtype=args.dtype)
    print(report.format())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"jina-openai {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
