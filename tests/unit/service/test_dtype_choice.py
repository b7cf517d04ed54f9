"""`dtype: auto` on CPU: native-bf16 detection, the self-check's decision, and its report."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from jina_openai.models import registry
from jina_openai.models.base import Embedder
from jina_openai.models.converting_reader import read_converted
from jina_openai.models.device import dtype_name
from jina_openai.models.dtype_choice import (
    CHECK_TEXTS,
    MIN_COSINE,
    choose_cpu_dtype,
    native_bf16_flags,
)
from jina_openai.models.registry import load_embedder
from safetensors.torch import save_file

from .conftest import make_settings, running_app

X86_FLAGS = "flags\t\t: fpu vme sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
ARM_FEATURES = "Features\t: fp asimd evtstrm aes sha2 bf16 i8mm\n"


def test_native_bf16_is_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\n" + X86_FLAGS + "processor\t: 1\n" + X86_FLAGS)
    assert native_bf16_flags(cpuinfo) == ("avx512_bf16",)
    cpuinfo.write_text(X86_FLAGS.replace("avx512_bf16", "amx_bf16 amx_tile"))
    assert native_bf16_flags(cpuinfo) == ("amx_bf16",)
    cpuinfo.write_text(ARM_FEATURES)
    assert native_bf16_flags(cpuinfo) == ("bf16",)
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f\n")
    assert native_bf16_flags(cpuinfo) == ()
    assert native_bf16_flags(tmp_path / "missing") == ()


class FakeModel:
    """Stands in for a loaded embedder: the self-check only tokenizes, prepares and embeds."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def tokenize(self, texts: list[str], limit: int | None = None) -> list[list[int]]:
        return [[len(text)] for text in texts]

    def prepare(self, ids: list[int]) -> list[int]:
        return [0, *ids, 1]


def fake_vectors(count: int, *, tilt: float = 0.0) -> np.ndarray:
    vectors = np.zeros((count, 2), dtype=np.float32)
    vectors[:, 0] = np.cos(tilt)
    vectors[:, 1] = np.sin(tilt)
    return vectors


class Recorder:
    """`load` and `measure` for choose_cpu_dtype, with set speeds and a bf16 error angle."""

    def __init__(self, *, float32_rate: float, bfloat16_rate: float, tilt: float) -> None:
        self.rates = {torch.float32: float32_rate, torch.bfloat16: bfloat16_rate}
        self.tilt = tilt
        self.loads: list[torch.dtype] = []
        self.alive: list[weakref.ref[FakeModel]] = []
        self.alive_at_load: list[int] = []

    def load(self, dtype: torch.dtype) -> Embedder:
        gc.collect()
        self.alive_at_load.append(sum(ref() is not None for ref in self.alive))
        self.loads.append(dtype)
        model = FakeModel(dtype)
        self.alive.append(weakref.ref(model))
        return model  # type: ignore[return-value]

    def measure(self, model: Embedder, inputs: list[list[int]]) -> tuple[float, np.ndarray]:
        tilt = self.tilt if model.dtype == torch.bfloat16 else 0.0
        return self.rates[model.dtype], fake_vectors(len(inputs), tilt=tilt)


def test_without_native_bf16_auto_loads_float32_once_and_measures_nothing() -> None:
    recorder = Recorder(float32_rate=1.0, bfloat16_rate=9.0, tilt=0.0)
    model, choice = choose_cpu_dtype(recorder.load, flags=(), measure=recorder.measure)
    assert recorder.loads == [torch.float32]
    assert (model.dtype, choice.dtype, choice.configured, choice.measured) == (
        torch.float32,
        "float32",
        "auto",
        False,
    )
    assert "no native bfloat16" in choice.reason


def test_native_bf16_that_is_faster_and_close_is_kept_and_never_resident_with_float32() -> None:
    recorder = Recorder(float32_rate=10.0, bfloat16_rate=27.0, tilt=0.01)
    model, choice = choose_cpu_dtype(
        recorder.load, flags=("avx512_bf16",), measure=recorder.measure
    )
    assert recorder.loads == [torch.float32, torch.bfloat16]
    assert recorder.alive_at_load == [0, 0]  # the float32 model was gone before bf16 loaded
    assert model.dtype == torch.bfloat16
    assert choice.dtype == "bfloat16"
    assert (choice.float32_inputs_per_cpu_s, choice.bfloat16_inputs_per_cpu_s) == (10.0, 27.0)
    assert choice.min_cosine == pytest.approx(np.cos(0.01), abs=1e-6)
    assert choice.native_bf16 == ("avx512_bf16",)
    assert "2.70x" in choice.reason
    assert "avx512_bf16" in choice.reason


