"""The VS Code tasks of roles/workstation, executed for real against the test host.

The workstation play of site.yml runs on the controller (local connection) against a temporary
home, with the tasks going through ssh to the test host as the operator account prepare.yml made
(its key: MOLECULE_EPHEMERAL_DIRECTORY/operator_ed25519). The Roo Code settings must carry the
dimension of the model the host really serves. Then every generated task's command is run as VS
Code would run it (type process: command + args) and its effect on the host is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from molecule_helpers import ansible_playbook, recap_changed, run_probe
from workstation.module_loader import load_module

jsonc = load_module()
QDRANT, JINA = "qdrant.service", "jina-embeddings.service"
OPERATOR = "roo-operator"
# Every managed task, in the order they run here (each leaves the host as the next expects).
ORDER = [
    "stopall",
    "startall + warmup",
    "jina stop",
    "jina start + warmup",
    "qdrant restart",
    "restartall",
    "jina-stack status",
    "jina-stack doctor",
    "help: embeddings shortcuts",
]
# doctor exits 5 when the access log holds a problem (test_doctor.py provokes some before this).
EXIT_CODES = {"jina-stack doctor": (0, 5)}


def run_workstation_play(home: Path, address: str, *extra: str) -> subprocess.CompletedProcess:
    workstation = home.parent / "workstations.yml"
    workstation.write_text(
        json.dumps(
            {
                "workstations": {
                    "hosts": {
                        "localhost": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        )
    )
    key = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "operator_ed25519"
    extra_vars = {
        "workstation_os": "linux",
        "workstation_home": str(home),
        "workstation_ssh_user": OPERATOR,
        "workstation_ssh_host": address,
        "workstation_ssh_options": [
            "-i",
            str(key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ],
    }
    return ansible_playbook(
        "site.yml",
        "--limit",
        "localhost",
        *extra,
        extra_vars=extra_vars,
        inventories=[workstation],
    )


def changed(result: subprocess.CompletedProcess[str]) -> int:
    return recap_changed(result, role="workstation")


@pytest.fixture(scope="module")
def address(host) -> str:
    return host.check_output("hostname -I").split()[0]


@pytest.fixture(scope="module")
def home(tmp_path_factory, address) -> Path:
    home = tmp_path_factory.mktemp("workstation") / "home"
    user_dir = home / ".config/Code/User"
    user_dir.mkdir(parents=True)
    (user_dir / "tasks.json").write_text('{\n  // mine\n  "version": "2.0.0",\n  "tasks": [],\n}\n')
    first = run_workstation_play(home, address)
    assert changed(first) > 0
    return home


@pytest.fixture(scope="module")
def tasks(home) -> dict[str, dict]:
    data = jsonc.loads((home / ".config/Code/User/tasks.json").read_text())
    return {task["label"]: task for task in data["tasks"]}


def test_every_managed_task_is_exercised_here(tasks):
    assert sorted(tasks) == sorted(ORDER)


def test_second_workstation_run_changes_nothing(home, address):
    assert changed(run_workstation_play(home, address)) == 0


def test_roo_settings_carry_the_deployed_models_dimension(home, host):
    config = json.loads((home / ".jina-stack/roo-code-settings.json").read_text())
    index = config["globalSettings"]["codebaseIndexConfig"]
    assert index["codebaseIndexEmbedderModelId"] == "all-MiniLM-L6-v2"
    assert index["codebaseIndexEmbedderModelDimension"] == 384
    assert index["codebaseIndexOpenAiCompatibleBaseUrl"] == "http://127.0.0.1:4000/v1"
    assert index["codebaseIndexQdrantUrl"] == "http://127.0.0.1:6333"


def state(host) -> dict:
    """Unit states, main PIDs and readiness on the host (one round trip)."""
    args = {
        "units": {"qdrant": QDRANT, "jina": JINA},
        "urls": {"readyz": "http://127.0.0.1:6333/readyz", "ready": "http://127.0.0.1:4000/ready"},
    }
    return run_probe(host, "stack_state", json.dumps(args))


def run_task(task: dict) -> subprocess.CompletedProcess:
    assert task["type"] == "process"
    return subprocess.run(
        [task["command"], *task["args"]], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.parametrize("label", ORDER)
def test_task_does_what_its_label_says(label, tasks, host):
    task = tasks[label]
    previous = state(host)
    result = run_task(task)
    output = result.stdout + result.stderr
    assert result.returncode in EXIT_CODES.get(label, (0,)), output
    if label != "help: embeddings shortcuts":
        assert task["command"] == "ssh"
        assert "BatchMode=yes" in task["args"]
        assert f"{OPERATOR}@" in " ".join(task["args"])
    now = state(host)
    q, j = now["qdrant"], now["jina"]
    if label == "stopall":
        assert q["ActiveState"] == "inactive"
        assert j["ActiveState"] == "inactive"
        assert now["ready"] == 0
    elif label == "startall + warmup":
        assert q["ActiveState"] == "active"
        assert j["ActiveState"] == "active"
        assert now["readyz"] == 200
        assert now["ready"] == 200  # warmup waited for it
        assert "warmup embedding (all-MiniLM-L6-v2, 384 dims)" in output
        assert output.index("qdrant: ready") < output.index("jina: ready")
    elif label == "jina stop":
        assert j["ActiveState"] == "inactive"
        assert q["ActiveState"] == "active"
        assert q["MainPID"] == previous["qdrant"]["MainPID"]
    elif label == "jina start + warmup":
        assert j["ActiveState"] == "active"
        assert now["ready"] == 200
        assert "warmup embedding" in output
        assert q["MainPID"] == previous["qdrant"]["MainPID"]
    elif label == "qdrant restart":
        assert q["ActiveState"] == "active"
        assert q["MainPID"] != previous["qdrant"]["MainPID"]
        assert now["readyz"] == 200
        assert j["MainPID"] == previous["jina"]["MainPID"]
    elif label == "restartall":
        assert q["MainPID"] != previous["qdrant"]["MainPID"]
        assert j["MainPID"] != previous["jina"]["MainPID"]
        assert now["readyz"] == 200
        assert now["ready"] == 200
    elif label == "jina-stack status":
        assert "qdrant.service" in output
        assert "jina-embeddings.service" in output
        assert now == previous
    elif label == "jina-stack doctor":
        assert "doctor: model 'all-MiniLM-L6-v2' (384 dims" in output
        assert ("no problem found" in output) == (result.returncode == 0)
        assert now == previous
    else:  # the help table, printed locally
        for name in ORDER[:-1]:
            assert name in output
        assert "ctrl+shift+9" in output
        assert now == previous
