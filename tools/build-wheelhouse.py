#!/usr/bin/env python3
"""Build the wheelhouse that roles/jina_embeddings installs the embeddings service from.

    .venv/bin/python tools/build-wheelhouse.py [--out build/wheelhouse]
        [--torch-flavour cpu|cuda] [--torch-index-url URL] [--force]

(`make wheelhouse` runs it with the defaults.) The output directory holds:

    jina_openai-<version>-py3-none-any.whl   the service, built from service/
    <every runtime dependency>.whl           pinned by requirements/service.txt and
                                             requirements/constraints.txt
    requirements.txt                         the whole pinned closure, one name==version a line
    .inputs-sha256                           what the directory was built from (see below)

Point `jina_embeddings_wheelhouse_src` at the directory. With
`jina_embeddings_offline_install: true` the role copies all of it to the host and installs with
`pip --no-index`; otherwise it copies only the service wheel and requirements.txt and lets pip
fetch the rest from the package index.

Idempotent: the inputs (this script, the files under service/, both requirements files, the
options, the Python version and platform) are hashed; when the hash matches the one recorded in
the output directory, nothing is done. A new build goes to a temporary directory first and then
replaces the output, so the output is never half-written.

The dependency wheels are the ones pip picks for the Python running this script: build on a
machine with the hosts' Python minor version and architecture (here: CPython 3.11, x86_64).
torch: flavour cpu must not drag in CUDA wheels; where pip's configuration does not already serve
the CPU build of the pinned torch, pass --torch-index-url https://download.pytorch.org/whl/cpu.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
SERVICE_DIR = ROOT / "service"
REQUIREMENTS = ROOT / "requirements" / "service.txt"
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
STAMP = ".inputs-sha256"
SERVICE_DISTRIBUTION = canonicalize_name("jina-openai")
# Left out of the copy of service/ that the wheel is built from, and out of the input hash.
IGNORED = shutil.ignore_patterns(
    "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache"
)
# Fixed zip timestamps: the same inputs give the same wheel bytes.
SOURCE_DATE_EPOCH = "315532800"  # 1980-01-01, the earliest a zip file can record


def log(message: str) -> None:
    print(f"build-wheelhouse: {message}", file=sys.stderr, flush=True)


def service_files() -> list[Path]:
    """Every file of service/ that goes into the wheel's build, sorted."""
    files: list[Path] = []
    for directory, subdirs, names in os.walk(SERVICE_DIR):
        ignored = IGNORED(directory, subdirs + names)
        subdirs[:] = sorted(d for d in subdirs if d not in ignored)
        files.extend(Path(directory, n) for n in names if n not in ignored)
    return sorted(files)


def inputs_hash(args: argparse.Namespace) -> str:
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("script", Path(__file__).read_bytes())
    add("python", f"{sys.implementation.cache_tag} {platform.machine()}".encode())
    add("options", f"{args.torch_flavour} {args.torch_index_url}".encode())
    for path in (REQUIREMENTS, CONSTRAINTS, *service_files()):
        add(str(path.relative_to(ROOT)), path.read_bytes())
    return digest.hexdigest()


def run(argv: list[str], **kwargs: object) -> None:
    """Run a command quietly; on failure show what it printed and stop."""
    log("$ " + " ".join(argv))
    result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"build-wheelhouse: failed with exit status {result.returncode}")


def build_service_wheel(work: Path, dest: Path) -> Path:
    """`python -m build --wheel` on a clean copy of service/ (no stale build/ leaks in)."""
    source = work / "service"
    shutil.copytree(SERVICE_DIR, source, ignore=IGNORED)
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dest), str(source)], env=env)
    wheels = sorted(dest.glob("jina_openai-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"build-wheelhouse: expected one jina_openai wheel, found {wheels}")
    return wheels[0]


def download_dependencies(args: argparse.Namespace, service_wheel: Path, dest: Path) -> None:
    """The pinned closure of the service wheel and requirements/service.txt, wheels only."""
    argv = [
        sys.executable, "-m", "pip", "download",
        "--dest", str(dest),
        "--only-binary", ":all:",
        "--requirement", str(REQUIREMENTS),
        "--constraint", str(CONSTRAINTS),
    ]  # fmt: skip
    if args.torch_index_url:
        argv += ["--extra-index-url", args.torch_index_url]
    # With the service wheel in the same resolve, its own dependency ranges are honoured too.
    run([*argv, str(service_wheel)])


def write_requirements(dest: Path) -> list[tuple[str, str]]:
    """requirements.txt: name==version of every dependency wheel in ``dest``."""
    pins: dict[str, str] = {}
    for wheel in sorted(dest.glob("*.whl")):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        if name == SERVICE_DISTRIBUTION:
            continue
        # torch's local label (+cpu, +cu128) names the flavour, which the index chooses.
        pins[name] = version.public
    lines = [
        "# Written by tools/build-wheelhouse.py: the pinned runtime closure of the",
        "# jina-openai wheel beside it (requirements/service.txt + requirements/constraints.txt).",
        *(f"{name}=={version}" for name, version in sorted(pins.items())),
    ]
    (dest / "requirements.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sorted(pins.items())


def check_flavour(flavour: str, pins: list[tuple[str, str]]) -> None:
    cuda = [name for name, _ in pins if name.startswith("nvidia-")]
    if flavour == "cpu" and cuda:
        raise SystemExit(
            "build-wheelhouse: torch flavour cpu, but pip picked a CUDA build of torch (it pulled "
            f"{', '.join(cuda[:3])}, ...). Pass --torch-index-url "
            "https://download.pytorch.org/whl/cpu (or set WHEELHOUSE_TORCH_INDEX_URL)."
        )


def replace_dir(new: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "wheelhouse")
    parser.add_argument(
        "--torch-flavour",
        choices=["cpu", "cuda"],
        default=os.environ.get("WHEELHOUSE_TORCH_FLAVOUR", "cpu"),
    )
    parser.add_argument(
        "--torch-index-url",
        default=os.environ.get("WHEELHOUSE_TORCH_INDEX_URL", ""),
        help="extra package index for torch, e.g. https://download.pytorch.org/whl/cpu",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)

    out = args.out.resolve()
    wanted = inputs_hash(args)
    stamp = out / STAMP
    if not args.force and stamp.is_file() and stamp.read_text().strip() == wanted:
        log(f"{out} is up to date")
        return 0

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.tmp-", dir=out.parent) as tmp:
        work = Path(tmp)
        new = work / "wheelhouse"
        new.mkdir()
        service_wheel = build_service_wheel(work, new)
        download_dependencies(args, service_wheel, new)
        pins = write_requirements(new)
        check_flavour(args.torch_flavour, pins)
        (new / STAMP).write_text(wanted + "\n", encoding="utf-8")
        replace_dir(new, out)

    wheels = sorted(out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    torch = next((w.name for w in wheels if w.name.startswith("torch-")), "no torch")
    log(f"{out}: {service_wheel.name} + {len(pins)} dependencies ({torch}), {size:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
