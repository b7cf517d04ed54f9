"""roles/qdrant in distributed mode, rendered for a three-peer inventory on this machine.

ansible-playbook runs the role's cluster preflight (tasks/preflight_cluster.yml, through
include_role so the role's defaults and vars apply as on a host) for three peers with a local
connection, then renders the role's config.yaml, systemd unit and nftables templates into a
temp directory per peer. The tests read what each peer would get: the config keys, the first
peer's --uri, the others' --bootstrap, the p2p rule, and the preflight failures, which must
name the variable to change. The single-host default renders no cluster part at all.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from local_playbook import run_local_playbook

REPO = Path(__file__).resolve().parents[3]
ROLE = REPO / "roles" / "qdrant"
API_KEY = "cluster-test-key"
INVENTORY: dict[str, Any] = {
    "all": {
        "children": {
            "qdrant": {
                "hosts": {
                    # addresses from ansible_host (no facts gathered here) ...
                    "qd-a": {"ansible_host": "10.0.0.21"},
                    "qd-b": {"ansible_host": "10.0.0.22"},
                    # ... or pinned per host
                    "qd-c": {
                        "ansible_host": "qd-c.example",
                        "qdrant_cluster_peer_address": "10.0.0.23",
                    },
                },
                "vars": {"ansible_connection": "local", "qdrant_api_key": API_KEY},
            }
        }
    }
}
PLAYBOOK = """
- name: roles/qdrant cluster preflight and templates, rendered here
  hosts: qdrant
  gather_facts: false
  tasks:
    - name: Cluster preflight, with the role's defaults and vars
      ansible.builtin.include_role:
        name: qdrant
        tasks_from: preflight_cluster.yml
        public: true
    - name: Output directory
      ansible.builtin.file:
        path: "{{ out_dir }}/{{ inventory_hostname }}"
        state: directory
        mode: "0755"
    - name: Render
      ansible.builtin.template:
        src: "{{ role_dir }}/templates/{{ item }}.j2"
        dest: "{{ out_dir }}/{{ inventory_hostname }}/{{ item }}"
        mode: "0644"
      loop: [config.yaml, qdrant.service, qdrant.nft]
    - name: Effective values
      ansible.builtin.copy:
        content: "{{ {'qdrant_host': qdrant_host, 'join_order': _qdrant_cluster_join_order,
                      'http_firewall': _qdrant_http_firewall | bool,
                      'cluster_firewall': _qdrant_cluster_firewall | bool} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}/values.json"
        mode: "0644"
