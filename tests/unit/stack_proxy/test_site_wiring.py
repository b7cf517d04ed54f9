"""playbooks/site.yml with a proxy group: it parses, and the backends' opt-in follows the group.

`ansible-playbook --syntax-check` of site.yml against the example inventory and against a team
inventory (proxy + two embeddings hosts); the backends' nftables templates rendered for the
proxy's address pass `nft --check` where nft is available.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
ENV = os.environ | {"ANSIBLE_ROLES_PATH": str(REPO / "roles"), "ANSIBLE_NOCOLOR": "1"}
TEAM = {
    "all": {
        "children": {
            "proxy": {"hosts": {"code-search.example": {}}},
            "embeddings": {"hosts": {"emb-a": {}, "emb-b": {}}},
            "qdrant": {"hosts": {"qd-a": {}}},
            "workstations": {"hosts": {"localhost": {}}},
        }
    }
}


def syntax_check(inventory: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", str(inventory),
         str(REPO / "playbooks/site.yml")],
        capture_output=True, text=True, check=False, env=ENV,
    )  # fmt: skip


def test_site_syntax_with_the_example_inventory():
    result = syntax_check(REPO / "inventory/example")
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_syntax_with_a_team_inventory(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump(TEAM))
    result = syntax_check(inventory)
    assert result.returncode == 0, result.stdout + result.stderr


def test_site_has_a_proxy_play_after_the_backends():
    entries = yaml.safe_load((REPO / "playbooks/site.yml").read_text())
    plays = [entry for entry in entries if "hosts" in entry]  # not the import_playbook lines
    hosts = [p["hosts"] for p in plays]
    assert hosts[0] == "proxy"  # facts first: the backends read the proxies' addresses
    roles = {i: [r["role"] for r in p.get("roles", [])] for i, p in enumerate(plays)}
    proxy_play = plays[next(i for i, names in roles.items() if "stack_proxy" in names)]
    assert proxy_play["hosts"] == "proxy"
    assert hosts.index("proxy", 1) > hosts.index("embeddings")


PLAYBOOK = """
- name: The backends' opt-in, rendered on this machine
  hosts: emb-a
  connection: local
  gather_facts: false
  tasks:
    - name: Roles' defaults
      ansible.builtin.include_vars: "{{ item }}"
      loop: "{{ files }}"
    - name: Render
      ansible.builtin.template:
        src: "{{ item.src }}"
        dest: "{{ item.dest }}"
        mode: "0644"
      loop: "{{ templates }}"
    - name: Effective values
      ansible.builtin.copy:
        content: "{{ {'jina_host': jina_embeddings_host,
                      'jina_fw': jina_embeddings_firewall_enabled | bool,
                      'trusted': jina_embeddings_trusted_proxies, 'qdrant_host': qdrant_host,
                      'qdrant_fw': qdrant_firewall_enabled | bool} | to_json }}"
        dest: "{{ out }}/values.json"
        mode: "0644"
"""


def render(tmp_path: Path, inventory: dict) -> tuple[dict, Path]:
    import json

    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    roles = REPO / "roles"
    extra = {
        "ansible_python_interpreter": sys.executable,
        "out": str(tmp_path),
        # facts cannot come from an inventory: the bind address stands in for the default IPv4
        "jina_embeddings_proxy_bind_host": "10.0.0.11",
        "qdrant_proxy_bind_host": "10.0.0.11",
        "files": [
            str(roles / r / d / "main.yml")
            for r in ("jina_embeddings", "qdrant")
            for d in ("defaults", "vars")
        ],
        "templates": [
            {"src": str(roles / src), "dest": str(tmp_path / dest)}
            for src, dest in (
                ("jina_embeddings/templates/jina-embeddings.nft.j2", "jina.nft"),
                ("qdrant/templates/qdrant.nft.j2", "qdrant.nft"),
            )
        ],
    }  # fmt: skip
    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
         str(tmp_path / "play.yml"), "-e", json.dumps(extra)],
        capture_output=True, text=True, check=False, env=ENV,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return json.loads((tmp_path / "values.json").read_text()), tmp_path


def test_without_a_proxy_group_nothing_changes(tmp_path):
    inventory = {"all": {"children": {"embeddings": {"hosts": {"emb-a": {}}}}}}
    values, _ = render(tmp_path, inventory)
    assert values == {
        "jina_host": "127.0.0.1", "jina_fw": False, "trusted": [],
        "qdrant_host": "127.0.0.1", "qdrant_fw": False,
    }  # fmt: skip


def test_behind_a_proxy_the_backends_bind_their_address_and_admit_only_it(tmp_path):
    inventory = {
        "all": {
            "children": {
                "proxy": {"hosts": {"px": {"stack_proxy_source_address": "10.0.0.5"}}},
                "embeddings": {"hosts": {"emb-a": {}}},
            }
        }
    }  # fmt: skip
    values, out = render(tmp_path, inventory)
    assert values == {
        "jina_host": "10.0.0.11", "jina_fw": True, "trusted": ["10.0.0.5"],
        "qdrant_host": "10.0.0.11", "qdrant_fw": True,
    }  # fmt: skip
    for name in ("jina.nft", "qdrant.nft"):
        text = (out / name).read_text()
        assert "elements = { 10.0.0.5 }" in text
        assert "counter drop" in text
        if os.path.exists("/usr/sbin/nft") and os.geteuid() == 0:
            check = subprocess.run(
                ["/usr/sbin/nft", "--check", "--file", str(out / name)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            if "Operation not permitted" not in check.stderr:
                assert check.returncode == 0, check.stderr
    if not os.path.exists("/usr/sbin/nft"):
        pytest.skip("nft is not installed: rendered, not checked")
