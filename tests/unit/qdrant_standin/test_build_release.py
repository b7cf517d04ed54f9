"""The release builder and the shape of the artifact the Qdrant role installs."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import PYTHON, RELEASE_VERSION, STANDIN_DIR


def test_tarball_holds_exactly_one_executable_qdrant(release_tarball: Path) -> None:
    assert release_tarball.name == "qdrant-x86_64-unknown-linux-musl.tar.gz"
    with tarfile.open(release_tarball, "r:gz") as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["qdrant"]
        (member,) = members
        assert member.isreg()
        assert member.mode == 0o755
        assert (member.uid, member.gid) == (0, 0)
        extracted = tar.extractfile(member)
        assert extracted is not None
        program = extracted.read().decode()
    assert program.startswith("#!/usr/bin/env python3\n")
    assert f'\nVERSION = "{RELEASE_VERSION}"\n' in program


def test_sha256_file_matches(release_tarball: Path) -> None:
    sha_file = release_tarball.with_name(release_tarball.name + ".sha256")
    digest = hashlib.sha256(release_tarball.read_bytes()).hexdigest()
    assert sha_file.read_text() == f"{digest}  {release_tarball.name}\n"


def test_build_is_byte_reproducible(builder: ModuleType, tmp_path: Path) -> None:
    first = builder.build_release("1.2.3", tmp_path / "a", "aarch64")
    second = builder.build_release("1.2.3", tmp_path / "b", "aarch64")
    assert first.name == "qdrant-aarch64-unknown-linux-musl.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    other = builder.build_release("1.2.4", tmp_path / "c", "aarch64")
    assert other.read_bytes() != first.read_bytes()
    # gzip header: mtime field (bytes 4..8) is zero.
    assert first.read_bytes()[4:8] == b"\0\0\0\0"


def test_cli_prints_the_tarball_path(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            PYTHON,
            str(STANDIN_DIR / "build_release.py"),
            *("--version", "1.15.5", "--arch", "x86_64", "--out-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == str(tmp_path / "qdrant-x86_64-unknown-linux-musl.tar.gz")
    assert (tmp_path / "qdrant-x86_64-unknown-linux-musl.tar.gz.sha256").is_file()


@pytest.mark.parametrize("version", ["1.15", "v1.15.5", "1.15.5 ", '1.15.5"', ""])
def test_bad_versions_are_rejected(builder: ModuleType, tmp_path: Path, version: str) -> None:
    with pytest.raises(ValueError, match=r"X\.Y\.Z"):
        builder.build_release(version, tmp_path)


def test_bad_arch_is_rejected(builder: ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported arch"):
        builder.build_release("1.0.0", tmp_path, "riscv64")


def test_version_output(qdrant_binary: Path) -> None:
    # Run through the shebang, as the role does.
    out = subprocess.run([str(qdrant_binary), "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"qdrant {RELEASE_VERSION} (stand-in for tests, not the real Qdrant)\n"
    assert out.stdout.split()[:2] == ["qdrant", RELEASE_VERSION]


def test_program_uses_only_the_standard_library() -> None:
    tree = ast.parse((STANDIN_DIR / "qdrant.py").read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names), imported - set(sys.stdlib_module_names)
