"""A model directory with the full-size JinaBERT v2 architecture and random weights.

The shape of jina-embeddings-v2-base-code (hidden 768, 12 layers, 12 heads, intermediate 3072,
vocab 61056; ~640 MB of float32 safetensors), written the way the unit tests write their tiny
checkpoints (tests/unit/jina_bert/checkpoints.py: upstream config and layout, a small trained
BPE tokenizer), so that the service loads it as it loads the real model. The weights are
random: speed and memory are the real model's, the vectors mean nothing (quality is measured
on MiniLM's real weights). `quick` is a small version of the same architecture, for smoke
tests. Written once under `root` and reused (a marker file names the spec).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

FULL = {"hidden": 768, "layers": 12, "heads": 12, "intermediate": 3072, "vocab": 61056}
QUICK = {"hidden": 128, "layers": 2, "heads": 4, "intermediate": 512, "vocab": 61056}
# The real model's tokenizer makes ~250 tokens of a 1000-character code chunk; the test
# tokenizer (400 entries) makes far more. Inputs are cut to this many tokens so that the work
# per chunk is the real model's.
MAX_INPUT_TOKENS = 256


def model_dir(root: Path, *, quick: bool) -> Path:
    """The checkpoint directory, written now unless it is already there."""
    from tests.unit.jina_bert.checkpoints import TinySpec, train_tokenizer, write_checkpoint

    spec = TinySpec(**(QUICK if quick else FULL))
    dest = root / ("jina-bert-v2-quick" if quick else "jina-bert-v2-full-size")
    marker = dest / "bench-spec.json"
    wanted = json.dumps(asdict(spec), sort_keys=True)
    if marker.is_file() and marker.read_text() == wanted:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(Path(tmp) / "tokenizer.json")
        write_checkpoint(dest, spec, tokenizer, prefix="bert.", seed=0)
    marker.write_text(wanted)
    return dest
