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
from teamhosts import Team, run_probe

EMBEDDINGS_PORT = 4000
QDRANT_PORT = 6333

# On a backend: the addresses its port listens on, and its nftables table as JSON.
_LISTENING = r"""
import json, subprocess, sys
args = json.loads(sys.argv[1])
ss = subprocess.run(["ss", "-Hltn", "sport = :%d" % args["port"]], capture_output=True, text=True,
                    check=True).stdout.split()
nft = subprocess.run(["nft", "-j", "list", "table", "inet", args["table"]], capture_output=True,
                     text=True)
print(json.dumps({"ss": ss, "nft_rc": nft.returncode, "nft": json.loads(nft.stdout or "null"),
                  "nft_err": nft.stderr}))
"""

# On any host: try a TCP connection to each (address, port); open, refused or timeout.
_CONNECT = r"""
import json, socket, sys
out = []
for address, port in json.loads(sys.argv[1])["targets"]:
    try:
        socket.create_connection((address, port), timeout=3).close()
        out.append("open")
    except ConnectionRefusedError:
        out.append("refused")
    except TimeoutError:
        out.append("timeout")
    except OSError as e:
        out.append(repr(e))
print(json.dumps(out))
"""


def listening(name: str, port: int, table: str) -> dict:
    return run_probe(name, _LISTENING, {"port": port, "table": table})


def connect(name: str, targets: list[tuple[str, int]]) -> list[str]:
    return run_probe(name, _CONNECT, {"targets": targets})


def allowed_set(nft: dict) -> list[str]:
    sets = [item["set"] for item in nft["nftables"] if "set" in item]
    (found,) = [s for s in sets if s["name"] == "allowed_v4"]
    return sorted(found.get("elem", []))


def drop_counter(nft: dict) -> int:
    (rule,) = [
        item["rule"]
        for item in nft["nftables"]
        if "rule" in item and any("drop" in expr for expr in item["rule"]["expr"])
    ]
    (counter,) = [expr["counter"] for expr in rule["expr"] if "counter" in expr]
    return counter["packets"]


def drops(backends: list[tuple[str, int, str]]) -> dict[str, int]:
    return {
        name: drop_counter(listening(name, port, table)["nft"]) for name, port, table in backends
    }


@pytest.fixture(scope="module")
def backends(team: Team) -> list[tuple[str, int, str]]:
    """(host, port, nftables table) of every proxied backend."""
    return [(name, EMBEDDINGS_PORT, "jina_embeddings") for name in team.embeddings] + [
        (team.qdrant, QDRANT_PORT, "qdrant")
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
        assert allowed_set(state["nft"]) == [addresses[team.proxy]], name


def test_the_proxy_reaches_every_backend(backends, addresses, team: Team):
    targets = [(addresses[name], port) for name, port, _ in backends]
    assert connect(team.proxy, targets) == ["open"] * len(targets)


def test_other_hosts_are_dropped(backends, addresses, team: Team):
    first, second = team.embeddings
    before = drops(backends)
    # From the Qdrant host, the workstation and the other embedding host: nothing gets through.
    embed_1, embed_2 = (addresses[first], EMBEDDINGS_PORT), (addresses[second], EMBEDDINGS_PORT)
    qdrant = (addresses[team.qdrant], QDRANT_PORT)
    cases = [
        (team.qdrant, [embed_1, embed_2]),
        (team.workstation, [embed_1, qdrant]),
        (second, [embed_1, qdrant]),
    ]
    for source, targets in cases:
        assert connect(source, targets) == ["timeout"] * len(targets), source
    after = drops(backends)
    for name in after:
        assert after[name] > before[name], f"the drop rule on {name} counted nothing"