"""


def run(
    workdir: Path,
    inventory: dict[str, Any] | None = None,
    **extra: object,
) -> subprocess.CompletedProcess[str]:
    out = workdir / "out"
    shutil.rmtree(out, ignore_errors=True)
    variables = {
        "ansible_python_interpreter": sys.executable,
        "role_dir": str(ROLE),
        "out_dir": str(out),
        "qdrant_cluster_enabled": True,
        # no facts here: fixed memory limits for the unit template
        "qdrant_memory_max_mb": 3000,
        "qdrant_memory_high_mb": 2400,
    } | extra
    return run_local_playbook(workdir, PLAYBOOK, inventory or INVENTORY, extra_vars=variables)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    return result


def failed(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout[-3000:]
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("qdrant_cluster")
    ok(run(workdir))
    return workdir / "out"


def config(rendered: Path, host: str) -> dict[str, Any]:
    return yaml.safe_load((rendered / host / "config.yaml").read_text())


def exec_start(rendered: Path, host: str) -> list[str]:
    unit = (rendered / host / "qdrant.service").read_text()
    lines = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
    assert len(lines) == 1, unit
    return lines[0].removeprefix("ExecStart=").split()


def values(rendered: Path, host: str) -> dict[str, Any]:
    return json.loads((rendered / host / "values.json").read_text())


def test_config_has_the_cluster_keys_and_collection_defaults(rendered: Path) -> None:
    for host in ("qd-a", "qd-b", "qd-c"):
        cfg = config(rendered, host)
        assert cfg["cluster"] == {
            "enabled": True,
            "p2p": {"port": 6335},
            "consensus": {"tick_period_ms": 100, "compact_wal_entries": 128},
        }
        assert cfg["storage"]["collection"] == {
            "replication_factor": 2,
            "write_consistency_factor": 1,
        }
        assert "api_key" not in cfg["service"]  # the key stays in the EnvironmentFile


def test_each_peer_listens_on_its_peer_address(rendered: Path) -> None:
    expected = {"qd-a": "10.0.0.21", "qd-b": "10.0.0.22", "qd-c": "10.0.0.23"}
    for host, address in expected.items():
        assert config(rendered, host)["service"]["host"] == address
        assert values(rendered, host)["qdrant_host"] == address


def test_first_peer_starts_with_its_uri_only(rendered: Path) -> None:
    assert exec_start(rendered, "qd-a") == [
        "/usr/local/bin/qdrant",
        "--config-path",
        "/etc/qdrant/config.yaml",
        "--uri",
        "http://10.0.0.21:6335",
    ]


def test_other_peers_bootstrap_from_the_first_with_their_own_uri(rendered: Path) -> None:
    for host, address in (("qd-b", "10.0.0.22"), ("qd-c", "10.0.0.23")):
        args = exec_start(rendered, host)
        assert args[3:] == [
            "--bootstrap",
            "http://10.0.0.21:6335",
            "--uri",
            f"http://{address}:6335",
        ], args


def test_peers_join_in_group_order_after_the_bootstrap_peer(rendered: Path) -> None:
    assert values(rendered, "qd-b")["join_order"] == ["qd-a", "qd-b", "qd-c"]


def nft_rules(rendered: Path, host: str) -> str:
    return (rendered / host / "qdrant.nft").read_text()


def test_p2p_port_accepts_only_the_other_peers(rendered: Path) -> None:
    text = nft_rules(rendered, "qd-b")
    peers = re.search(r"set peers_v4 \{[^}]*elements = \{ ([^}]*) \}", text)
    assert peers, text
    assert peers.group(1).split(", ") == ["10.0.0.21", "10.0.0.23"]
    rules = [line.strip() for line in text.splitlines() if "6335" in line and "dport" in line]
    assert rules == ["tcp dport 6335 ip saddr @peers_v4 accept", "tcp dport 6335 counter drop"]
    # the HTTP port is not touched by the cluster rule (no proxy, qdrant_firewall_enabled false)
    assert "6333" not in text.split("chain input", 1)[1]
    assert values(rendered, "qd-b") | {"join_order": None} == {
        "qdrant_host": "10.0.0.22",
        "join_order": None,
        "http_firewall": False,
        "cluster_firewall": True,
    }


def test_nft_accepts_the_rendered_table(rendered: Path) -> None:
    nft = shutil.which("nft") or ("/usr/sbin/nft" if Path("/usr/sbin/nft").exists() else None)
    if nft is None:
        pytest.skip("nft is not installed here")
    result = subprocess.run(
        [nft, "--check", "--file", str(rendered / "qd-b" / "qdrant.nft")],
        capture_output=True,
        text=True,
        check=False,
    )
    if "Operation not permitted" in result.stderr:
        pytest.skip("nft --check needs CAP_NET_ADMIN here")
    assert result.returncode == 0, result.stderr


def test_http_firewall_and_p2p_rule_together(tmp_path: Path) -> None:
    ok(run(tmp_path, qdrant_firewall_enabled=True, qdrant_firewall_allowed_sources=["10.0.9.0/24"]))
    text = nft_rules(tmp_path / "out", "qd-a")
    chain = [line.strip() for line in text.split("chain input", 1)[1].splitlines()]
    assert chain[3:8] == [
        "tcp dport { 6333 } ip saddr @allowed_v4 accept",
        "tcp dport { 6333 } counter drop",
        "tcp dport 6335 ip saddr @peers_v4 accept",
        "tcp dport 6335 counter drop",
        "}",
    ], chain


def test_single_host_default_has_no_cluster_part(tmp_path: Path) -> None:
    inventory = copy.deepcopy(INVENTORY)
    inventory["all"]["children"]["qdrant"]["hosts"] = {"qd-a": {"ansible_host": "10.0.0.21"}}
    ok(run(tmp_path, inventory, qdrant_cluster_enabled=False))
    out = tmp_path / "out" / "qd-a"
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert "cluster" not in cfg
    assert "collection" not in cfg["storage"]
    assert cfg["service"]["host"] == "127.0.0.1"
    assert exec_start(tmp_path / "out", "qd-a") == [
        "/usr/local/bin/qdrant",
        "--config-path",
        "/etc/qdrant/config.yaml",
    ]
    assert "6335" not in (out / "qdrant.nft").read_text()


@pytest.mark.parametrize(
    ("extra", "inventory_change", "variable", "message"),
    [
        pytest.param(
            {"qdrant_api_key": ""}, None, "qdrant_api_key", "qdrant_api_key is empty", id="no-key"
        ),
        pytest.param(
            {"qdrant_cluster_replication_factor": 4},
            None,
            "qdrant_cluster_replication_factor",
            "has\n3 peer(s)",
            id="replication-factor-above-peers",
        ),
        pytest.param(
            {"qdrant_cluster_write_consistency_factor": 3},
            None,
            "qdrant_cluster_write_consistency_factor",
            "qdrant_cluster_replication_factor (2)",
            id="write-consistency-above-replication",
        ),
        pytest.param(
            {"qdrant_cluster_p2p_port": 6333},
            None,
            "qdrant_cluster_p2p_port",
            "other than",
            id="p2p-port-is-http-port",
        ),
        pytest.param(
            {"qdrant_cluster_bootstrap_host": "qd-z"},
            None,
            "qdrant_cluster_bootstrap_host",
            "not a host of group",
            id="bootstrap-not-a-peer",
        ),
        pytest.param(
            {"qdrant_host": "127.0.0.1"},
            None,
            "qdrant_host",
            "qdrant_cluster_peer_address",
            id="bound-to-loopback",
        ),
        pytest.param(
            {},
            ("qd-c", {"qdrant_cluster_peer_address": "10.0.0.22"}),
            "qdrant_cluster_peer_address",
            "its own",
            id="two-peers-one-address",
        ),
        pytest.param(
            {},
            ("qd-c", {"qdrant_cluster_peer_address": "qd-c.example"}),
            "qdrant_cluster_peer_address",
            "takes no names",
            id="peer-name-with-firewall",
        ),
        pytest.param(
            {},
            ("qd-b", {"qdrant_api_key": "another-key"}),
            "qdrant_api_key",
            "differs on: qd-b",
            id="keys-differ",
        ),
        pytest.param(
            {"qdrant_cluster_group": "vectors"},
            None,
            "qdrant_cluster_group",
            "is not in the inventory group",
            id="host-outside-the-group",
        ),
    ],
)
def test_preflight_failures_name_the_variable(
    tmp_path: Path,
    extra: dict[str, object],
    inventory_change: tuple[str, dict[str, str]] | None,
    variable: str,
    message: str,
) -> None:
    inventory = copy.deepcopy(INVENTORY)
    if inventory_change is not None:
        host, change = inventory_change
        inventory["all"]["children"]["qdrant"]["hosts"][host].update(change)
    output = failed(run(tmp_path, inventory, **extra))
    failures = [line for line in output.splitlines() if "FAILED!" in line or '"msg"' in line]
    assert failures, output[-3000:]
    text = "\n".join(failures)
    assert variable in text, text
    assert message.replace("\n", " ") in text.replace("\\n", " "), text


def test_single_peer_cluster_is_allowed_with_a_warning(tmp_path: Path) -> None:
    inventory = copy.deepcopy(INVENTORY)
    inventory["all"]["children"]["qdrant"]["hosts"] = {"qd-a": {"ansible_host": "10.0.0.21"}}
    result = ok(run(tmp_path, inventory, qdrant_cluster_replication_factor=1))
    assert (
        "WARNING: qdrant_cluster_enabled is true but group 'qdrant' has one host" in result.stdout
    )
    assert exec_start(tmp_path / "out", "qd-a")[3:] == ["--uri", "http://10.0.0.21:6335"]
    assert "set peers_v4" not in nft_rules(tmp_path / "out", "qd-a")