@pytest.mark.parametrize(
    ("bfloat16_rate", "tilt", "why"),
    [
        (10.5, 0.0, "margin"),  # faster, but by less than SPEEDUP_MARGIN
        (3.0, 0.0, "margin"),  # emulated bf16: slower
        (30.0, 0.1, "cosine"),  # fast but cos(0.1) = 0.995 < MIN_COSINE
    ],
)
def test_native_bf16_that_is_not_faster_or_not_close_falls_back_to_float32(
    bfloat16_rate: float, tilt: float, why: str
) -> None:
    assert np.cos(0.1) < MIN_COSINE
    recorder = Recorder(float32_rate=10.0, bfloat16_rate=bfloat16_rate, tilt=tilt)
    model, choice = choose_cpu_dtype(recorder.load, flags=("amx_bf16",), measure=recorder.measure)
    assert recorder.loads == [torch.float32, torch.bfloat16, torch.float32]
    assert recorder.alive_at_load == [0, 0, 0]
    assert model.dtype == torch.float32
    assert choice.dtype == "float32"
    assert choice.measured
    assert why in choice.reason


def test_the_check_inputs_are_code_and_the_same_for_both_dtypes(tiny_model_dir: Path) -> None:
    seen: list[list[list[int]]] = []

    def measure(model: Embedder, inputs: list[list[int]]) -> tuple[float, np.ndarray]:
        seen.append(inputs)
        return 1.0, model.embed(inputs)

    def load(dtype: torch.dtype) -> Embedder:
        return load_embedder(tiny_model_dir, dtype=dtype_name(dtype))

    choose_cpu_dtype(load, flags=("avx512_bf16",), measure=measure)
    assert len(seen) == 2  # float32, then bfloat16 (not faster here: float32 is reloaded)
    assert seen[0] == seen[1]
    assert len(seen[0]) == len(CHECK_TEXTS)
    assert all(len(ids) > 10 for ids in seen[0])


def test_auto_on_cpu_is_measured_and_reported_in_info_and_metrics(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry, "native_bf16_flags", lambda: ("avx512_bf16",))
    with running_app(make_settings(tiny_model_dir, dtype="auto")) as client:
        model = client.get("/info").json()["model"]
        metrics = client.get("/metrics").text
    choice = model["dtype_choice"]
    assert choice["configured"] == "auto"
    assert choice["native_bf16"] == ["avx512_bf16"]
    assert choice["float32_inputs_per_cpu_s"] > 0
    assert choice["bfloat16_inputs_per_cpu_s"] > 0
    assert model["dtype"] in choice["reason"].split(":")[0]
    assert f'dtype="{model["dtype"]}"' in metrics
    assert 'dtype_configured="auto"' in metrics
    assert 'jina_openai_dtype_check_inputs_per_cpu_second{dtype="bfloat16"}' in metrics
    assert "jina_openai_dtype_check_min_cosine " in metrics


def test_explicit_dtypes_win_over_the_measurement(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("measured although the dtype was explicit")

    monkeypatch.setattr(registry, "choose_cpu_dtype", never)
    for name in ("float32", "bfloat16"):
        embedder = load_embedder(tiny_model_dir, dtype=name)
        assert embedder.dtype == getattr(torch, name)
        assert embedder.dtype_choice.reason == f"{name}: configured"


def test_converted_tensors_equal_a_cast_of_the_file_and_bad_entries_are_refused(
    tmp_path: Path,
) -> None:
    tensors = {"a": torch.randn(3, 5), "b": torch.randn(7), "empty": torch.zeros(0, 4)}
    path = tmp_path / "model.safetensors"
    save_file(tensors, str(path))
    keys = {name: name for name in tensors}
    converted = dict(read_converted(path, keys, dtype=torch.bfloat16, device=torch.device("cpu")))
    for name, tensor in tensors.items():
        assert converted[name].dtype == torch.bfloat16
        assert torch.equal(converted[name], tensor.to(torch.bfloat16))
    save_file({"ids": torch.arange(4)}, str(path))
    with pytest.raises(ValueError, match="ids has dtype I64"):
        list(read_converted(path, {"ids": "ids"}, dtype=torch.bfloat16, device=torch.device("cpu")))
    save_file({"a": torch.randn(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="ends inside its data"):
        list(read_converted(path, {"a": "a"}, dtype=torch.bfloat16, device=torch.device("cpu")))
