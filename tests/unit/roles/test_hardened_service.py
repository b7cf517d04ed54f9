"""roles/hardened_service: the systemd_directives filter and the wait_ready.yml entry point.

The filter renders a directive dict as unit lines. wait_ready.yml runs through ansible-playbook
on this machine against a closed port: it fails naming the unit, the URL and the last status,
followed by the journal's last lines; included as an entry point (include_role tasks_from:
wait_ready) it checks its parameters against meta/argument_specs.yml first. (Its passing path
runs in every molecule converge: both services wait through it.)
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from local_playbook import run_local_playbook

PLUGIN = (
    Path(__file__).resolve().parents[3]
    / "roles"
    / "hardened_service"
    / "filter_plugins"
    / "systemd_directives.py"
)


def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("systemd_directives", PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keys_sorted_like_dictsort_lists_repeated_booleans_as_yes_no_null_dropped() -> None:
    render = plugin().FilterModule().filters()["systemd_directives"]
    directives = {
        "UMask": "0077",
        "SystemCallFilter": ["@system-service", "~@privileged"],
        "ProtectHome": None,
        "PrivateDevices": False,
        "MemoryDenyWriteExecute": True,
        "CapabilityBoundingSet": "",
        "ambientCapabilities": "",
        "LimitNOFILE": 65536,
    }
    assert render(directives).split("\n") == [
        "ambientCapabilities=",
        "CapabilityBoundingSet=",
        "LimitNOFILE=65536",
        "MemoryDenyWriteExecute=yes",
        "PrivateDevices=no",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "UMask=0077",
    ]


def test_nothing_renders_nothing() -> None:
    assert plugin().systemd_directives({"ProtectHome": None}) == ""


PLAYBOOK = """
- name: roles/hardened_service wait_ready.yml, here
  hosts: all
  gather_facts: false
  tasks:
    - name: Wait until ready
      ansible.builtin.include_role:
        name: hardened_service
        tasks_from: wait_ready
      vars:
        hardened_service_unit: demo.service
        hardened_service_ready_url: "{{ url }}"
        hardened_service_ready_retries: "{{ retries | default(2) }}"
        hardened_service_ready_delay: "{{ 0 }}"
        hardened_service_journal_lines: "{{ 3 }}"
"""
# Port 9 (discard) on loopback: nothing listens there on the test machines.
CLOSED = "http://127.0.0.1:9/ready"


def wait_ready(workdir: Path, **variables: object) -> str:
    variables = {"ansible_python_interpreter": sys.executable, "url": CLOSED} | variables
    result = run_local_playbook(
        workdir, PLAYBOOK, "localhost,", "-c", "local", extra_vars=variables
    )
    return f"rc={result.returncode}\n" + " ".join(result.stdout.split())


def test_a_service_that_never_answers_200_fails_with_the_journal(tmp_path: Path) -> None:
    out = wait_ready(tmp_path)
    assert not out.startswith("rc=0"), out
    assert f"demo.service did not answer 200 on {CLOSED} after 2 attempts" in out
    assert "(last: -1 " in out  # no answer at all
    assert "Last 3 journal lines of demo.service:" in out


def test_the_argument_spec_checks_the_parameters(tmp_path: Path) -> None:
    out = wait_ready(tmp_path, retries="many")
    assert not out.startswith("rc=0"), out
    assert "Validating arguments against arg spec 'wait_ready'" in out
    assert "hardened_service_ready_retries" in out
    assert "did not answer 200" not in out
