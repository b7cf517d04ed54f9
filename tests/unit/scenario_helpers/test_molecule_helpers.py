"""molecule/resources/tests/molecule_helpers.py, without molecule.

The recap is read from real ansible-playbook output: a throwaway role run on localhost with the
callbacks molecule's base config enables (profile_tasks, YAML result format). A run that
executes none of the role's tasks (a mistyped --tags: Gathering Facts alone) must fail. The
HTTP probe runs here as python3 (a stand-in host whose commands run locally) against a local
server.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import molecule_helpers
import pytest
from fake_http import JsonHandler, serve
from molecule_helpers import (
    PROBES,
    ansible_playbook,
    http_answers,
    recap_changed,
    recap_counts,
    run_probe,
    tasks_ran,
)

ROLE_TASKS = """
- name: Something that changes
  ansible.builtin.command: "true"
  changed_when: true
  notify: Noted
- name: Something skipped
  ansible.builtin.debug:
    msg: never
  when: false
- name: A loop with [brackets] in its name
  ansible.builtin.debug:
    msg: "{{ item }}"
  loop: [1, 2, 3]
"""
HANDLERS = """
- name: Noted
  ansible.builtin.debug:
    msg: noted
"""
PLAYBOOK = """
- name: Probe play
  hosts: localhost
  gather_facts: true
  gather_subset: ["!all", "!min"]
  roles:
    - role: probe_role
      tags: [probe_role]
"""


def completed(stdout: str, returncode: int = 0) -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess([], returncode, stdout, "")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    role = root / "roles/probe_role"
    (role / "tasks").mkdir(parents=True)
    (role / "handlers").mkdir()
    (role / "tasks/main.yml").write_text(ROLE_TASKS)
    (role / "handlers/main.yml").write_text(HANDLERS)
    (root / "playbooks").mkdir()
    (root / "playbooks/site.yml").write_text(PLAYBOOK)
    (root / "inventory").mkdir()
    (root / "inventory/hosts").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
    )
    (root / "ansible.cfg").write_text(
        "[defaults]\ncallbacks_enabled = ansible.posix.profile_tasks\n"
        "stdout_callback = ansible.builtin.default\nresult_format = yaml\n"
    )
    return root


@pytest.fixture
def scenario(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """molecule_helpers pointed at the throwaway project, as molecule's env would point it."""
    monkeypatch.setattr(molecule_helpers, "PROJECT", project)
    monkeypatch.setenv("MOLECULE_INVENTORY_FILE", str(project / "inventory/hosts"))
    monkeypatch.setenv("ANSIBLE_CONFIG", str(project / "ansible.cfg"))
    monkeypatch.setenv("ANSIBLE_LOCALHOST_WARNING", "false")
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(project))
    return project


@pytest.mark.slow
def test_a_run_of_the_roles_tasks_counts_the_recaps_changes(scenario: Path) -> None:
    result = ansible_playbook(tags="probe_role")
    assert recap_changed(result, role="probe_role") == 1, result.stdout  # the command task
    # changed, the loop (once, however many items) and the handler; not the skipped task
    assert tasks_ran(result.stdout) == {"probe_role": 3}
    assert recap_counts(result.stdout) == {"localhost": (4, 1)}  # + Gathering Facts


@pytest.mark.slow
def test_a_mistyped_tag_fails_although_gathering_facts_ran(scenario: Path) -> None:
    result = ansible_playbook(tags="probe_rol")
    assert result.returncode == 0
    assert recap_counts(result.stdout) == {"localhost": (1, 0)}  # Gathering Facts alone
    with pytest.raises(AssertionError, match="executed no task of role probe_role"):
        recap_changed(result, role="probe_role")


@pytest.mark.slow
def test_check_mode_and_extra_vars_reach_the_run(scenario: Path) -> None:
    result = ansible_playbook("site.yml", "--check", tags="probe_role", extra_vars={"x": 1})
    assert recap_changed(result, role="probe_role") == 0  # command tasks skip in check mode
    assert tasks_ran(result.stdout) == {"probe_role": 1}  # the loop alone


def test_a_failed_run_or_one_without_a_recap_fails() -> None:
    ran = "TASK [r : t] ***\nchanged: [h]\n\nPLAY RECAP ***\nh : ok=1 changed=1 unreachable=0\n"
    assert recap_changed(completed(ran), role="r") == 1
    with pytest.raises(AssertionError):
        recap_changed(completed(ran, returncode=2), role="r")
    with pytest.raises(AssertionError, match="no host ran"):
        recap_changed(completed("ERROR! the playbook could not be found\n"), role="r")


