"""roles/hardened_service: the systemd_directives filter and the wait_ready.yml entry point.

The filter renders a directive dict as unit lines. wait_ready.yml runs through ansible-playbook
on this machine against a local HTTP server: it passes once the URL answers 200 (leaving the
answer in hardened_service_ready), and otherwise fails naming the unit, the URL and the last
status, followed by the journal's last lines; included as an entry point (include_role
tasks_from: wait_ready) it checks its parameters against meta/argument_specs.yml first.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from .role_play import run_local_playbook

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
        hardened_service_unit: "{{ unit }}"
        hardened_service_ready_url: "{{ url }}"
        hardened_service_ready_headers: {Authorization: Bearer k}
        hardened_service_ready_retries: "{{ retries | default(2) }}"
        hardened_service_ready_delay: "{{ 0 }}"
        hardened_service_journal_lines: "{{ 3 }}"
    - name: Show the answer
      ansible.builtin.debug:
        msg: "answer {{ hardened_service_ready.json.model }}"
"""


class Ready(BaseHTTPRequestHandler):
    """/ready answers 200 with a model id when the bearer key is sent; anything else 503."""

    def do_GET(self) -> None:
        ok = self.path == "/ready" and self.headers.get("Authorization") == "Bearer k"
        body = b'{"model": "demo-model"}' if ok else b"{}"
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_ready(workdir: Path, **variables: object) -> str:
    variables = {"ansible_python_interpreter": sys.executable} | variables
    result = run_local_playbook(workdir, PLAYBOOK, "localhost,", extra_vars=variables)
    return f"rc={result.returncode}\n" + " ".join(result.stdout.split())


def test_a_ready_service_passes_and_leaves_its_answer(tmp_path: Path, base_url: str) -> None:
    out = wait_ready(tmp_path, unit="demo.service", url=f"{base_url}/ready")
    assert out.startswith("rc=0"), out
    assert "answer demo-model" in out


def test_a_service_that_never_answers_200_fails_with_the_journal(
    tmp_path: Path, base_url: str
) -> None:
    out = wait_ready(tmp_path, unit="demo.service", url=f"{base_url}/not-ready")
    assert not out.startswith("rc=0"), out
    assert f"demo.service did not answer 200 on {base_url}/not-ready after 2 attempts" in out
    assert "(last: 503 " in out
    assert "Last 3 journal lines of demo.service:" in out


def test_the_argument_spec_checks_the_parameters(tmp_path: Path, base_url: str) -> None:
    out = wait_ready(tmp_path, unit="demo.service", url=f"{base_url}/ready", retries="many")
    assert not out.startswith("rc=0"), out
    assert "Validating arguments against arg spec 'wait_ready'" in out
    assert "hardened_service_ready_retries" in out
