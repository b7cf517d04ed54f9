"""roles/workstation against temporary home directories, one per OS flavour.

ansible-playbook (from the same virtualenv as pytest) runs the role with a local connection on
homes that already hold the user's own JSONC tasks, keybindings and settings. Checked: the
files stay valid, the user's entries and comments stay, every managed entry is there once with
the flavour's key modifier and path, a second run changes nothing, and
workstation_vscode_state: absent takes the managed entries out again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from local_playbook import run_local_playbook
from molecule_helpers import recap_changed

from .module_loader import load_module

REPO = Path(__file__).resolve().parents[3]
jsonc = load_module()

SHORTCUTS = {  # label -> key after the modifier, as the original setup had them
    "startall + warmup": "shift+9",
    "restartall": "shift+=",
    "stopall": "shift+-",
    "qdrant restart": "shift+8",
    "jina start + warmup": "shift+7",
    "jina stop": "shift+6",
    "help: embeddings shortcuts": "shift+0",
}
CLI = {
    "startall + warmup": ["start", "all"],
    "restartall": ["restart", "all"],
    "stopall": ["stop", "all"],
    "qdrant restart": ["restart", "qdrant"],
    "jina start + warmup": ["start", "jina"],
    "jina stop": ["stop", "jina"],
    "jina-stack status": ["status", "all"],
    "jina-stack doctor": ["doctor"],
}
FLAVOURS = {
    # name: (workstation_os, VS Code user dir below home, modifier, remote_ssh)
    "macos": ("macos", "Library/Application Support/Code/User", "cmd", False),
    "linux": ("linux", ".config/Code/User", "ctrl", False),
    "windows": ("windows", "AppData/Roaming/Code/User", "ctrl", False),
    "linux-remote-ssh": ("linux", ".config/Code/User", "ctrl", True),
}
USER_TASKS = """// tasks.json of the user
{
  "version": "2.0.0",
  "tasks": [
    // my build
    {"label": "build", "type": "shell", "command": "make -j4",}, /* keep */
  ],
}
"""
USER_KEYBINDINGS = """// Place your key bindings in this file to override the defaults
[
  { "key": "ctrl+alt+t", "command": "workbench.action.terminal.new" }, // mine
]
"""
USER_SETTINGS = """{
  // my settings
  "editor.fontSize": 15,
}
"""
PLAYBOOK = """
- name: Workstation role against temporary homes
  hosts: localhost
  connection: local
  gather_facts: true
  tasks:
    - name: One home per flavour
      ansible.builtin.include_role:
        name: workstation
      loop: "{{ homes }}"
      loop_control:
        label: "{{ item.name }}"
      vars:
        workstation_os: "{{ item.os }}"
        workstation_home: "{{ item.home }}"
        workstation_remote_ssh: "{{ item.remote_ssh }}"
        workstation_stack_host: ""
        workstation_ssh_host: stack.example.internal
        workstation_ssh_user: "{{ ssh_user }}"
        workstation_ssh_options: ["-p", "2222"]
        workstation_roo_model_id: all-MiniLM-L6-v2
        workstation_roo_model_dimension: 384
        workstation_roo_auto_import: true
"""


def run(
    workdir: Path, homes: list[dict], *extra: str, ssh_user: str = "alice"
) -> subprocess.CompletedProcess:
    return run_local_playbook(
        workdir,
        PLAYBOOK,
        "localhost,",
        "-e",
        f"ansible_python_interpreter={sys.executable}",
        *extra,
        extra_vars={"homes": homes, "ssh_user": ssh_user},
        env=os.environ | {"ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"},
    )


def changed(result: subprocess.CompletedProcess) -> int:
    return recap_changed(result, role="workstation")


@pytest.fixture(scope="module")
def homes(tmp_path_factory) -> dict:
    """Homes with the user's own files, converged once; name -> (home, VS Code dir, flavour)."""
    root = tmp_path_factory.mktemp("homes")
    result = {}
    for name, (os_name, vscode, modifier, remote) in FLAVOURS.items():
        home = root / name
        user_dir = home / vscode
        user_dir.mkdir(parents=True)
        (user_dir / "tasks.json").write_text(USER_TASKS)
        (user_dir / "keybindings.json").write_text(USER_KEYBINDINGS)
        (user_dir / "settings.json").write_text(USER_SETTINGS)
        result[name] = {
            "name": name,
            "os": os_name,
            "home": str(home),
            "remote_ssh": remote,
            "dir": user_dir,
            "modifier": modifier,
        }
    first = run(root, [_plain(h) for h in result.values()])
    assert changed(first) > 0
    result["_root"] = root
    result["_second"] = run(root, [_plain(h) for h in result.values() if isinstance(h, dict)])
    return result


def _plain(home: dict) -> dict:
    return {k: home[k] for k in ("name", "os", "home", "remote_ssh")}


def flavours(homes: dict) -> list[dict]:
    return [h for k, h in homes.items() if not k.startswith("_")]


def test_second_run_changes_nothing(homes):
    assert changed(homes["_second"]) == 0


