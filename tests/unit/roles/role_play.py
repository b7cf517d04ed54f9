"""ansible-playbook from this virtualenv on this machine, for the role tests in this directory.

The same signature as the project-wide runner other branches bring (tests/unit/local_playbook.py,
run_local_playbook): once that is on main, import it instead and delete this file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def run_local_playbook(
    workdir: Path,
    playbook: str,
    inventory: str,
    *args: str,
    extra_vars: Mapping[str, object] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run PLAYBOOK (YAML text) in WORKDIR against INVENTORY ("localhost,"), local connection."""
    (workdir / "playbook.yml").write_text(playbook)
    command = [str(BIN / "ansible-playbook"), "-i", inventory, "-c", "local"]
    command += [str(workdir / "playbook.yml"), "-e", json.dumps(dict(extra_vars or {}))]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=workdir,
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": str(workdir),
            "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_RETRY_FILES_ENABLED": "false",
        },
    )
