"""Upgrade path of roles/qdrant (molecule scenario qdrant-upgrade).

converge installed Qdrant A; side_effect wrote two points, noted the journal
cursor and MainPID in /root/qdrant-upgrade-before.json, and converged Qdrant B.
The last test rolls back to A through the role and checks that no download and
no unpacking was needed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

import pytest

SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).resolve().parents[1]))
COLLECTION = "upgrade_probe"

_HTTP = r"""
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:6333" + sys.argv[1], method=sys.argv[2],
                             data=sys.argv[3].encode() or None,
                             headers={"content-type": "application/json"})
with urllib.request.urlopen(req, timeout=10) as resp:
    print(resp.read().decode())
"""


def http(host, path: str, method: str = "GET", body: object = None) -> dict:
    payload = json.dumps(body) if body is not None else ""
    args = " ".join(shlex.quote(a) for a in (_HTTP, path, method, payload))
    return json.loads(host.check_output(f"python3 -c {args}"))


@pytest.fixture(scope="module")
def versions(host):
    hostvars = host.ansible.get_variables()
    return hostvars["qdrant_version"], hostvars["molecule_qdrant_upgrade_version"]


@pytest.fixture(scope="module")
def before(host):
    return json.loads(host.file("/root/qdrant-upgrade-before.json").content_string)


def journal_since(host, cursor: str) -> list[str]:
    out = host.check_output(
        f"journalctl --unit qdrant.service --after-cursor {shlex.quote(cursor)} "
        "--no-pager --output cat"
    )
    return out.splitlines()


def test_binary_replaced_and_previous_kept(host, versions):
    old, new = versions
    assert host.file("/usr/local/bin/qdrant").linked_to == f"/opt/qdrant/{new}/qdrant"
    assert host.check_output("/usr/local/bin/qdrant --version").split()[1] == new
    assert host.check_output(f"/opt/qdrant/{old}/qdrant --version").split()[1] == old


def test_restarted_exactly_once(host, before):
    lines = journal_since(host, before["cursor"])
    started = [line for line in lines if re.match(r"Started qdrant\.service", line)]
    stopping = [line for line in lines if re.match(r"Stopping qdrant\.service", line)]
    assert len(started) == 1, lines
    assert len(stopping) == 1, lines
    assert int(host.check_output("systemctl show qdrant.service -P MainPID")) != before["main_pid"]
    assert host.check_output("systemctl show qdrant.service -P NRestarts") == "0"


def test_running_service_is_the_new_version(host, versions):
    assert http(host, "/")["version"] == versions[1]
    assert host.service("qdrant").is_running


def test_data_kept(host):
    body = http(host, f"/collections/{COLLECTION}/points/count", "POST", {"exact": True})
    assert body["result"]["count"] == 2


def test_snapshot_timer_keeps_the_newest_n(host):
    assert host.service("qdrant-snapshot.timer").is_enabled
    assert host.service("qdrant-snapshot.timer").is_running
    for _ in range(3):
        host.check_output("systemctl start qdrant-snapshot.service")
        time.sleep(1.1)  # snapshot names carry the time to the second
    snapshots = http(host, f"/collections/{COLLECTION}/snapshots")["result"]
    assert len(snapshots) == 2, snapshots


def test_rollback_to_the_kept_version(host, versions):
    old, new = versions
    # A checksum no tarball has: the run only passes if nothing is fetched or unpacked.
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent),
            str(SCENARIO / "converge.yml"),
            "-e",
            f"qdrant_version={old}",
            "-e",
            "qdrant_archive_sha256=" + "0" * 64,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert re.search(r"\bok=[1-9]", output.split("PLAY RECAP", 1)[-1]), output[-3000:]
    assert host.file("/usr/local/bin/qdrant").linked_to == f"/opt/qdrant/{old}/qdrant"
    assert http(host, "/")["version"] == old
    assert host.file(f"/opt/qdrant/{new}/qdrant").exists, "the version rolled back from is kept"
    body = http(host, f"/collections/{COLLECTION}/points/count", "POST", {"exact": True})
    assert body["result"]["count"] == 2
