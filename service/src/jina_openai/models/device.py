"""Resolution of the `device` and `dtype` settings into torch objects."""

from __future__ import annotations

import re

import torch

from jina_openai.models.errors import ModelLoadError

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_CUDA = re.compile(r"^cuda(:([0-9]+))?$")


def resolve_device(device: str) -> torch.device:
    """ "cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU) -> torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(device)
    if match is None:
        raise ModelLoadError(f"unsupported device {device!r}: use cpu, cuda, cuda:N or auto")
    if not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} requested but CUDA is not available")
    index = int(match.group(2)) if match.group(2) else 0
    if index >= torch.cuda.device_count():
        raise ModelLoadError(
            f"device {device!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
        )
    return torch.device("cuda", index)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """ "auto" (float32 on CPU, float16 on CUDA), "float32", "float16" or "bfloat16". On CPU
    the model registry resolves "auto" by measurement instead (models/dtype_choice.py)."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ModelLoadError(
            f"unsupported dtype {dtype!r}: use auto, float32, float16 or bfloat16"
        ) from None


def dtype_name(dtype: torch.dtype) -> str:
    """ "float32" for torch.float32 and so on."""
    return str(dtype).removeprefix("torch.")
