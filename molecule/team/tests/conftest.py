"""Fixtures of the team scenario (molecule/team): its hosts and the facts the tests share."""

from __future__ import annotations

import re
from typing import Any

import pytest
from teamhosts import Team, group_vars, haproxy_section, host, run_probe


@pytest.fixture(scope="session")
def team() -> Team:
    return Team.from_inventory()


@pytest.fixture(scope="session")
def addresses(team: Team) -> dict[str, str]:
    """Each host's one address on the scenario's podman network."""
    out: dict[str, str] = {}
    for name in team.hosts:
        addrs = run_probe(name, "team_addresses", {})
        assert len(addrs) == 1, f"{name} should have one address on the team network: {addrs}"
        out[name] = addrs[0]
    return out


@pytest.fixture(scope="session")
def embeddings_key() -> str:
    return group_vars("embeddings")["jina_embeddings_api_keys"][0]


@pytest.fixture(scope="session")
def qdrant_keys() -> dict[str, Any]:
    qvars = group_vars("qdrant")
    return {"rw": qvars["qdrant_api_key"], "ro": qvars["qdrant_read_only_api_key"]}


@pytest.fixture(scope="session")
def check_timing(team: Team) -> dict[str, int]:
    """HAProxy's health-check interval (s) and counts for the embeddings backend, as the
    rendered haproxy.cfg on the proxy says (the scenario sets inter 2 s, fall and rise stay the
    role's defaults)."""
    cfg = host(team.proxy).file("/etc/haproxy/haproxy.cfg").content_string
    backend = haproxy_section(cfg, "backend embeddings")
    found = re.search(r"default-server check inter (\d+)s fall (\d+) rise (\d+)", backend)
    assert found, f"no default-server check line in the embeddings backend:\n{backend}"
    inter, fall, rise = (int(g) for g in found.groups())
    assert inter == int(group_vars("proxy")["stack_proxy_check_inter_s"])
    return {"inter": inter, "fall": fall, "rise": rise}
