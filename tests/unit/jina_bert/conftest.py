"""Fixtures: tiny JinaBERT v2 checkpoints built at test time (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .checkpoints import (
    SPEC_ODD_HEADS,
    SPEC_POW2_HEADS,
    MakeCheckpoint,
    TinySpec,
    train_tokenizer,
    write_checkpoint,
)


@pytest.fixture(scope="session")
def tokenizer_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tokenizer(tmp_path_factory.mktemp("tokenizer") / "tokenizer.json")


@pytest.fixture(scope="session")
def make_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, tokenizer_json: Path
) -> MakeCheckpoint:
    """Build (once per distinct arguments) a checkpoint directory and return its path."""
    cache: dict[tuple, Path] = {}

    def make(
        spec: TinySpec = SPEC_ODD_HEADS,
        *,
        prefix: str = "",
        extra_heads: bool = True,
        seed: int = 0,
    ) -> Path:
        key = (spec, prefix, extra_heads, seed)
        if key not in cache:
            dest = tmp_path_factory.mktemp("jina-ckpt")
            cache[key] = write_checkpoint(
                dest, spec, tokenizer_json, prefix=prefix, extra_heads=extra_heads, seed=seed
            )
        return cache[key]

    return make


@pytest.fixture(scope="session")
def odd_heads_dir(make_checkpoint: MakeCheckpoint) -> Path:
    return make_checkpoint(SPEC_ODD_HEADS)


@pytest.fixture(scope="session")
def pow2_heads_dir(make_checkpoint: MakeCheckpoint) -> Path:
    return make_checkpoint(SPEC_POW2_HEADS, prefix="bert.")
