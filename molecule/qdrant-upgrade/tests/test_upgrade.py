"""Upgrade, backup and rollback paths of roles/qdrant (molecule scenario qdrant-upgrade).

converge installed Qdrant A; side_effect wrote two points, noted the journal cursor and
MainPID in /root/qdrant-upgrade-before.json, and converged Qdrant B. The tests run in file
order: B is checked (one restart, data kept, the pre-upgrade full-storage snapshot recorded), a
jump of two minor versions is refused, the snapshot timer runs (its own snapshots pruned, a
hand-made one kept, a failing collection reported while the others are snapshotted, the copy
made), a collection is restored with playbooks/qdrant-restore.yml, playbooks/qdrant-rollback.yml
returns to A with the data from before the upgrade, and a converge of A then needs no tarball.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from pathlib import Path

import pytest
from molecule_helpers import PROJECT, ansible_playbook, http_answers, tasks_ran

SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", Path(__file__).resolve().parents[1]))
QDRANT = "http://127.0.0.1:6333"
COLLECTION = "upgrade_probe"


def http(host, path: str, method: str = "GET", body: object = None) -> dict:
    """One request to Qdrant on the host; it must succeed."""
    [(status, answer)] = http_answers(host, [(method, QDRANT + path, {}, body)], timeout=10)
    assert 200 <= status < 300, (method, path, status, answer)
    return answer


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


def playbook(name: str | Path, *extra: str) -> tuple[int, str]:
    """Run a playbook against the scenario's inventory: (exit status, output)."""
    result = ansible_playbook(name, *extra)
    return result.returncode, result.stdout + result.stderr


def count(host, collection: str = COLLECTION) -> int:
    body = http(host, f"/collections/{collection}/points/count", "POST", {"exact": True})
    return body["result"]["count"]


def test_pre_upgrade_snapshot_recorded(host, versions):
    old, new = versions
    record = json.loads(host.file("/var/lib/qdrant/last-upgrade.json").content_string)
    assert record["from_version"] == old
    assert record["to_version"] == new
    assert record["from_binary"] == f"/opt/qdrant/{old}/qdrant"
    assert record["snapshot_path"] == f"/var/lib/qdrant/snapshots/{record['snapshot']}"
    listed = [s["name"] for s in http(host, "/snapshots")["result"]]
    assert record["snapshot"] in listed
    # The stand-in's full snapshot is a tar with every collection as JSON: the two points are in it.
    content = host.check_output(f"tar -xOf {shlex.quote(record['snapshot_path'])} collections.json")
    probe = next(c for c in json.loads(content) if c["name"] == COLLECTION)
    assert len(probe["points"]) == 2


def test_jump_of_two_minor_versions_refused(host, versions):
    _, new = versions
    rc, output = playbook(
        SCENARIO / "converge.yml",
        "-e",
        "qdrant_version=1.18.3",
        "-e",
        "qdrant_archive_sha256=" + "0" * 64,
    )
    assert rc != 0, output[-3000:]
    assert "one minor version at a time" in output, output[-3000:]
    assert f"{new} -> 1.17.x -> 1.18.3" in output, output[-3000:]
    assert "qdrant_upgrade_allow_version_jump" in output
    assert host.file("/usr/local/bin/qdrant").linked_to == f"/opt/qdrant/{new}/qdrant"
    assert http(host, "/")["version"] == new


def test_snapshot_timer_prunes_only_its_own_snapshots(host):
    assert host.service("qdrant-snapshot.timer").is_enabled  # on by default
    assert host.service("qdrant-snapshot.timer").is_running
    manual = http(host, f"/collections/{COLLECTION}/snapshots?wait=true", "POST")["result"]["name"]
    for _ in range(3):
        host.check_output("systemctl start qdrant-snapshot.service")
        time.sleep(1.1)  # snapshot names carry the time to the second
    names = {s["name"] for s in http(host, f"/collections/{COLLECTION}/snapshots")["result"]}
    own = json.loads(host.file("/var/lib/qdrant-snapshot/own-snapshots.json").content_string)
    assert len(own[COLLECTION]) == 2
    assert names == {manual, *own[COLLECTION]}


