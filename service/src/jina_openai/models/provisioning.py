"""Provisioning of model directories: fetch a pinned revision, verify a copy, check it loads.

``fetch_model`` downloads only the files the native implementation needs (config, weights,
tokenizer; never the remote-code files ``auto_map`` points at) from the Hugging Face hub into a
temporary directory beside the destination, writes a manifest with each file's sha256, verifies
it, and renames it into place - so the destination is either absent, the previous complete copy,
or the new complete copy. ``verify_model_dir`` and ``check_model`` work offline on a directory
copied from elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jina_openai.models.errors import ModelLoadError
from jina_openai.models.model_config import read_model_config

DEFAULT_REPO_ID = "jinaai/jina-embeddings-v2-base-code"
# Commit of https://huggingface.co/jinaai/jina-embeddings-v2-base-code pinned by several
# independent projects that fetch this model by revision (with file sha256s, below).
DEFAULT_REVISION = "516f4baf13dec4ddddda8631e019b5737c8bc250"

MANIFEST_FILE = "jina-openai-manifest.json"
MANIFEST_FORMAT = 1
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
OPTIONAL_FILES = ("tokenizer_config.json", "special_tokens_map.json")
MODEL_FILES = REQUIRED_FILES + OPTIONAL_FILES

# sha256 of files at DEFAULT_REVISION as pinned by other projects (Nix fetchurl hashes); a
# download that does not match is rejected. model.safetensors is checked by the hub's own LFS
# sha256 and recorded in the manifest.
KNOWN_SHA256: dict[tuple[str, str], dict[str, str]] = {
    (DEFAULT_REPO_ID, DEFAULT_REVISION): {
        "config.json": "e426aa684c7f9a95c5f020aa855faf93a24f065f5fad0c9e17b124670cabdea6",
        "tokenizer.json": "b01c78a902aa4facb2f47f95449f48e2f7bbfea5d2472ee2f6ce92323c6f86e5",
        "tokenizer_config.json": "f477aeb15ff9f78d3c1ddf2361d2b0b8b20cf55220f839f29a37f3a18efddd89",
        "special_tokens_map.json": (
            "06e405a36dfe4b9604f484f6a1e619af1a7f7d09e34a8555eb0b77b66318067f"
        ),
    }
}

SAMPLE_TEXT = (
    "def fibonacci(n: int) -> int:\n"
    '    """Return the n-th Fibonacci number."""\n'
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n"
)

_TRUTHY = {"1", "true", "yes", "on"}
_CHUNK = 1 << 20


class ProvisioningError(RuntimeError):
    """A model directory cannot be fetched or does not verify."""


@dataclass(frozen=True)
class Manifest:
    """What ``fetch_model`` recorded about a model directory."""

    repo_id: str
    revision: str
    files: dict[str, str]  # file name -> sha256
    created: str = ""

    def to_json(self) -> str:
        data = {
            "format": MANIFEST_FORMAT,
            "repo_id": self.repo_id,
            "revision": self.revision,
            "created": self.created,
            "files": dict(sorted(self.files.items())),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ProvisioningError(f"{path}: unreadable manifest: {exc}") from exc
        files = data.get("files") if isinstance(data, dict) else None
        if (
            not isinstance(files, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            or not isinstance(data.get("repo_id"), str)
            or not isinstance(data.get("revision"), str)
        ):
            raise ProvisioningError(f"{path}: malformed manifest")
        if data.get("format") != MANIFEST_FORMAT:
            raise ProvisioningError(f"{path}: unsupported manifest format {data.get('format')!r}")
        for name in files:
            if Path(name).name != name or name in {"", ".", ".."}:
                raise ProvisioningError(f"{path}: manifest lists an invalid file name {name!r}")
        return cls(
            repo_id=data["repo_id"],
            revision=data["revision"],
            files=dict(files),
            created=str(data.get("created", "")),
        )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_model_dir(path: Path) -> Manifest | None:
    """Check that ``path`` holds a loadable model directory.

    Required files must exist and config.json must parse; when the directory has a manifest
    (written by ``fetch_model``), every file it lists must be present with the recorded sha256.
    Returns the manifest, or None for a directory without one. Raises ProvisioningError naming
    the offending file.
    """
    path = Path(path)
    if not path.is_dir():
        raise ProvisioningError(f"{path}: not a directory")
    for name in REQUIRED_FILES:
        if not (path / name).is_file():
            raise ProvisioningError(f"{path / name}: missing {name} in the model directory")
    try:
        read_model_config(path)
    except ModelLoadError as exc:
        raise ProvisioningError(str(exc)) from exc
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.exists():
        return None
    manifest = Manifest.read(manifest_path)
    missing_required = [n for n in REQUIRED_FILES if n not in manifest.files]
    if missing_required:
        raise ProvisioningError(f"{manifest_path}: manifest does not list {missing_required}")
    for name, expected in manifest.files.items():
        file = path / name
        if not file.is_file():
            raise ProvisioningError(f"{file}: listed in {MANIFEST_FILE} but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ProvisioningError(
                f"{file}: sha256 {actual} does not match {expected} recorded in {MANIFEST_FILE}"
            )
    return manifest


def _offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUTHY:
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub is a dependency
        return False
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _resolve_commit(repo_id: str, revision: str) -> str:
    """The commit hash for ``revision`` (unchanged when it already is one or cannot be resolved)."""
    if len(revision) == 40 and all(c in "0123456789abcdef" for c in revision.lower()):
        return revision.lower()
    try:
        from huggingface_hub import HfApi

        sha = HfApi().model_info(repo_id, revision=revision).sha
    except Exception:  # best effort: the manifest then records the name given
        return revision
    return sha or revision


def _download(repo_id: str, revision: str, dest: Path) -> None:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(
            repo_id=repo_id,
            revision=revision,
            local_dir=str(dest),
            allow_patterns=list(MODEL_FILES),
        )
    except Exception as exc:  # hub errors are many; report them uniformly
        raise ProvisioningError(
            f"cannot download {repo_id}@{revision}: {type(exc).__name__}: {exc}"
        ) from exc


def fetch_model(
    dest: Path,
    *,
    repo_id: str = DEFAULT_REPO_ID,
    revision: str = DEFAULT_REVISION,
    force: bool = False,
) -> Path:
    """Download ``repo_id`` at ``revision`` into ``dest`` and verify it; returns ``dest``.

    Only config.json, model.safetensors, tokenizer.json, tokenizer_config.json and
    special_tokens_map.json are fetched. An existing complete, verified ``dest`` of the same
    repository and revision is left alone unless ``force``. With ``HF_HUB_OFFLINE=1`` nothing is
    downloaded: an existing verified directory is accepted, anything else is an error.
    """
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and not force and not _is_empty_dir(dest):
        try:
            manifest = verify_model_dir(dest)
        except ProvisioningError as exc:
            raise ProvisioningError(
                f"{dest} exists but is not a complete model directory ({exc}); "
                "use force to replace it"
            ) from exc
        if manifest is None:
            raise ProvisioningError(
                f"{dest} exists without {MANIFEST_FILE}; "
                "use force to replace it with a fetched copy"
            )
        if manifest.repo_id == repo_id and revision == manifest.revision:
            return dest
        if (
            manifest.repo_id == repo_id
            and not _offline()
            and _resolve_commit(repo_id, revision) == manifest.revision
        ):
            return dest
        raise ProvisioningError(
            f"{dest} holds {manifest.repo_id}@{manifest.revision}, not {repo_id}@{revision}; "
            "use force to replace it"
        )
    if _offline():
        raise ProvisioningError(
            f"HF_HUB_OFFLINE is set: cannot download {repo_id}@{revision} into {dest}. "
            "Fetch on a connected machine, copy the directory here, and check it with "
            "`jina-openai check-model DIR`."
        )

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        _download(repo_id, revision, tmp)
        shutil.rmtree(tmp / ".cache", ignore_errors=True)  # hub download metadata
        for name in REQUIRED_FILES:
            if not (tmp / name).is_file():
                raise ProvisioningError(f"{repo_id}@{revision} has no {name}")
        commit = _resolve_commit(repo_id, revision)
        files = {name: sha256_file(tmp / name) for name in MODEL_FILES if (tmp / name).is_file()}
        for name, expected in KNOWN_SHA256.get((repo_id, commit), {}).items():
            if name in files and files[name] != expected:
                raise ProvisioningError(
                    f"{repo_id}@{commit}: downloaded {name} has sha256 {files[name]}, "
                    f"expected the pinned {expected}"
                )
        manifest = Manifest(
            repo_id=repo_id,
            revision=commit,
            files=files,
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        (tmp / MANIFEST_FILE).write_text(manifest.to_json(), encoding="utf-8")
        verify_model_dir(tmp)
        _fsync_tree(tmp)
        _replace_dir(tmp, dest)
        _fsync_tree(dest.parent, files=False)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _fsync_tree(path: Path, *, files: bool = True) -> None:
    """Flush the files directly in ``path`` (optionally) and the directory entry itself."""
    targets = [p for p in path.iterdir() if p.is_file()] if files else []
    for target in targets:
        with target.open("rb") as handle:
            os.fsync(handle.fileno())
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_empty_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _replace_dir(new: Path, dest: Path) -> None:
    """Rename ``new`` to ``dest``, replacing an existing ``dest`` with the shortest gap."""
    if not dest.exists():
        new.rename(dest)
        return
    old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
    dest.rename(old)
    try:
        new.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


class _Lines(list[str]):
    """A list of output lines whose ``str()`` is the lines joined by newlines."""

    def __str__(self) -> str:
        return "\n".join(self)


@dataclass(frozen=True)
class CheckReport:
    """Result of loading a model directory and embedding ``SAMPLE_TEXT``."""

    model_dir: str
    model_id: str
    architecture: str
    dimension: int
    parameter_count: int
    max_input_tokens: int
    device: str
    dtype: str
    fingerprint: str  # sha256 prefix of the sample embedding rounded to 3 decimals
    elapsed: float  # seconds: load + embed
    sample_tokens: int = 0
    revision: str | None = None  # from the manifest, when the directory has one

    def format(self) -> list[str]:
        """Lines to print (the list also prints as those lines: ``print(report.format())``)."""
        lines = _Lines(
            [
                f"model dir:        {self.model_dir}",
                f"model id:         {self.model_id}",
                f"architecture:     {self.architecture}",
                f"dimension:        {self.dimension}",
                f"parameters:       {self.parameter_count:,}",
                f"max input tokens: {self.max_input_tokens}",
                f"device/dtype:     {self.device} / {self.dtype}",
                f"fingerprint:      {self.fingerprint}",
                f"sample tokens:    {self.sample_tokens}",
                f"elapsed:          {self.elapsed:.2f} s",
            ]
        )
        if self.revision:
            lines.insert(2, f"revision:         {self.revision}")
        return lines


def embedding_fingerprint(vector: Any) -> str:
    """Short sha256 of an embedding rounded to 3 decimals (stable across runs and machines)."""
    import numpy as np

    rounded = np.rint(np.asarray(vector, dtype=np.float64) * 1000).astype("<i4")
    return hashlib.sha256(rounded.tobytes()).hexdigest()[:16]


def check_model(model_dir: Path, *, device: str = "cpu", dtype: str = "auto") -> CheckReport:
    """Verify ``model_dir``, load it through the registry and embed ``SAMPLE_TEXT``."""
    model_dir = Path(model_dir)
    manifest = verify_model_dir(model_dir)

    import torch

    from jina_openai.models.registry import load_embedder

    start = time.perf_counter()
    embedder = load_embedder(model_dir, device=device, dtype=dtype)
    ids = embedder.prepare(embedder.tokenize([SAMPLE_TEXT])[0])
    with torch.inference_mode():
        vector = embedder.embed([ids])[0]
    elapsed = time.perf_counter() - start
    return CheckReport(
        model_dir=str(model_dir),
        model_id=embedder.model_id,
        architecture=embedder.architecture,
        dimension=embedder.dimension,
        parameter_count=embedder.parameter_count,
        max_input_tokens=embedder.max_input_tokens,
        device=str(embedder.device),
        dtype=str(embedder.dtype).removeprefix("torch."),
        fingerprint=embedding_fingerprint(vector),
        elapsed=elapsed,
        sample_tokens=len(ids),
        revision=manifest.revision if manifest else None,
    )
