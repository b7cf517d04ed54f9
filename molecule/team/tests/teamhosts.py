"""The team scenario's hosts by inventory group, and one way to run a probe on them.

Each command on a test host is an Ansible round trip (a second or more here), so every probe is
a small python3 script in molecule/resources/tests/probes/ (python3 is on the hosts; curl is
not) that does its whole job on the host and prints one JSON document.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import molecule_helpers
import testinfra
import yaml
from testinfra.utils.ansible_runner import AnsibleRunner

# What roles/workstation leaves on the workstation (root's home there) and what it serves.
CA_FILE = "/root/.jina-stack/proxy-ca.crt"
MODEL_ID = "all-MiniLM-L6-v2"
MODEL_DIMENSION = 384


def inventory_file() -> str:
    return os.environ["MOLECULE_INVENTORY_FILE"]


def group_vars(group: str) -> dict[str, Any]:
    """The variables molecule.yml gives a group, as molecule rendered them."""
    path = Path(inventory_file()).parent / "group_vars" / group
    return yaml.safe_load(path.read_text()) or {}


@dataclass(frozen=True)
class Team:
    """Inventory names: one proxy, the embedding hosts, the Qdrant peers (sorted: the
    first, qdrant-1, is the cluster's bootstrap peer), the workstation."""

    proxy: str
    embeddings: tuple[str, ...]
    qdrant: tuple[str, ...]
    workstation: str

    @property
    def hosts(self) -> tuple[str, ...]:
        return (self.proxy, *self.embeddings, *self.qdrant, self.workstation)

    @classmethod
    def from_inventory(cls) -> Team:
        runner = AnsibleRunner(inventory_file())

        def group(name: str) -> list[str]:
            return sorted(runner.get_hosts(name))

        (proxy,) = group("proxy")
        (workstation,) = group("workstations")
        return cls(proxy, tuple(group("embeddings")), tuple(group("qdrant")), workstation)


def host(name: str) -> Any:
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory_file())


def run_probe(name: str, probe: str, args: dict[str, Any]) -> Any:
    """Run molecule/resources/tests/probes/PROBE.py on host NAME with ARGS (JSON in argv[1])."""
    return molecule_helpers.run_probe(host(name), probe, json.dumps(args))


def connect(name: str, targets: list[tuple[str, int]]) -> list[str]:
    """From host NAME, try each (address, port): "open", "refused", "timeout" or the error."""
    return run_probe(name, "tcp_connect", {"targets": targets})


def nft_set(nft: dict, name: str) -> list[str]:
    """The sorted elements of set NAME in an `nft -j list table` document."""
    (found,) = [i["set"] for i in nft["nftables"] if "set" in i and i["set"]["name"] == name]
    return sorted(found.get("elem", []))


def haproxy_section(cfg: str, header: str) -> str:
    """The body of section HEADER (e.g. "backend qdrant") of a haproxy.cfg: its lines up to
    the next section."""
    lines = cfg.splitlines()
    assert header in lines, f"no section {header!r} in haproxy.cfg:\n{cfg}"
    body = []
    for line in lines[lines.index(header) + 1 :]:
        if line and not line[0].isspace() and not line.startswith("#"):
            break
        body.append(line)
    return "\n".join(body)
