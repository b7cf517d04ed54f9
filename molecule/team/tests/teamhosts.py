"""The team scenario's hosts by inventory group, and one way to run a probe on them.

Each command on a test host is an Ansible round trip (a second or more here), so every probe is
a small python3 script (python3 is on the hosts; curl is not) that does its whole job on the
host and prints one JSON document.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def run_probe(name: str, script: str, args: dict[str, Any]) -> Any:
    """Run a python3 SCRIPT on host NAME with ARGS (JSON in argv[1]); return its JSON output."""
    result = host(name).run(shlex.join(["python3", "-c", script, json.dumps(args)]))
    assert result.rc == 0, f"probe on {name} failed (rc {result.rc}): {result.stderr}"
    return json.loads(result.stdout)


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


def connect(name: str, targets: list[tuple[str, int]]) -> list[str]:
    """From host NAME, try each (address, port): "open", "refused", "timeout" or the error."""
    return run_probe(name, _CONNECT, {"targets": targets})
