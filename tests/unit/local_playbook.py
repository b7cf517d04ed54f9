"""ansible-playbook from this virtualenv on this machine, as the role tests run it.

`run_local_playbook` writes the play (YAML text) and the inventory (a dict) into a work
directory and runs them there with a local connection, the project's roles and plain output;
the environment is only PATH (this virtualenv first) and HOME (the work directory) unless the
caller passes more. molecule_helpers.recap_changed (shared with the molecule scenarios) reads
the result: it fails when the run failed or executed no task of the role.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_local_playbook(
    workdir: Path,
    playbook: str | Path,
    inventory: Mapping[str, object] | str,
    *args: str,
    extra_vars: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run PLAYBOOK (YAML text, or the path of a playbook file) in WORKDIR.

    INVENTORY is a YAML inventory as a dict (written to WORKDIR/hosts.yml) or an inventory
    string such as "localhost,". EXTRA_VARS become one -e JSON document; ARGS go last. ENV is
    added to the base environment; the ANSIBLE_* settings here always win.
    """
    if isinstance(playbook, str):
        (workdir / "playbook.yml").write_text(playbook)
        playbook = workdir / "playbook.yml"
    if not isinstance(inventory, str):
        (workdir / "hosts.yml").write_text(yaml.safe_dump(dict(inventory)))
        inventory = str(workdir / "hosts.yml")
    command = [str(BIN / "ansible-playbook"), "-i", inventory, str(playbook)]
    if extra_vars is not None:
        command += ["-e", json.dumps(extra_vars)]
    environment = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(workdir), **(env or {})}
    environment.update(
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_RETRY_FILES_ENABLED="false",
    )
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, check=False, cwd=workdir, env=environment
    )
