"""fetch_model / verify_model_dir / check_model without network (the hub download is faked)."""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import pytest
from jina_openai.models import provisioning
from jina_openai.models.provisioning import (
    DEFAULT_REPO_ID,
    DEFAULT_REVISION,
    MANIFEST_FILE,
    ProvisioningError,
    fetch_model,
    verify_model_dir,
)

from .checkpoints import SPEC_ODD_HEADS, MakeCheckpoint

REVISION = "0123456789abcdef0123456789abcdef01234567"
REMOTE_CODE_FILES = ["configuration_bert.py", "modeling_bert.py", "onnx/model.onnx"]


def test_default_revision_is_a_pinned_commit() -> None:
    assert DEFAULT_REPO_ID == "jinaai/jina-embeddings-v2-base-code"
    assert len(DEFAULT_REVISION) == 40
    int(DEFAULT_REVISION, 16)


class FakeHub:
    """Stands in for huggingface_hub.snapshot_download, serving a local 'repository'."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self.calls: list[dict] = []
        self.fail = False

    def __call__(self, *, repo_id, revision, local_dir, allow_patterns, **kwargs):
        self.calls.append({"repo_id": repo_id, "revision": revision, "allow": allow_patterns})
        if self.fail:
            raise OSError("connection reset")
        local = Path(local_dir)
        for file in self.repo.rglob("*"):
            rel = file.relative_to(self.repo).as_posix()
            if file.is_file() and any(fnmatch.fnmatch(rel, p) for p in allow_patterns):
                (local / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, local / rel)
        (local / ".cache" / "huggingface").mkdir(parents=True, exist_ok=True)
        (local / ".cache" / "huggingface" / "download.lock").write_text("x")
        return str(local)


@pytest.fixture
def hub(make_checkpoint: MakeCheckpoint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    repo = tmp_path / "hub-repo"
    shutil.copytree(make_checkpoint(SPEC_ODD_HEADS), repo)
    for name in REMOTE_CODE_FILES:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("raise SystemExit('remote code must not be fetched')")
    fake = FakeHub(repo)
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False, raising=False)
    return fake


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_offline_mode_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    dest = tmp_path / "models" / "jina"
    with pytest.raises(ProvisioningError, match="HF_HUB_OFFLINE") as info:
        fetch_model(dest)
    assert DEFAULT_REPO_ID in str(info.value)
    assert not dest.exists()


def test_fetch_writes_a_verified_manifest(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "models" / "jina"
    assert fetch_model(dest, revision=REVISION) == dest
    assert hub.calls == [
        {"repo_id": DEFAULT_REPO_ID, "revision": REVISION, "allow": list(provisioning.MODEL_FILES)}
    ]
    names = sorted(p.name for p in dest.iterdir())
    assert names == sorted([*provisioning.MODEL_FILES, MANIFEST_FILE])  # no remote code, no .cache
    manifest = json.loads((dest / MANIFEST_FILE).read_text())
    assert manifest["repo_id"] == DEFAULT_REPO_ID
    assert manifest["revision"] == REVISION
    assert manifest["files"]["model.safetensors"] == provisioning.sha256_file(
        dest / "model.safetensors"
    )
    assert verify_model_dir(dest).revision == REVISION
    assert leftovers(dest.parent) == []


def test_fetch_is_idempotent_unless_forced(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "jina"
    fetch_model(dest, revision=REVISION)
    before = (dest / MANIFEST_FILE).read_text()
    fetch_model(dest, revision=REVISION)
    assert len(hub.calls) == 1
    assert (dest / MANIFEST_FILE).read_text() == before
    fetch_model(dest, revision=REVISION, force=True)
    assert len(hub.calls) == 2
    verify_model_dir(dest)
    assert leftovers(tmp_path) == []


def test_existing_verified_dir_is_accepted_offline(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = fetch_model(tmp_path / "jina", revision=REVISION)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch_model(dest, revision=REVISION) == dest
    with pytest.raises(ProvisioningError, match="force"):
        fetch_model(dest, revision="f" * 40)


def test_existing_incomplete_or_foreign_dir_needs_force(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "jina"
    dest.mkdir()
    (dest / "config.json").write_text("{}")
    with pytest.raises(ProvisioningError, match="force"):
        fetch_model(dest, revision=REVISION)
    assert hub.calls == []
    fetch_model(dest, revision=REVISION, force=True)
    verify_model_dir(dest)


def test_empty_existing_dir_is_filled(hub: FakeHub, tmp_path: Path) -> None:
    dest = tmp_path / "jina"
    dest.mkdir()
    fetch_model(dest, revision=REVISION)
    verify_model_dir(dest)


def test_failed_download_leaves_nothing(hub: FakeHub, tmp_path: Path) -> None:
    hub.fail = True
    dest = tmp_path / "jina"
    with pytest.raises(ProvisioningError, match="connection reset"):
        fetch_model(dest, revision=REVISION)
    assert not dest.exists()
    assert leftovers(tmp_path) == []


def test_failed_forced_refetch_keeps_the_old_copy(hub: FakeHub, tmp_path: Path) -> None:
    dest = fetch_model(tmp_path / "jina", revision=REVISION)
    hub.fail = True
    with pytest.raises(ProvisioningError):
        fetch_model(dest, revision=REVISION, force=True)
    verify_model_dir(dest)
    assert leftovers(tmp_path) == []


def test_pinned_hashes_reject_a_different_file(hub: FakeHub, tmp_path: Path) -> None:
    # The fake repository's config.json is not the real one at DEFAULT_REVISION.
    with pytest.raises(ProvisioningError, match=r"config\.json.*pinned"):
        fetch_model(tmp_path / "jina")
    assert leftovers(tmp_path) == []


def test_verify_works_on_a_copied_dir(hub: FakeHub, tmp_path: Path) -> None:
    original = fetch_model(tmp_path / "fetched", revision=REVISION)
    copy = shutil.copytree(original, tmp_path / "elsewhere" / "model")
    assert verify_model_dir(copy).files == verify_model_dir(original).files

    with (copy / "tokenizer.json").open("ab") as handle:
        handle.write(b" ")
    with pytest.raises(ProvisioningError, match=r"tokenizer\.json.*sha256"):
        verify_model_dir(copy)

    (copy / "tokenizer.json").unlink()
    with pytest.raises(ProvisioningError, match=r"tokenizer\.json"):
        verify_model_dir(copy)


def test_verify_without_manifest(odd_heads_dir: Path, tmp_path: Path) -> None:
    assert verify_model_dir(odd_heads_dir) is None
    copy = shutil.copytree(odd_heads_dir, tmp_path / "m")
    (copy / "model.safetensors").unlink()
    with pytest.raises(ProvisioningError, match=r"model\.safetensors"):
        verify_model_dir(copy)
    with pytest.raises(ProvisioningError, match="not a directory"):
        verify_model_dir(tmp_path / "nope")


def test_malformed_manifest(odd_heads_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(odd_heads_dir, tmp_path / "m")
    (copy / MANIFEST_FILE).write_text(json.dumps({"format": 1, "files": {"../x": "00"}}))
    with pytest.raises(ProvisioningError, match="manifest"):
        verify_model_dir(copy)


def test_fingerprint_is_stable_under_tiny_noise() -> None:
    import numpy as np

    vec = np.linspace(-0.3, 0.3, 16, dtype=np.float32)
    assert provisioning.embedding_fingerprint(vec) == provisioning.embedding_fingerprint(vec + 1e-6)
    assert provisioning.embedding_fingerprint(vec) != provisioning.embedding_fingerprint(-vec)
    assert len(provisioning.embedding_fingerprint(vec)) == 16


def test_check_model_reports_dimension_params_fingerprint(odd_heads_dir: Path) -> None:
    from .helpers import load

    # float32 explicitly: `auto` measures bfloat16 on CPUs with native bf16 (dtype_choice.py).
    report = provisioning.check_model(odd_heads_dir, device="cpu", dtype="float32")
    direct = load(odd_heads_dir)
    assert report.architecture == "jina-bert-v2"
    assert report.dimension == SPEC_ODD_HEADS.hidden
    assert report.parameter_count == direct.parameter_count
    assert report.model_id == "jinaai/jina-embeddings-v2-base-code"
    assert report.dtype == "float32"
    assert len(report.fingerprint) == 16
    again = provisioning.check_model(odd_heads_dir, dtype="float32")
    assert again.fingerprint == report.fingerprint
    text = "\n".join(report.format())
    assert str(report.format()) == text  # print(report.format()) prints the lines
    assert f"dimension:        {SPEC_ODD_HEADS.hidden}" in text
    assert f"{report.parameter_count:,}" in text
    assert report.fingerprint in text


def test_check_model_refuses_a_tampered_copy(hub: FakeHub, tmp_path: Path) -> None:
    dest = fetch_model(tmp_path / "jina", revision=REVISION)
    (dest / "config.json").write_text((dest / "config.json").read_text() + " ")
    with pytest.raises(ProvisioningError, match=r"config\.json"):
        provisioning.check_model(dest)