@pytest.mark.parametrize("name", list(FLAVOURS))
def test_tasks_json_keeps_the_users_task_and_has_each_managed_task_once(homes, name):
    home = homes[name]
    text = (home["dir"] / "tasks.json").read_text()
    data = jsonc.loads(text)
    assert data["version"] == "2.0.0"
    labels = [t["label"] for t in data["tasks"]]
    assert labels[0] == "build"
    assert data["tasks"][0]["command"] == "make -j4"
    assert "// my build" in text
    assert "/* keep */" in text
    managed = [t for t in data["tasks"] if t.get("detail", "").startswith("jina-stack:")]
    assert sorted(t["label"] for t in managed) == sorted({*SHORTCUTS, *CLI})
    assert len(labels) == len(set(labels))
    for task in managed:
        assert task["type"] == "process"
        if task["label"] in CLI:
            argv = [task["command"], *task["args"]]
            if home["remote_ssh"]:
                assert argv == ["jina-stack", *CLI[task["label"]]]
            else:
                assert argv == [
                    "ssh",
                    "-o",
                    "BatchMode=yes",
                    "-p",
                    "2222",
                    "alice@stack.example.internal",
                    "jina-stack",
                    *CLI[task["label"]],
                ]


@pytest.mark.parametrize("name", list(FLAVOURS))
def test_keybindings_use_the_flavours_modifier(homes, name):
    home = homes[name]
    data = jsonc.loads((home["dir"] / "keybindings.json").read_text())
    assert data[0] == {"key": "ctrl+alt+t", "command": "workbench.action.terminal.new"}
    managed = {b["args"]: b["key"] for b in data[1:]}
    assert managed == {label: f"{home['modifier']}+{key}" for label, key in SHORTCUTS.items()}
    assert all(b["command"] == "workbench.action.tasks.runTask" for b in data[1:])


def test_help_task_prints_the_table(homes):
    data = jsonc.loads((homes["linux"]["dir"] / "tasks.json").read_text())
    task = next(t for t in data["tasks"] if t["label"] == "help: embeddings shortcuts")
    out = subprocess.run(
        [task["command"], *task["args"]], capture_output=True, text=True, check=True
    ).stdout
    for label, key in SHORTCUTS.items():
        assert re.search(rf"ctrl\+{re.escape(key)}\s+{re.escape(label)}\s", out), (label, out)
    for label in ("jina-stack status", "jina-stack doctor"):  # no key, listed all the same
        assert re.search(rf"\(no key\)\s+{re.escape(label)}\s", out), (label, out)
    assert "powershell" in task["windows"]["command"]
    assert "startall + warmup" in task["windows"]["args"][-1]


@pytest.mark.parametrize("name", list(FLAVOURS))
def test_roo_code_settings(homes, name):
    home = Path(homes[name]["home"])
    settings = json.loads((home / ".jina-stack/roo-code-settings.json").read_text())
    assert settings["providerProfiles"] == {"currentApiConfigName": "default", "apiConfigs": {}}
    assert settings["globalSettings"]["codebaseIndexConfig"] == {
        "codebaseIndexEnabled": True,
        "codebaseIndexQdrantUrl": "http://127.0.0.1:6333",
        "codebaseIndexEmbedderProvider": "openai-compatible",
        "codebaseIndexOpenAiCompatibleBaseUrl": "http://127.0.0.1:4000/v1",
        "codebaseIndexEmbedderModelId": "all-MiniLM-L6-v2",
        "codebaseIndexEmbedderModelDimension": 384,
        "codebaseIndexSearchMinScore": 0.4,
        "codebaseIndexSearchMaxResults": 50,
    }
    summary = json.loads((home / ".jina-stack/roo-code-config.json").read_text())
    assert summary["dimension"] == 384
    assert summary["baseUrl"].endswith("/v1")
    user_settings = jsonc.loads((homes[name]["dir"] / "settings.json").read_text())
    assert user_settings == {
        "editor.fontSize": 15,
        "roo-cline.autoImportSettingsPath": "~/.jina-stack/roo-code-settings.json",
    }


# Keep this the last test that uses the converged homes: it takes the managed entries out.
def test_absent_removes_every_managed_entry_and_nothing_else(homes):
    plain = [_plain(h) for h in flavours(homes)]
    result = run(homes["_root"], plain, "-e", "workstation_vscode_state=absent")
    assert changed(result) > 0
    for home in flavours(homes):
        assert jsonc.loads((home["dir"] / "tasks.json").read_text()) == jsonc.loads(USER_TASKS)
        assert jsonc.loads((home["dir"] / "keybindings.json").read_text()) == jsonc.loads(
            USER_KEYBINDINGS
        )
        assert jsonc.loads((home["dir"] / "settings.json").read_text()) == jsonc.loads(
            USER_SETTINGS
        )


def test_missing_ssh_user_fails_early_naming_the_variable(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    result = run(
        tmp_path,
        [{"name": "x", "os": "linux", "home": str(home), "remote_ssh": False}],
        ssh_user="",
    )
    assert result.returncode != 0
    assert "workstation_ssh_user" in result.stdout
    assert not (home / ".config").exists()


def test_broken_jsonc_fails_and_is_left_alone(tmp_path):
    home = tmp_path / "home"
    user_dir = home / ".config/Code/User"
    user_dir.mkdir(parents=True)
    broken = '[\n  {"key": "ctrl+k" "command": "x"}\n]\n'
    (user_dir / "keybindings.json").write_text(broken)
    result = run(tmp_path, [{"name": "x", "os": "linux", "home": str(home), "remote_ssh": False}])
    assert result.returncode != 0
    assert "keybindings.json: expected ',' or '}' at line 2 column 20" in result.stdout
    assert (user_dir / "keybindings.json").read_text() == broken
