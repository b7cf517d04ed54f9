"""Qdrant's distributed mode in the team scenario, as far as the test stand-in can show it.

The stand-in runs one node each and ignores the cluster keys and flags (it says so in its log
and tests/qdrant-standin/README.md), so no Raft cluster forms here. What roles/qdrant set up
for one is checked on the two peers instead:

- the rendered configuration: `cluster.enabled`, the p2p port, consensus settings, and the
  server-wide collection defaults that make the collections Roo Code creates replicated;
  one API key on every peer;
- the running process's flags: qdrant-1 (the bootstrap peer) with `--uri` only, qdrant-2 with
  `--bootstrap` pointing at qdrant-1 and its own `--uri`; and the join order: qdrant-2 was first
  started only after qdrant-1 listened;
- the firewall: the p2p port admits the other peer only (from it the connection is refused,
  since the stand-in has no p2p listener; from anyone else it is dropped);
- HAProxy: both peers in the `qdrant` backend;
- playbooks/verify.yml's cluster play says plainly that it skipped the /cluster check.
"""

from __future__ import annotations

from typing import Any

import molecule_helpers
import pytest
import yaml
from teamhosts import Team, connect, group_vars, haproxy_section, host, nft_set, run_probe

P2P_PORT = 6335
CONFIG_FILE = "/etc/qdrant/config.yaml"


@pytest.fixture(scope="module")
def peers(team: Team) -> dict[str, dict[str, Any]]:
    out = {}
    for name in team.qdrant:
        state = run_probe(name, "qdrant_peer", {})
        state["config"] = yaml.safe_load(host(name).file(CONFIG_FILE).content_string)
        out[name] = state
    return out


def flag(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv else None


def test_every_peer_runs_the_cluster_configuration(peers):
    qvars = group_vars("qdrant")
    for name, state in peers.items():
        config = state["config"]
        assert config["cluster"]["enabled"] is True, name
        assert config["cluster"]["p2p"]["port"] == P2P_PORT, name
        assert config["cluster"]["consensus"]["tick_period_ms"] > 0, name
        # Roo Code creates its collections with no shard or replica settings: these apply.
        assert config["storage"]["collection"] == {
            "replication_factor": 2,
            "write_consistency_factor": 1,
        }, name
        assert state["keys"] == [
            f"QDRANT__SERVICE__API_KEY={qvars['qdrant_api_key']}",
            f"QDRANT__SERVICE__READ_ONLY_API_KEY={qvars['qdrant_read_only_api_key']}",
        ], name


def test_the_first_peer_bootstraps_and_the_second_joins_it(peers, team: Team, addresses):
    first, second = team.qdrant
    first_uri = f"http://{addresses[first]}:{P2P_PORT}"
    assert flag(peers[first]["argv"], "--uri") == first_uri
    assert flag(peers[first]["argv"], "--bootstrap") is None
    assert flag(peers[second]["argv"], "--uri") == f"http://{addresses[second]}:{P2P_PORT}"
    assert flag(peers[second]["argv"], "--bootstrap") == first_uri
    # The stand-in says that it ignores them (one node each).
    assert any("--bootstrap" in line for line in peers[second]["ignored"]), peers[second]["ignored"]


def test_the_second_peer_started_only_after_the_first_listened(peers, team: Team):
    first, second = team.qdrant
    assert peers[first]["listening"] is not None, "qdrant-1 never logged that it listened"
    assert peers[second]["started"] is not None, "no start of qdrant-2 in its journal"
    assert peers[second]["started"] > peers[first]["listening"]


def test_the_p2p_port_admits_only_the_other_peer(peers, team: Team, addresses):
    first, second = team.qdrant
    assert nft_set(peers[first]["nft"], "peers_v4") == [addresses[second]]
    assert nft_set(peers[second]["nft"], "peers_v4") == [addresses[first]]
    # From the other peer the firewall lets it through (nothing listens: refused); from the
    # proxy and the workstation it is dropped (timeout).
    assert connect(second, [(addresses[first], P2P_PORT)]) == ["refused"]
    assert connect(first, [(addresses[second], P2P_PORT)]) == ["refused"]
    for source in (team.proxy, team.workstation):
        targets = [(addresses[first], P2P_PORT), (addresses[second], P2P_PORT)]
        assert connect(source, targets) == ["timeout", "timeout"], source


def test_the_proxy_has_both_peers_in_its_qdrant_backend(team: Team):
    cfg = host(team.proxy).file("/etc/haproxy/haproxy.cfg").content_string
    backend = haproxy_section(cfg, "backend qdrant")
    lines = [line.split() for line in backend.splitlines()]
    servers = [words[1] for words in lines if words and words[0] == "server"]
    assert servers == list(team.qdrant)
    assert "balance first" in backend  # molecule.yml: the stand-ins do not share data


def test_verify_playbook_says_it_skipped_the_cluster_check(team: Team):
    result = molecule_helpers.ansible_playbook("verify.yml", "--limit", ",".join(team.qdrant))
    assert result.returncode == 0, molecule_helpers.output_tail(result)
    said = " ".join(result.stdout.split())  # the callback may wrap a long message
    skipped = said.count("skipped: the test stand-in cannot form a cluster")
    assert skipped == len(team.qdrant), said[-4000:]
