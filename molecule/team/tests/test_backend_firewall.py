"""Behind the proxy, the backends accept connections only from it.

With a `proxy` group, roles/jina_embeddings and roles/qdrant bind the host's own address (its
default IPv4, the one roles/stack_proxy connects to) instead of loopback, and load an nftables
table that admits their port from the proxy's address (and loopback) and drops it from anyone
else. Checked on the hosts: the listening socket, the loaded table and its set; and on the
wire: the proxy connects, another host on the same network times out (dropped, not refused,
so it is the firewall and not a missing listener), and the drop rule's counter says so.
"""

from __future__ import annotations

import pytest
from teamhosts import Team, connect, nft_set, run_probe

EMBEDDINGS_PORT = 4000
QDRANT_PORT = 6333


def listening(name: str, port: int, table: str) -> dict:
    return run_probe(name, "listening", {"port": port, "table": table})


def drop_counter(nft: dict, port: int) -> int:
    """Packets counted by the rule that drops PORT (a Qdrant peer has a second drop rule, for
    its cluster p2p port)."""
    (rule,) = [
        item["rule"]
        for item in nft["nftables"]
        if "rule" in item
        and any("drop" in expr for expr in item["rule"]["expr"])
        and port in dports(item["rule"])
    ]
    (counter,) = [expr["counter"] for expr in rule["expr"] if "counter" in expr]
    return counter["packets"]


def dports(rule: dict) -> list[int]:
    """The TCP destination ports a rule matches (one port or a set of them)."""
    out: list[int] = []
    for expr in rule["expr"]:
        match = expr.get("match", {})
        if match.get("left", {}).get("payload", {}).get("field") == "dport":
            right = match["right"]
            out += right["set"] if isinstance(right, dict) and "set" in right else [right]
    return out


def drops(backends: list[tuple[str, int, str]]) -> dict[str, int]:
    return {
        name: drop_counter(listening(name, port, table)["nft"], port)
        for name, port, table in backends
    }


@pytest.fixture(scope="module")
def backends(team: Team) -> list[tuple[str, int, str]]:
    """(host, port, nftables table) of every proxied backend."""
    return [(name, EMBEDDINGS_PORT, "jina_embeddings") for name in team.embeddings] + [
        (name, QDRANT_PORT, "qdrant") for name in team.qdrant
    ]


def test_backends_listen_on_their_own_address_only(backends, addresses):
    for name, port, table in backends:
        state = listening(name, port, table)
        local = sorted({line for line in state["ss"] if line.endswith(f":{port}")})
        assert local == [f"{addresses[name]}:{port}"], (name, state["ss"])


def test_each_backend_table_admits_only_the_proxy(backends, addresses, team: Team):
    for name, port, table in backends:
        state = listening(name, port, table)
        assert state["nft_rc"] == 0, (name, state["nft_err"])
        assert nft_set(state["nft"], "allowed_v4") == [addresses[team.proxy]], name


def test_the_proxy_reaches_every_backend(backends, addresses, team: Team):
    targets = [(addresses[name], port) for name, port, _ in backends]
    assert connect(team.proxy, targets) == ["open"] * len(targets)


def test_other_hosts_are_dropped(backends, addresses, team: Team):
    first, second = team.embeddings
    qdrant_1, qdrant_2 = team.qdrant
    before = drops(backends)
    # From a Qdrant peer, the workstation and the other embedding host: nothing gets through,
    # and a Qdrant peer does not reach the other's HTTP port either (only its p2p port).
    embed_1, embed_2 = (addresses[first], EMBEDDINGS_PORT), (addresses[second], EMBEDDINGS_PORT)
    qdrant_http_1 = (addresses[qdrant_1], QDRANT_PORT)
    qdrant_http_2 = (addresses[qdrant_2], QDRANT_PORT)
    cases = [
        (qdrant_1, [embed_1, embed_2, qdrant_http_2]),
        (qdrant_2, [qdrant_http_1]),
        (team.workstation, [embed_1, qdrant_http_2]),
        (second, [embed_1, qdrant_http_1]),
    ]
    for source, targets in cases:
        assert connect(source, targets) == ["timeout"] * len(targets), source
    after = drops(backends)
    for name in after:
        assert after[name] > before[name], f"the drop rule on {name} counted nothing"
