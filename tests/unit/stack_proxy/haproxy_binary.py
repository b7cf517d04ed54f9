"""Debian 12's haproxy binary for `haproxy -c`, unpacked into build/haproxy/ (never installed).

tools/debian-binary.sh fetches the package pinned in roles/stack_proxy/defaults/main.yml (else
the current one) and the libraries it links that a controller may lack, and unpacks them.
Nothing is installed or started. Returns None (with the reason) where apt or dpkg cannot do it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[3]
BUILD = REPO / "build" / "haproxy"
ROOT = BUILD / "root"
# haproxy's own package and the libraries of its Depends a plain Debian 12 host may not have.
LIBRARIES = ["liblua5.3-0", "libopentracing-c-wrapper0", "libopentracing1"]


@dataclass(frozen=True)
class Haproxy:
    binary: Path
    version: str

    def env(self) -> dict[str, str]:
        libdir = ROOT / "usr" / "lib" / "x86_64-linux-gnu"
        path = f"{self.binary.parent}:{os.environ.get('PATH', '')}"
        return os.environ | {"LD_LIBRARY_PATH": str(libdir), "PATH": path}

    def check(self, config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), "-c", "-f", str(config)],
            capture_output=True,
            text=True,
            check=False,
            env=self.env(),
        )


def pinned_version() -> str:
    defaults = yaml.safe_load((REPO / "roles/stack_proxy/defaults/main.yml").read_text())
    return str(defaults["stack_proxy_haproxy_version"])


def _unpack(package: str, version: str) -> str | None:
    """tools/debian-binary.sh: the version unpacked under ROOT, None when it failed."""
    result = subprocess.run(
        [str(REPO / "tools" / "debian-binary.sh"), package, version, str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def obtain() -> tuple[Haproxy | None, str]:
    """The unpacked binary and its version, or None and why not."""
    binary = ROOT / "usr" / "sbin" / "haproxy"
    marker = BUILD / "version"
    if binary.is_file() and marker.is_file():
        return Haproxy(binary, marker.read_text().strip()), ""
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        return None, "apt-get and dpkg-deb are needed to fetch Debian's haproxy package"
    shutil.rmtree(BUILD, ignore_errors=True)
    version = _unpack("haproxy", pinned_version())
    if version is None:
        return None, "apt-get download haproxy failed (no Debian archive reachable?)"
    for library in LIBRARIES:
        _unpack(library, "")  # best effort: the host may have them already
    haproxy = Haproxy(binary, version)
    probe = subprocess.run(
        [str(binary), "-v"], capture_output=True, text=True, check=False, env=haproxy.env()
    )
    if probe.returncode != 0:
        return None, f"the unpacked haproxy does not run here: {probe.stderr.strip()}"
    marker.write_text(version + "\n")
    return haproxy, ""
