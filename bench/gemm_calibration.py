"""The CPU's matrix-multiply rate in float32 and in bfloat16, in a fresh process.

What bfloat16 can gain on a machine is bounded by this ratio, and machines that all report
`avx512_bf16` differ: on the AMD EPYC family 25 host of 2026-12-07 the multiply ran 2.4-2.8x
faster in bfloat16 and the full-size model served 1.95x, where earlier runs on this project's
machines served 3.2x. `make bench-speed` records it with the machine, so that its speed-ups can
be read against what the hardware offers. Prints one JSON object.

    python -m bench.gemm_calibration --threads 2
"""

from __future__ import annotations

import argparse
import json
import time

# One JinaBERT v2 feed-forward projection over a batch of 2048 tokens: (M x K) by (K x N).
M, K, N = 2048, 768, 3072
REPEATS = 10


def gflops(dtype_name: str) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    inputs = torch.randn(M, K, dtype=dtype)
    weight = torch.randn(N, K, dtype=dtype)
    with torch.inference_mode():
        for _ in range(3):
            torch.nn.functional.linear(inputs, weight)
        started = time.perf_counter()
        for _ in range(REPEATS):
            torch.nn.functional.linear(inputs, weight)
        elapsed = time.perf_counter() - started
    return 2 * M * K * N * REPEATS / elapsed / 1e9


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    float32, bfloat16 = gflops("float32"), gflops("bfloat16")
    print(
        json.dumps(
            {
                "shape": f"{M}x{K} by {K}x{N}",
                "threads": args.threads,
                "float32_gflops": round(float32),
                "bfloat16_gflops": round(bfloat16),
                "bfloat16_ratio": round(bfloat16 / float32, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
