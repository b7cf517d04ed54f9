"""What the molecule scenarios' tests share: ansible-playbook runs, their recap, probes.

The base config (.config/molecule/config.yml) puts this directory and tests/unit on the
verifier's PYTHONPATH, so every scenario's tests `import molecule_helpers`.

- `ansible_playbook` runs a playbook of playbooks/ against the scenario's inventory the way
  molecule's own steps do (molecule names its inventory directory on the command line, not in
  ansible.cfg).
- `recap_changed` reads a run's PLAY RECAP, and fails when the run executed no task of the role
  it is about: Gathering Facts alone makes `ok` non-zero, so a mistyped `--tags` would otherwise
  pass as "nothing changed".
- `run_probe` runs one of probes/*.py on a test host (python3 is there; curl may not be) with
  its arguments quoted by shlex; `http_answers` is the HTTP probe.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
PROBES = Path(__file__).resolve().parent / "probes"
# A task's result lines that mean it was executed on a host (not skipped).
_RAN = re.compile(r"^(?:ok|changed|failed|fatal): \[")
_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\b")


def inventory_dir() -> Path:
    """The inventory molecule wrote for the scenario (hosts plus group_vars)."""
    return Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent


def ansible_playbook(
    playbook: str | Path = "site.yml",
    *args: str,
    tags: str | None = None,
    extra_vars: Mapping[str, object] | None = None,
    inventories: Sequence[Path] = (),
) -> subprocess.CompletedProcess[str]:
    """Run PLAYBOOK (a name in playbooks/, or a path) on the scenario's inventory.

    INVENTORIES are added after the scenario's; TAGS and EXTRA_VARS become --tags and one
    --extra-vars JSON document; ARGS go last. Colour is off so the recap lines can be read.
    """
    path = Path(playbook)
    if not path.is_absolute():
        path = PROJECT / "playbooks" / path
    command = ["ansible-playbook", "-i", str(inventory_dir())]
    for extra_inventory in inventories:
        command += ["-i", str(extra_inventory)]
    command.append(str(path))
    if tags is not None:
        command += ["--tags", tags]
    if extra_vars is not None:
        command += ["--extra-vars", json.dumps(extra_vars)]
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
            **os.environ,
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        },
    )


def output_tail(result: subprocess.CompletedProcess[str]) -> str:
    """The end of a run's output, for assertion messages."""
    return result.stdout[-4000:] + result.stderr[-2000:]


def recap_counts(stdout: str) -> dict[str, tuple[int, int]]:
    """Host -> (ok, changed) from the PLAY RECAP of ansible-playbook's default output."""
    if "PLAY RECAP" not in stdout:
        return {}
    counts = {}
    for line in stdout.split("PLAY RECAP", 1)[1].splitlines():
        match = _RECAP_LINE.match(line)
        if match:
            counts[match["host"]] = (int(match["ok"]), int(match["changed"]))
    return counts


def _task_role(header: str) -> str | None:
    """The role of a `TASK [role : name] ***` or `RUNNING HANDLER [...]` line; None if no role."""
    for prefix in ("TASK [", "RUNNING HANDLER ["):
        if header.startswith(prefix):
            title = header[len(prefix) :].rstrip("*").rstrip()
            title = title.removesuffix(" [CHECK MODE]").removesuffix("]")
            role, sep, _ = title.partition(" : ")
            return role if sep else None
    return None


def tasks_ran(stdout: str) -> Counter[str]:
    """Role -> how many of its tasks (and handlers) were executed on some host, not skipped."""
    ran: Counter[str] = Counter()
    role: str | None = None
    counted = False
    for line in stdout.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [", "PLAY [", "PLAY RECAP")):
            role, counted = _task_role(line), False
        elif role is not None and not counted and _RAN.match(line):
            ran[role] += 1
            counted = True
    return ran


def recap_changed(result: subprocess.CompletedProcess[str], role: str) -> int:
    """Tasks changed in a successful run (the PLAY RECAP, every host), which ran ROLE's tasks.

    Fails when the run failed, reached no host, or executed no task of ROLE.
    """
    assert result.returncode == 0, output_tail(result)
    counts = recap_counts(result.stdout)
    assert counts, f"no host ran: {result.stdout[-2000:]}"
    assert tasks_ran(result.stdout)[role] > 0, (
        f"the run executed no task of role {role} (a mistyped --tags or --limit?): "
        f"{result.stdout[-2000:]}"
    )
    return sum(changed for _, changed in counts.values())


def run_probe(host: Any, name: str, *args: str) -> Any:
    """Run probes/NAME.py on HOST with ARGS; return the JSON document it prints."""
    source = (PROBES / f"{name}.py").read_text()
    result = host.run(shlex.join(["python3", "-c", source, *args]))
    assert result.rc == 0, f"probe {name} failed (rc {result.rc}): {result.stderr}"
    return json.loads(result.stdout)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def http_answers(
    host: Any,
    requests: Sequence[tuple[str, str, Mapping[str, str], object]],
    timeout: float = 60,
    *,
    decode_json: bool = True,
) -> list[tuple[int, Any]]:
    """HTTP requests made on HOST, in order: (method, url, headers, JSON body or None) each.

    Method WAIT polls the url until it answers. Each answer is (status, body); the body is
    decoded as JSON where it is JSON, unless DECODE_JSON is false. An HTTP error status is an
    answer; no answer at all fails the probe.
    """
    answers = run_probe(host, "http_answers", json.dumps(list(requests)), str(timeout))
    if not decode_json:
        return [(status, text) for status, text in answers]
    return [(status, _json_or_text(text)) for status, text in answers]
