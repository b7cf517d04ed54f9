"""`dtype: auto` on CPU: bfloat16 where the CPU computes it natively and a measurement agrees.

bfloat16 halves the bytes every matrix multiply moves, and CPUs with native bf16 instructions
(x86 `avx512_bf16` / `amx_bf16`, Arm `bf16`) run its dot products at twice the float32 rate or
more: ~2.7-2.9x the inputs/s of float32 on a 2-core AMD EPYC for MiniLM and the full-size
JinaBERT, at a cosine of 0.9999 to the float32 vectors. Elsewhere PyTorch emulates bf16 and is
slower than float32. So on CPU `auto` decides by what it can see:

1. no native bf16 flag in /proc/cpuinfo -> float32, nothing measured;
2. otherwise the self-check: load float32, embed the check inputs (a few code snippets) and
   take the CPU time they cost; release that model; load bfloat16 and do the same. bfloat16 is
   kept only when it is at least SPEEDUP_MARGIN faster and every vector has cosine >=
   MIN_COSINE to float32's; else the float32 model is loaded again. The two models are never
   resident together, so the peak RSS is float32's (the bf16 load converts one tensor at a
   time, models/converting_reader.py).

The outcome and its figures (`DtypeChoice`) go to the startup log line, `/info` and `/metrics`.
An explicit `dtype` setting skips all of this.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from jina_openai.models.base import Embedder
from jina_openai.models.device import dtype_name

logger = logging.getLogger(__name__)

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 (2), aarch64 (1)
SPEEDUP_MARGIN = 1.1  # bfloat16 must be this much faster: a tie is not worth the precision
MIN_COSINE = 0.999
CHECK_TOKENS = 128  # each check input is cut to this many content tokens
CHECK_RUNS = 2  # timed runs per dtype after one untimed (kernel selection, allocation)

# What the service embeds: source code. Eight snippets, ~100-130 tokens each.
CHECK_TEXTS = (
    "def read_config(path):\n    with open(path, encoding='utf-8') as handle:\n"
    "        config = json.load(handle)\n    if not isinstance(config, dict):\n"
    "        raise ValueError(f'{path} must hold a JSON object')\n    return config\n",
    "class LRUCache:\n    def __init__(self, capacity: int) -> None:\n"
    "        self.capacity = capacity\n        self.items = OrderedDict()\n\n"
    "    def get(self, key):\n        value = self.items.pop(key)\n"
    "        self.items[key] = value\n        return value\n",
    "export async function fetchWithRetry(url: string, attempts = 3): Promise<Response> {\n"
    "  for (let i = 0; i < attempts; i++) {\n    const response = await fetch(url);\n"
    "    if (response.ok) return response;\n    await sleep(500 * 2 ** i);\n  }\n"
    "  throw new Error(`failed after ${attempts} attempts`);\n}\n",
    "func (s *Server) handle(w http.ResponseWriter, r *http.Request) {\n"
    '\tif r.Method != http.MethodPost {\n\t\thttp.Error(w, "method not allowed", 405)\n'
    "\t\treturn\n\t}\n\tbody, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody))\n"
    "\tif err != nil {\n\t\thttp.Error(w, err.Error(), 400)\n\t\treturn\n\t}\n}\n",
    "fn parse_line(line: &str) -> Result<(String, u32), ParseError> {\n"
    "    let (name, count) = line.split_once(',').ok_or(ParseError::MissingComma)?;\n"
    "    let count = count.trim().parse::<u32>().map_err(ParseError::BadNumber)?;\n"
    "    Ok((name.trim().to_owned(), count))\n}\n",
    "SELECT customer_id, SUM(amount) AS total\nFROM orders\n"
    "WHERE created_at >= NOW() - INTERVAL '30 days'\nGROUP BY customer_id\n"
    "HAVING SUM(amount) > 1000\nORDER BY total DESC\nLIMIT 20;\n",
    '#include <stdio.h>\n\nint main(int argc, char **argv) {\n    FILE *f = fopen(argv[1], "r");\n'
    '    if (!f) { perror("fopen"); return 1; }\n    char line[256];\n'
    "    while (fgets(line, sizeof line, f)) fputs(line, stdout);\n    fclose(f);\n"
    "    return 0;\n}\n",
    "- name: Install the service unit\n  ansible.builtin.template:\n"
    "    src: service.j2\n    dest: /etc/systemd/system/app.service\n    mode: '0644'\n"
    "  notify: Restart app\n",
)


@dataclass(frozen=True)
class DtypeChoice:
    """What was chosen and why (shown by the startup log, /info and /metrics)."""

    dtype: str  # "float32", "bfloat16", ...
    configured: str  # the setting: "auto" or an explicit dtype
    reason: str  # one sentence
    native_bf16: tuple[str, ...] = ()  # the CPU flags found
    float32_inputs_per_cpu_s: float | None = None  # the self-check's figures, when it ran
    bfloat16_inputs_per_cpu_s: float | None = None
    min_cosine: float | None = None

    @property
    def measured(self) -> bool:
        return self.float32_inputs_per_cpu_s is not None


def native_bf16_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, ...]:
    """The native-bf16 flags of this CPU (empty when none or when /proc/cpuinfo is unreadable)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return ()
    found: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            found.update(flag for flag in value.split() if flag in NATIVE_BF16_FLAGS)
    return tuple(flag for flag in NATIVE_BF16_FLAGS if flag in found)


