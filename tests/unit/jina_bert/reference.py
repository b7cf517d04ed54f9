"""A straightforward eager JinaBERT v2 forward pass, written from the reference document.

Padded batch, float64, materialised [batch, heads, n, n] scores with the ALiBi bias and a -inf
padding mask, softmax, exactly the per-layer formula of shared/reference/jina-bert-v2.md.
Deliberately shares no code with the implementation under test.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812


def reference_slopes(n: int) -> list[float]:
    def rule(m: int) -> list[float]:
        start = 2 ** (-(2 ** -(math.log2(m) - 3)))  # = 2^(-8/m)
        return [start * start**i for i in range(m)]

    if math.log2(n).is_integer():
        return rule(n)
    closest = 2 ** math.floor(math.log2(n))
    return rule(closest) + rule(2 * closest)[0::2][: n - closest]


def alibi_bias(slopes: list[float], length: int) -> torch.Tensor:
    """The full ``[heads, length, length]`` fp32 bias ``-slope_h * |i - j|``."""
    pos = torch.arange(length, dtype=torch.float32)
    dist = (pos[:, None] - pos[None, :]).abs()
    return -torch.tensor(list(slopes), dtype=torch.float32)[:, None, None] * dist[None]


def _ln(x: torch.Tensor, state: dict, name: str, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], state[name + ".weight"], state[name + ".bias"], eps)


def _linear(x: torch.Tensor, state: dict, name: str) -> torch.Tensor:
    y = x @ state[name + ".weight"].T
    bias = state.get(name + ".bias")
    return y if bias is None else y + bias


def reference_hidden(
    state: dict[str, torch.Tensor], config: dict, batch: list[list[int]]
) -> list[torch.Tensor]:
    """Last hidden states (float64) of each input, padded internally with <pad>=1."""
    st = {k: v.double() for k, v in state.items()}
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    hidden_size = config["hidden_size"]
    inter = config["intermediate_size"]
    d = hidden_size // heads
    n = max(len(x) for x in batch)
    ids = torch.tensor([x + [1] * (n - len(x)) for x in batch])
    mask = torch.tensor([[1] * len(x) + [0] * (n - len(x)) for x in batch], dtype=torch.bool)

    pos = torch.arange(n, dtype=torch.float64)
    slopes = torch.tensor(reference_slopes(heads), dtype=torch.float64)
    alibi = -slopes[:, None, None] * (pos[None, :, None] - pos[None, None, :]).abs()
    pad = torch.zeros(len(batch), 1, 1, n, dtype=torch.float64)
    pad = pad.masked_fill(~mask[:, None, None, :], float("-inf"))

    h = (
        st["embeddings.word_embeddings.weight"][ids]
        + st["embeddings.token_type_embeddings.weight"][0]
    )
    h = _ln(h, st, "embeddings.LayerNorm", eps)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."
        q = _ln(
            _linear(h, st, p + "attention.self.query"), st, p + "attention.self.layer_norm_q", eps
        )
        k = _ln(
            _linear(h, st, p + "attention.self.key"), st, p + "attention.self.layer_norm_k", eps
        )
        v = _linear(h, st, p + "attention.self.value")

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(len(batch), n, heads, d).transpose(1, 2)

        scores = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d) + alibi[None] + pad
        probs = torch.softmax(scores, dim=-1)
        ctx = (probs @ split(v)).transpose(1, 2).reshape(len(batch), n, hidden_size)
        a = _ln(
            _linear(ctx, st, p + "attention.output.dense") + h,
            st,
            p + "attention.output.LayerNorm",
            eps,
        )
        m = _ln(a + h, st, p + "layer_norm_1", eps)
        u = m @ st[p + "mlp.up_gated_layer.weight"].T
        g = u[..., :inter] * F.gelu(u[..., inter:])
        h = _ln(_linear(g, st, p + "mlp.down_layer") + m, st, p + "layer_norm_2", eps)
    return [h[b, : len(x)] for b, x in enumerate(batch)]


def reference_embeddings(
    state: dict[str, torch.Tensor], config: dict, batch: list[list[int]]
) -> torch.Tensor:
    rows = [x.mean(dim=0) for x in reference_hidden(state, config, batch)]
    return F.normalize(torch.stack(rows), dim=-1)