def test_only_executed_tasks_of_each_role_count() -> None:
    stdout = "\n".join(
        [
            "PLAY [p] ***",
            "TASK [Gathering Facts] ***",
            "ok: [h1]",
            "TASK [a : skipped everywhere] ***",
            "skipping: [h1]",
            "skipping: [h2]",
            "TASK [a : ran on one host] [CHECK MODE] ***",
            "skipping: [h1]",
            "ok: [h2] => (item=1)",
            "ok: [h2] => (item=2)",
            "TASK [b : failed] ***",
            "fatal: [h1]: FAILED! => changed=false",
            "RUNNING HANDLER [b : restart] ***",
            "changed: [h2 -> localhost]",
            "TASK [included from a play] ***",
            "ok: [h1]",
            "PLAY RECAP ***",
            "h1 : ok=2 changed=0 unreachable=0 failed=1",
            "h2 : ok=3 changed=1 unreachable=0 failed=0",
            "Thursday 03 December 2026 ===",
            "ok: [h1]",
        ]
    )
    assert tasks_ran(stdout) == {"a": 1, "b": 2}
    assert recap_counts(stdout) == {"h1": (2, 0), "h2": (3, 1)}


def test_the_runner_names_the_scenario_inventory_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    seen: dict[str, object] = {}

    def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        seen.update(command=command, env=kwargs["env"])
        return completed("")

    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr(molecule_helpers, "PROJECT", tmp_path)
    monkeypatch.setenv("MOLECULE_INVENTORY_FILE", str(tmp_path / "inventory/hosts"))
    monkeypatch.setenv("ANSIBLE_ROLES_PATH", "/from/molecule")
    ansible_playbook(
        "verify.yml",
        "--limit",
        "localhost",
        tags="t",
        extra_vars={"a": [1]},
        inventories=[tmp_path / "more.yml"],
    )
    assert seen["command"] == [
        "ansible-playbook",
        "-i",
        str(tmp_path / "inventory"),
        "-i",
        str(tmp_path / "more.yml"),
        str(tmp_path / "playbooks/verify.yml"),
        "--tags",
        "t",
        "--extra-vars",
        '{"a": [1]}',
        "--limit",
        "localhost",
    ]
    env = seen["env"]
    assert isinstance(env, dict)
    assert (env["ANSIBLE_ROLES_PATH"], env["ANSIBLE_NOCOLOR"]) == ("/from/molecule", "1")
    ansible_playbook(tmp_path / "elsewhere.yml")
    assert seen["command"][3] == str(tmp_path / "elsewhere.yml")


@dataclass
class Ran:
    rc: int
    stdout: str
    stderr: str


class LocalHost:
    """A stand-in for a testinfra host: commands run here, through a shell."""

    def __init__(self) -> None:
        self.commands: list[str] = []

    def run(self, command: str) -> Ran:
        self.commands.append(command)
        done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
        return Ran(done.returncode, done.stdout, done.stderr)


class Answers(JsonHandler):
    def do_GET(self) -> None:
        if self.path == "/text":
            self.send_text(200, "plain\n")
        else:
            self.send_json(404, {"missing": self.path})

    def do_POST(self) -> None:
        self.send_json(200, {"got": self.read_json(), "key": self.headers.get("api-key")})


def test_probes_are_sent_whole_and_quoted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    source = "import json, sys\n\nprint(json.dumps(sys.argv[1:]))  # it's\n"
    (tmp_path / "echo.py").write_text(source)
    monkeypatch.setattr(molecule_helpers, "PROBES", tmp_path)
    host = LocalHost()
    args = ['it\'s "quoted"', "$HOME `x`", ""]
    assert run_probe(host, "echo", *args) == args
    assert shlex.split(host.commands[0]) == ["python3", "-c", source, *args]


def test_every_probe_is_python() -> None:
    for probe in PROBES.glob("*.py"):
        compile(probe.read_text(), str(probe), "exec")


def test_the_http_probe_answers_in_order() -> None:
    host = LocalHost()
    with serve(Answers) as server:
        answers = http_answers(
            host,
            [
                ("WAIT", server.url + "/text", {}, None),
                ("POST", server.url + "/x", {"api-key": "k"}, {"a": 1}),
                ("GET", server.url + "/nope", {}, None),
                ("GET", server.url + "/text", {}, None),
            ],
            timeout=5,
        )
        raw = http_answers(host, [("POST", server.url, {}, [1])], timeout=5, decode_json=False)
    assert answers == [
        (0, ""),
        (200, {"got": {"a": 1}, "key": "k"}),
        (404, {"missing": "/nope"}),
        (200, "plain\n"),
    ]
    assert raw == [(200, json.dumps({"got": [1], "key": None}))]


def test_a_request_without_an_answer_fails_the_probe() -> None:
    with pytest.raises(AssertionError, match="probe http_answers failed"):
        http_answers(LocalHost(), [("GET", "http://127.0.0.1:9/", {}, None)], timeout=2)
