"""playbooks/verify.yml's cluster play (roles/qdrant tasks/verify_cluster.yml) against fakes.

Three peers with a local connection, each pointed at its own small HTTP server on loopback
that answers GET / and GET /cluster as a real Qdrant peer does (or as the test stand-in does):
a healthy cluster passes and reports the leader; a peer that sees fewer peers, no leader or a
missing API key fails, naming what is wrong; the stand-in is skipped, saying so plainly.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_http import JsonHandler, serve
from local_playbook import run_local_playbook

REPO = Path(__file__).resolve().parents[3]
API_KEY = "verify-cluster-key"
REAL_TITLE = "qdrant - vector search engine"
STANDIN_TITLE = "qdrant - vector search engine (stand-in for tests)"
PEER_IDS = {"qd-a": 101, "qd-b": 102, "qd-c": 103}


def cluster_answer(host: str, leader: int | None = 101, peers: int = 3) -> dict[str, Any]:
    ids = list(PEER_IDS.items())[:peers]
    return {
        "result": {
            "status": "enabled",
            "peer_id": PEER_IDS[host],
            "peers": {str(pid): {"uri": f"http://10.0.0.{pid - 80}:6335/"} for _, pid in ids},
            "raft_info": {
                "term": 3,
                "commit": 42,
                "pending_operations": 0,
                "leader": leader,
                "role": "Leader" if PEER_IDS[host] == leader else "Follower",
                "is_voter": True,
            },
            "consensus_thread_status": {"consensus_thread_status": "working"},
            "message_send_failures": {},
        },
        "status": "ok",
        "time": 0.0001,
    }


class Fake:
    """One peer's REST API: GET / and GET /cluster (which needs the API key)."""

    def __init__(self, title: str, cluster: dict[str, Any]) -> None:
        self.title = title
        self.cluster = cluster
        self.port = 0  # set once served
        fake = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                if self.path == "/":
                    self.send_json(200, {"title": fake.title, "version": "1.15.3"})
                elif self.path == "/cluster" and fake.title == REAL_TITLE:
                    if self.headers.get("api-key") != API_KEY:
                        self.send_json(401, {"status": {"error": "Must provide an API key"}})
                    else:
                        self.send_json(200, fake.cluster)
                else:
                    self.send_json(404, {"status": {"error": "not found"}})

        self.handler = Handler


@pytest.fixture
def fakes() -> Iterator[dict[str, Fake]]:
    made = {host: Fake(REAL_TITLE, cluster_answer(host)) for host in PEER_IDS}
    with contextlib.ExitStack() as stack:
        for fake in made.values():
            fake.port = stack.enter_context(serve(fake.handler)).port
        yield made


def run_verify(
    tmp_path: Path, fakes: dict[str, Fake], api_key: str = API_KEY
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "children": {
                "qdrant": {
                    "hosts": {
                        host: {"qdrant_host": "127.0.0.1", "qdrant_http_port": fake.port}
                        for host, fake in fakes.items()
                    },
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                        "qdrant_cluster_enabled": True,
                        "qdrant_api_key": api_key,
                    },
                }
            }
        }
    }
    return run_local_playbook(
        tmp_path, REPO / "playbooks" / "verify.yml", inventory, env={"no_proxy": "*"}
    )


def test_a_healthy_cluster_passes_and_names_the_leader(tmp_path: Path, fakes) -> None:
    result = run_verify(tmp_path, fakes)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Qdrant cluster on qd-a: enabled, 3 peers, leader 101, this peer (101) Leader" in (
        result.stdout
    )
    assert "this peer (102) Follower" in result.stdout
    assert "All 3 peers checked name leader 101." in result.stdout


def test_a_peer_that_sees_fewer_peers_fails(tmp_path: Path, fakes) -> None:
    fakes["qd-b"].cluster = cluster_answer("qd-b", peers=2)
    result = run_verify(tmp_path, fakes)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "2 peer(s)" in output
    assert "(expected 3, the hosts of group 'qdrant')" in output


def test_no_leader_fails(tmp_path: Path, fakes) -> None:
    for host, fake in fakes.items():
        fake.cluster = cluster_answer(host, leader=None)
    result = run_verify(tmp_path, fakes)
    assert result.returncode != 0
    assert "Raft leader none" in result.stdout + result.stderr


def test_a_wrong_api_key_fails_with_the_status(tmp_path: Path, fakes) -> None:
    result = run_verify(tmp_path, fakes, api_key="wrong")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "/cluster on qd-a answered 401" in output
    assert "wrong" not in output.replace("wrong input", "")  # the key is never printed


def test_the_stand_in_is_skipped_saying_so(tmp_path: Path, fakes) -> None:
    for fake in fakes.values():
        fake.title = STANDIN_TITLE
    result = run_verify(tmp_path, fakes)
    assert result.returncode == 0, result.stdout[-4000:]
    assert result.stdout.count("skipped: the test stand-in cannot form a cluster") == 3
    assert "Qdrant cluster on" not in result.stdout
