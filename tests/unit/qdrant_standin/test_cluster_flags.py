"""The stand-in starts as roles/qdrant starts a cluster peer, and ignores the cluster parts.

roles/qdrant with qdrant_cluster_enabled renders cluster keys and server-wide collection
defaults into config.yaml and adds --uri / --bootstrap to ExecStart. The stand-in must start
with all of it, serve as one node, and say in its log that it ignored the flags.
"""

from __future__ import annotations

import httpx

from .conftest import StandinFactory, base_config

CLUSTER_CONFIG = base_config() | {
    "cluster": {
        "enabled": True,
        "p2p": {"port": 6335},
        "consensus": {"tick_period_ms": 100, "compact_wal_entries": 128},
    },
}
CLUSTER_CONFIG["storage"] = CLUSTER_CONFIG["storage"] | {
    "collection": {"replication_factor": 2, "write_consistency_factor": 1}
}


def test_first_peer_flags_and_cluster_keys_are_ignored(standin_factory: StandinFactory) -> None:
    server = standin_factory(start=False, config=CLUSTER_CONFIG)
    server.extra_args = ["--uri", "http://10.0.0.21:6335"]
    server.start()
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200
    root = httpx.get(f"{server.url}/", timeout=5).json()
    assert "stand-in" in root["title"]
    log = server.log()
    assert "--uri http://10.0.0.21:6335 ignored: the stand-in cannot form a cluster" in log
    assert "cluster.enabled is true, but the stand-in runs a single node" in log
    assert "unknown key `storage.collection`" not in log


def test_joining_peer_flags_are_ignored_and_it_serves(standin_factory: StandinFactory) -> None:
    server = standin_factory(start=False, config=CLUSTER_CONFIG)
    server.extra_args = ["--bootstrap", "http://10.0.0.21:6335", "--uri", "http://10.0.0.22:6335"]
    server.start()
    with server.http() as http:
        created = http.put("/collections/c", json={"vectors": {"size": 2, "distance": "Cosine"}})
        assert created.status_code == 200, created.text
        # no cluster API: verify.yml recognises the stand-in by GET / instead
        assert http.get("/cluster").status_code == 404
    log = server.log()
    assert "--bootstrap http://10.0.0.21:6335 ignored" in log
    assert "--uri http://10.0.0.22:6335 ignored" in log
