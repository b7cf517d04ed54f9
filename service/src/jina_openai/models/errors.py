"""Errors raised while loading a model directory."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model directory is missing a file, is incomplete, or describes an unsupported model."""
