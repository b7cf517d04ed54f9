"""Errors raised while loading a model directory."""

from __future__ import annotations


class ModelLoadError(RuntimeError):
    """A model directory is missing a file, is incomplete, or describes an unsupported model."""


class CheckpointError(ModelLoadError, ValueError):
    """A model directory is incomplete, inconsistent or not the model it claims to be (or the
    requested device/dtype cannot run it)."""


class MissingCheckpointFileError(CheckpointError, FileNotFoundError):
    """A required file of a model directory does not exist."""
