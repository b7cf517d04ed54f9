#!/usr/bin/env python3
"""Build a Qdrant-release-shaped tarball from the stand-in program (for tests only).

    python3 tests/qdrant-standin/build_release.py --version 1.15.5 [--arch x86_64] --out-dir DIR

writes DIR/qdrant-<arch>-unknown-linux-musl.tar.gz (one executable `qdrant` at the archive
root, like the upstream asset) and DIR/qdrant-<arch>-unknown-linux-musl.tar.gz.sha256
(`<hex>  <filename>`), then prints the tarball's path. The output is byte-reproducible:
fixed owner, mode and mtime in the tar header, and gzip mtime 0.

Standard library only; the functions are importable (tests and Ansible call them).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import re
import sys
import tarfile
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("qdrant.py")
ARCHES = ("x86_64", "aarch64")
# Fixed tar member mtime (2024-01-01T00:00:00Z) so that every build is identical.
FIXED_MTIME = 1_704_067_200
VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+(?:[-+][0-9A-Za-z.-]+)?$")
_VERSION_LINE = re.compile(r'^VERSION = "[^"\n]*"$', re.MULTILINE)


def artifact_name(arch: str) -> str:
    """The upstream asset name for ARCH, e.g. qdrant-x86_64-unknown-linux-musl.tar.gz."""
    if arch not in ARCHES:
        raise ValueError(f"unsupported arch {arch!r}; expected one of {', '.join(ARCHES)}")
    return f"qdrant-{arch}-unknown-linux-musl.tar.gz"


def render_program(version: str, source: Path = SOURCE) -> bytes:
    """The stand-in's source with its VERSION constant set to VERSION."""
    if not VERSION_RE.match(version):
        raise ValueError(f"version {version!r} is not of the form X.Y.Z")
    text = source.read_text(encoding="utf-8")
    if not text.startswith("#!/usr/bin/env python3\n"):
        raise ValueError(f"{source} must start with '#!/usr/bin/env python3'")
    rendered, count = _VERSION_LINE.subn(f'VERSION = "{version}"', text)
    if count != 1:
        raise ValueError(f'{source} must contain exactly one `VERSION = "..."` line')
    return rendered.encode("utf-8")


def build_tarball(program: bytes) -> bytes:
    """A gzip'ed tar holding only `qdrant` (0755, root:root, fixed mtime)."""
    tar_buffer = io.BytesIO()
    with tarfile.open(fileobj=tar_buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("qdrant")
        info.size = len(program)
        info.mode = 0o755
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = FIXED_MTIME
        info.type = tarfile.REGTYPE
        tar.addfile(info, io.BytesIO(program))
    gz_buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=gz_buffer, mtime=0, compresslevel=9) as gz:
        gz.write(tar_buffer.getvalue())
    return gz_buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def build_release(
    version: str, out_dir: str | os.PathLike[str], arch: str = "x86_64", source: Path = SOURCE
) -> Path:
    """Write the tarball and its .sha256 into OUT_DIR; return the tarball's path."""
    name = artifact_name(arch)
    data = build_tarball(render_program(version, source))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tarball = out / name
    _write_atomic(tarball, data)
    digest = hashlib.sha256(data).hexdigest()
    _write_atomic(out / f"{name}.sha256", f"{digest}  {name}\n".encode("ascii"))
    return tarball


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a release-shaped tarball of the Qdrant stand-in (tests only)."
    )
    parser.add_argument("--version", required=True, help="version to report, e.g. 1.15.5")
    parser.add_argument("--arch", default="x86_64", choices=ARCHES)
    parser.add_argument("--out-dir", required=True, help="directory for the tarball and .sha256")
    args = parser.parse_args(argv)
    try:
        tarball = build_release(args.version, args.out_dir, args.arch)
    except (ValueError, OSError) as exc:
        print(f"build_release: {exc}", file=sys.stderr)
        return 1
    print(tarball)
    return 0


if __name__ == "__main__":
    sys.exit(main())