def check_inputs(embedder: Embedder) -> list[list[int]]:
    """The self-check's prepared inputs (the same ids for every dtype: one tokenizer)."""
    content = embedder.tokenize(list(CHECK_TEXTS), limit=CHECK_TOKENS)
    return [embedder.prepare(ids[:CHECK_TOKENS]) for ids in content]


def time_inputs(embedder: Embedder, inputs: list[list[int]]) -> tuple[float, np.ndarray]:
    """(inputs per CPU second, best of CHECK_RUNS after one untimed run; the vectors).

    CPU time of this process, not wall time: a startup shares the machine (other workers
    loading, other services), and contention stretches the wall time of whichever dtype it
    hits, while the CPU seconds an input costs stay put (measured: float32 4.2-6.0 CPU-s and
    bfloat16 2.0-3.3 for the same inputs while the wall times overlapped, at load average 6)."""
    with torch.inference_mode():
        vectors = embedder.embed(inputs)
        best = float("inf")
        for _ in range(CHECK_RUNS):
            started = time.process_time()
            embedder.embed(inputs)
            best = min(best, time.process_time() - started)
    return len(inputs) / max(best, 1e-9), vectors


Load = Callable[[torch.dtype], Embedder]
Measure = Callable[[Embedder, list[list[int]]], tuple[float, np.ndarray]]


def choose_cpu_dtype(
    load: Load,
    *,
    flags: tuple[str, ...],
    measure: Measure = time_inputs,
) -> tuple[Embedder, DtypeChoice]:
    """`dtype: auto` on CPU (see the module docstring): the loaded embedder and the choice."""
    if not flags:
        return load(torch.float32), DtypeChoice(
            dtype="float32",
            configured="auto",
            reason="float32: this CPU has no native bfloat16 (no "
            + "/".join(NATIVE_BF16_FLAGS)
            + " flag)",
        )
    reference = load(torch.float32)
    inputs = check_inputs(reference)
    float32_rate, float32_vectors = measure(reference, inputs)
    del reference
    gc.collect()  # the float32 weights are unmapped / freed before the next load
    candidate = load(torch.bfloat16)
    bfloat16_rate, bfloat16_vectors = measure(candidate, inputs)
    cosine = float(np.min(np.sum(float32_vectors * bfloat16_vectors, axis=1)))
    speedup = bfloat16_rate / float32_rate
    figures = (
        f"bfloat16 {bfloat16_rate:.1f} vs float32 {float32_rate:.1f} inputs per CPU second "
        f"({speedup:.2f}x), min cosine {cosine:.5f} over {len(inputs)} check inputs"
    )
    keep = speedup >= SPEEDUP_MARGIN and cosine >= MIN_COSINE
    if keep:
        embedder, dtype = candidate, "bfloat16"
        reason = f"bfloat16: native on this CPU ({', '.join(flags)}) and measured: {figures}"
    else:
        why = (
            f"under the {SPEEDUP_MARGIN}x margin"
            if speedup < SPEEDUP_MARGIN
            else f"cosine under {MIN_COSINE}"
        )
        del candidate
        gc.collect()
        embedder, dtype = load(torch.float32), "float32"
        reason = f"float32: bfloat16 is native here ({', '.join(flags)}) but {why}: {figures}"
    choice = DtypeChoice(
        dtype=dtype,
        configured="auto",
        reason=reason,
        native_bf16=flags,
        float32_inputs_per_cpu_s=round(float32_rate, 2),
        bfloat16_inputs_per_cpu_s=round(bfloat16_rate, 2),
        min_cosine=round(cosine, 6),
    )
    logger.info("dtype auto on cpu: %s", reason)
    return embedder, choice


def fixed_choice(dtype: torch.dtype, configured: str, device: torch.device) -> DtypeChoice:
    """The choice when nothing is measured: an explicit setting, or `auto` on a GPU."""
    name = dtype_name(dtype)
    if configured == "auto":
        reason = f"{name}: the default on {device.type}"
    else:
        reason = f"{name}: configured"
    return DtypeChoice(dtype=name, configured=configured, reason=reason)