def test_snapshot_run_goes_on_past_a_failing_collection_and_copies(host):
    # A collection whose snapshot directory cannot be created (a file is in the way): Qdrant
    # answers 500 for it. It sorts first, so the run has to carry on to see the others.
    http(host, "/collections/aaa_broken", "PUT", {"vectors": {"size": 3, "distance": "Dot"}})
    host.check_output("touch /var/lib/qdrant/snapshots/aaa_broken")
    try:
        before = len(http(host, f"/collections/{COLLECTION}/snapshots")["result"])
        cursor = (
            host.check_output(
                "journalctl -u qdrant-snapshot.service -n 0 --show-cursor --quiet --no-pager"
            )
            .split("-- cursor: ")[-1]
            .strip()
        )
        run = host.run("systemctl start qdrant-snapshot.service")
        assert run.rc != 0, "a failed collection must fail the run"
        log = host.check_output(
            f"journalctl -u qdrant-snapshot.service --after-cursor {shlex.quote(cursor)}"
            " --no-pager --output cat"
        )
        assert "error: aaa_broken: snapshot failed: HTTP 500" in log, log
        assert f"{COLLECTION}: created snapshot" in log, log
        assert "snapshotted 1 of 2 collections, 1 error(s)" in log, log
        # Pruned back to its own newest 2 plus the hand-made one.
        assert len(http(host, f"/collections/{COLLECTION}/snapshots")["result"]) == before
    finally:
        http(host, "/collections/aaa_broken", "DELETE")
        host.check_output("rm -f /var/lib/qdrant/snapshots/aaa_broken")
    # The copy: every collection snapshot and the pre-upgrade full snapshot, on another path.
    record = json.loads(host.file("/var/lib/qdrant/last-upgrade.json").content_string)
    copy = "/var/backups/qdrant-snapshots"
    assert host.file(f"{copy}/{record['snapshot']}").exists
    names = {s["name"] for s in http(host, f"/collections/{COLLECTION}/snapshots")["result"]}
    for name in names:
        assert host.file(f"{copy}/{COLLECTION}/{name}").exists, name


def test_restore_playbook_brings_a_collection_back(host):
    http(host, f"/collections/{COLLECTION}/points/delete?wait=true", "POST", {"points": [1]})
    assert count(host) == 1
    rc, output = playbook(
        PROJECT / "playbooks/qdrant-restore.yml", "-e", f"qdrant_restore_collection={COLLECTION}"
    )
    assert rc == 0, output[-3000:]
    assert "restored from" in output
    assert count(host) == 2
    # Bad input: a snapshot that does not exist fails, names what there is, changes nothing.
    rc, output = playbook(
        PROJECT / "playbooks/qdrant-restore.yml",
        "-e",
        f"qdrant_restore_collection={COLLECTION}",
        "-e",
        "qdrant_restore_snapshot=nope.snapshot",
    )
    assert rc != 0
    assert "no snapshot nope.snapshot; available:" in output, output[-3000:]
    assert count(host) == 2


def test_rollback_playbook_restores_the_previous_version_and_its_data(host, versions):
    old, new = versions
    http(
        host,
        f"/collections/{COLLECTION}/points?wait=true",
        "PUT",
        {"points": [{"id": 3, "vector": [0.0, 0.0, 1.0], "payload": {"after": "upgrade"}}]},
    )
    assert count(host) == 3
    rc, output = playbook(PROJECT / "playbooks/qdrant-rollback.yml")
    assert rc == 0, output[-3000:]
    assert host.file("/usr/local/bin/qdrant").linked_to == f"/opt/qdrant/{old}/qdrant"
    assert http(host, "/")["version"] == old
    # The data of the pre-upgrade snapshot: the two points from before, not the third.
    assert count(host) == 2
    point = http(host, f"/collections/{COLLECTION}/points/1")["result"]
    assert point["payload"] == {"before": "upgrade"}
    # Nothing deleted: the newer storage moved aside, the newer binary kept.
    aside = host.check_output("ls -d /var/lib/qdrant/storage.before-rollback-from-*").split()
    assert len(aside) == 1
    assert aside[0].startswith(f"/var/lib/qdrant/storage.before-rollback-from-{new}-")
    assert f"is kept in {aside[0]}" in output, "the message names the directory the data went to"
    assert host.file(f"/opt/qdrant/{new}/qdrant").exists
    assert not host.file("/etc/systemd/system/qdrant.service.d/rollback-restore.conf").exists
    assert not host.file("/var/lib/qdrant/last-upgrade.json").exists
    assert "--storage-snapshot" not in host.check_output("systemctl cat qdrant.service")
    # A second rollback has nothing to undo and changes nothing.
    rc, output = playbook(PROJECT / "playbooks/qdrant-rollback.yml")
    assert rc != 0
    assert "there is no pre-upgrade snapshot to roll back to" in output, output[-3000:]
    assert count(host) == 2


def test_converge_of_the_version_rolled_back_to_needs_no_tarball(host, versions):
    """What the operator does next: qdrant_version back to A in the inventory, run the role."""
    old, new = versions
    # A checksum no tarball has: the run only passes if nothing is fetched or unpacked.
    rc, output = playbook(
        SCENARIO / "converge.yml",
        "-e",
        f"qdrant_version={old}",
        "-e",
        "qdrant_archive_sha256=" + "0" * 64,
    )
    assert rc == 0, output[-3000:]
    assert tasks_ran(output)["qdrant"] > 0, output[-3000:]
    assert host.file("/usr/local/bin/qdrant").linked_to == f"/opt/qdrant/{old}/qdrant"
    assert http(host, "/")["version"] == old
    assert host.file(f"/opt/qdrant/{new}/qdrant").exists, "the version rolled back from is kept"
    assert count(host) == 2
    assert not host.file("/var/lib/qdrant/last-upgrade.json").exists, (
        "no version switch, no snapshot"
    )
