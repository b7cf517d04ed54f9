"""roles/qdrant tasks/fetch.yml: one download-and-verify flow, on the controller or on the host.

ansible-playbook includes the role's fetch.yml on this machine (local connection, so the
"controller" and the "host" are the same machine, in different directories) with a
release-shaped tarball that the test builds, served from a file:// URL. Each case checks what
an operator relies on: the tarball is unpacked only when its sha256 matches, a downloaded one
that does not match is removed and the failure names the file, a given one (qdrant_archive_src)
is never removed, and check mode downloads nothing on the host.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from local_playbook import run_local_playbook

ARCHIVE_NAME = "qdrant-x86_64-unknown-linux-musl.tar.gz"
VERSION = "1.15.3"
WRONG = {"qdrant_archive_sha256": "0" * 64}
PLAYBOOK = """
- name: roles/qdrant fetch.yml, here
  hosts: all
  gather_facts: false
  tasks:
    - name: Fetch, verify and unpack
      ansible.builtin.include_role:
        name: qdrant
        tasks_from: fetch.yml
      vars:
        _qdrant_fetch_on: "{{ fetch_on }}"
"""


def tarball(path: Path) -> str:
    """A release-shaped tarball (one executable named qdrant); its sha256."""
    binary = path.parent / "qdrant"
    binary.write_text(f"#!/bin/sh\necho qdrant {VERSION}\n")
    binary.chmod(0o755)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(binary, arcname="qdrant")
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run(workdir: Path, *args: str, **extra: object) -> subprocess.CompletedProcess[str]:
    variables = {
        "ansible_python_interpreter": sys.executable,
        "ansible_facts": {"architecture": "x86_64"},
        "qdrant_version": VERSION,
        "qdrant_install_dir": str(workdir / "install"),
        "qdrant_local_cache_path": str(workdir / "controller-cache"),
        "qdrant_remote_cache_path": str(workdir / "host-cache"),
        "qdrant_download_retries": 0,
        "qdrant_download_delay": 0,
    } | extra
    return run_local_playbook(
        workdir, PLAYBOOK, "localhost,", "-c", "local", *args, extra_vars=variables
    )


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, str]:
    (tmp_path / "mirror").mkdir()
    archive = tmp_path / "mirror" / ARCHIVE_NAME
    return archive, tarball(archive)


def unpacked(workdir: Path) -> Path:
    return workdir / "install" / VERSION / "qdrant"


@pytest.mark.parametrize(
    ("fetch_on", "cache"),
    [
        ("controller", f"controller-cache/{ARCHIVE_NAME}"),
        ("host", f"host-cache/{VERSION}-{ARCHIVE_NAME}"),
    ],
)
def test_a_matching_download_is_unpacked_and_cached(
    tmp_path: Path, release: tuple[Path, str], fetch_on: str, cache: str
) -> None:
    archive, sha256 = release
    extra = {
        "fetch_on": fetch_on,
        "qdrant_archive_url": archive.as_uri(),
        "qdrant_archive_sha256": sha256,
    }
    result = run(tmp_path, **extra)
    assert result.returncode == 0, result.stdout
    assert unpacked(tmp_path).read_text().startswith("#!/bin/sh")
    assert (tmp_path / cache).stat().st_mode & 0o777 == 0o600
    again = run(tmp_path, **extra)
    assert again.returncode == 0, again.stdout
    assert "changed=0" in again.stdout


@pytest.mark.parametrize(
    ("fetch_on", "cache", "host_prefix"),
    [
        ("controller", f"controller-cache/{ARCHIVE_NAME}", ""),
        ("host", f"host-cache/{VERSION}-{ARCHIVE_NAME}", "localhost:"),
    ],
)
def test_a_download_that_does_not_match_is_removed_and_named(
    tmp_path: Path, release: tuple[Path, str], fetch_on: str, cache: str, host_prefix: str
) -> None:
    archive, _ = release
    result = run(tmp_path, fetch_on=fetch_on, qdrant_archive_url=archive.as_uri(), **WRONG)
    assert result.returncode != 0
    removed = f"(downloaded from {archive.as_uri()}, now removed)"
    message = f"Checksum mismatch for {host_prefix}{tmp_path / cache} {removed}"
    assert message in " ".join(result.stdout.split())
    assert not (tmp_path / cache).exists()
    assert not unpacked(tmp_path).exists()


def test_a_given_tarball_that_does_not_match_is_kept(
    tmp_path: Path, release: tuple[Path, str]
) -> None:
    archive, _ = release
    result = run(tmp_path, fetch_on="controller", qdrant_archive_src=str(archive), **WRONG)
    assert result.returncode != 0
    assert f"Checksum mismatch for {archive}: its sha256 is" in " ".join(result.stdout.split())
    assert archive.exists()
    assert not unpacked(tmp_path).exists()


def test_the_pinned_checksum_applies_without_an_override(
    tmp_path: Path, release: tuple[Path, str]
) -> None:
    archive, _ = release
    result = run(tmp_path, fetch_on="controller", qdrant_archive_src=str(archive))
    assert result.returncode != 0
    assert "from the pinned table in roles/qdrant/vars/main.yml" in result.stdout


def test_check_mode_downloads_nothing_on_the_host(
    tmp_path: Path, release: tuple[Path, str]
) -> None:
    archive, sha256 = release
    result = run(
        tmp_path,
        "--check",
        fetch_on="host",
        qdrant_archive_url=archive.as_uri(),
        qdrant_archive_sha256=sha256,
    )
    assert result.returncode == 0, result.stdout
    assert not (tmp_path / "host-cache").exists()
    assert not unpacked(tmp_path).exists()


def test_check_mode_verifies_on_the_controller(tmp_path: Path, release: tuple[Path, str]) -> None:
    archive, _ = release
    result = run(
        tmp_path, "--check", fetch_on="controller", qdrant_archive_url=archive.as_uri(), **WRONG
    )
    assert result.returncode != 0
    assert "Checksum mismatch for " in result.stdout
    assert not unpacked(tmp_path).exists()
