"""A model directory's JSON files, read in one place: `config.json` (the registry, the native
JinaBERT, the provisioning check) and the sentence-transformers files. Errors name the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jina_openai.models.errors import CheckpointError, MissingCheckpointFileError

CONFIG_FILE = "config.json"


def read_json(path: Path) -> Any:
    """The JSON value in `path`: MissingCheckpointFileError when it is absent, CheckpointError
    when it cannot be read or parsed (both are ModelLoadError)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MissingCheckpointFileError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable JSON: {exc}") from exc


def read_model_config(model_dir: Path) -> dict[str, Any]:
    """The model's `config.json`, which must hold a JSON object."""
    path = Path(model_dir) / CONFIG_FILE
    config = read_json(path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{path} must hold a JSON object")
    return config
