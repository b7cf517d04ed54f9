"""roles/stack_proxy against a two-host inventory, on this machine, without molecule.

The role's own certificate and configure task files run with a local connection into a temp
directory: a private CA and a server certificate are made with community.crypto (the server
certificate must chain to the CA under `openssl verify`, carry the server name and the host's
addresses, and a second run must change nothing), then haproxy.cfg is rendered from the role's
template for two embeddings hosts and one Qdrant host and checked by Debian 12's real
`haproxy -c` (tests/unit/stack_proxy/haproxy_binary.py; the daemon is never installed or run).
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from local_playbook import run_local_playbook
from molecule_helpers import recap_changed

from .haproxy_binary import Haproxy, obtain

REPO = Path(__file__).resolve().parents[3]
SERVER_NAME = "code-search.example"
INVENTORY = {
    "all": {
        "children": {
            "proxy": {"hosts": {"localhost": {"ansible_connection": "local"}}},
            "embeddings": {
                "hosts": {
                    # a GPU host: two workers, 300 queued requests each -> maxconn 600
                    "emb-a": {
                        "jina_embeddings_proxy_bind_host": "10.0.0.11",
                        "jina_embeddings_workers": 2,
                        "jina_embeddings_max_queued_requests": 300,
                    },
                    # role defaults, address from ansible_host -> maxconn 1024
                    "emb-b": {"ansible_host": "10.0.0.12", "jina_embeddings_port": 4001},
                }
            },
            "qdrant": {"hosts": {"qd-a": {"qdrant_proxy_bind_host": "10.0.0.21"}}},
        }
    }
}
PLAYBOOK = """
- name: stack_proxy certificate and configure stages against a temp directory
  hosts: proxy
  gather_facts: true
  gather_subset: ["!all", "!min", network]
  tasks:
    - name: Certificates
      ansible.builtin.include_role:
        name: stack_proxy
        tasks_from: certificates.yml
    - name: Configure
      ansible.builtin.include_role:
        name: stack_proxy
        tasks_from: configure.yml
"""


@pytest.fixture(scope="session")
def haproxy() -> Haproxy:
    found, why = obtain()
    if found is None:
        pytest.skip(f"Debian's haproxy binary is not obtainable here: {why}")
    return found


def run(workdir: Path, haproxy: Haproxy, **overrides: object) -> subprocess.CompletedProcess:
    extra = {
        "ansible_python_interpreter": sys.executable,
        "stack_proxy_server_name": SERVER_NAME,
        "stack_proxy_tls_dir": str(workdir / "tls"),
        "stack_proxy_ca_export_dir": str(workdir / "export"),
        "stack_proxy_stats_address": "127.0.0.1",
        "stack_proxy_stats_allowed_sources": ["127.0.0.1", "10.0.0.0/24"],
        # no haproxy daemon here: the handlers must not touch systemd
        "stack_proxy_service_enabled": False,
        "stack_proxy_user": "nobody",
        "stack_proxy_group": "root",
        "_stack_proxy_config_file": str(workdir / "haproxy.cfg"),
    } | overrides
    return run_local_playbook(
        workdir,
        PLAYBOOK,
        INVENTORY,
        extra_vars=extra,
        env=haproxy.env() | {"ANSIBLE_FORCE_HANDLERS": "0"},
    )


def changed(result: subprocess.CompletedProcess) -> int:
    return recap_changed(result, role="stack_proxy")


@pytest.fixture(scope="module")
def converged(tmp_path_factory, haproxy: Haproxy) -> dict:
    workdir = tmp_path_factory.mktemp("stack_proxy")
    first = run(workdir, haproxy)
    assert changed(first) > 0
    second = run(workdir, haproxy)
    return {"dir": workdir, "second": second, "haproxy": haproxy}


def openssl(*args: str) -> str:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_second_run_changes_nothing(converged):
    assert changed(converged["second"]) == 0


def test_server_certificate_chains_to_the_generated_ca(converged):
    tls = converged["dir"] / "tls"
    out = openssl("verify", "-CAfile", str(tls / "ca.crt"), str(tls / "server.crt"))
    assert out.strip().endswith(": OK")


def test_server_certificate_names_the_server_and_the_hosts_addresses(converged):
    tls = converged["dir"] / "tls"
    text = openssl("x509", "-in", str(tls / "server.crt"), "-noout", "-text")
    assert f"DNS:{SERVER_NAME}" in text
    # every global address of the host (facts: all_ipv4_addresses), loopback not among them
    assert re.search(r"IP Address:\d+\.\d+\.\d+\.\d+", text)
    assert "IP Address:127.0.0.1" not in text
    assert "TLS Web Server Authentication" in text
    assert "CA:FALSE" in text
    ca = openssl("x509", "-in", str(tls / "ca.crt"), "-noout", "-text")
    assert "CA:TRUE, pathlen:0" in ca


def test_keys_are_root_only(converged):
    tls = converged["dir"] / "tls"
    for name in ("ca.key", "server.key", "server.pem"):
        mode = stat.S_IMODE((tls / name).stat().st_mode)
        assert mode == 0o600, f"{name}: {oct(mode)}"
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700


def test_server_pem_is_the_certificate_then_its_key(converged):
    tls = converged["dir"] / "tls"
    pem = (tls / "server.pem").read_text()
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert pem.index("END CERTIFICATE") < pem.index("PRIVATE KEY-----")
    assert (tls / "server.crt").read_text() in pem


def test_only_the_ca_certificate_reaches_the_controller(converged):
    exported = sorted(p.name for p in (converged["dir"] / "export").rglob("*") if p.is_file())
    assert exported == ["ca.crt"]
    export = converged["dir"] / "export" / "localhost" / "ca.crt"
    assert export.read_text() == (converged["dir"] / "tls" / "ca.crt").read_text()


def test_rendered_config_passes_haproxy_check(converged):
    result = converged["haproxy"].check(converged["dir"] / "haproxy.cfg")
    assert result.returncode == 0, result.stdout + result.stderr


def sections(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            current = line.strip()
            out[current] = []
        else:
            out[current].append(line.strip())
    return out


@pytest.fixture(scope="module")
def config(converged) -> dict[str, list[str]]:
    return sections((converged["dir"] / "haproxy.cfg").read_text())


def test_backends_are_the_group_hosts_with_leastconn_and_queue_sized_maxconn(config):
    emb = config["backend embeddings"]
    assert "balance leastconn" in emb
    servers = [line for line in emb if line.startswith("server ")]
    assert servers == [
        "server emb-a 10.0.0.11:4000 maxconn 600",
        "server emb-b 10.0.0.12:4001 maxconn 1024",
    ]
    qdrant = config["backend qdrant"]
    assert "balance leastconn" in qdrant
    assert [line for line in qdrant if line.startswith("server ")] == [
        "server qd-a 10.0.0.21:6333 maxconn 256"
    ]


def test_health_checks_hit_ready_and_readyz(config):
    assert any(
        line.startswith("http-check send meth GET uri /ready ver HTTP/1.1")
        for line in config["backend embeddings"]
    )
    assert any(
        line.startswith("http-check send meth GET uri /readyz ver HTTP/1.1")
        for line in config["backend qdrant"]
    )
    for backend in ("backend embeddings", "backend qdrant"):
        assert "http-check expect status 200" in config[backend]
        assert any(
            line.startswith("default-server check inter 5s fall 3 rise 2")
            for line in config[backend]
        )


def test_timeouts_outlast_roo_codes_300_seconds(config):
    defaults = config["defaults"]
    timeouts = {
        line.split()[1]: line.split()[2] for line in defaults if line.startswith("timeout ")
    }
    assert timeouts["connect"] == "5s"
    assert int(timeouts["client"].rstrip("s")) > 300
    assert int(timeouts["server"].rstrip("s")) > 300


def test_tls_frontends_on_443_and_6333(config, converged):
    pem = converged["dir"] / "tls" / "server.pem"
    assert config["frontend embeddings"][0] == (f"bind 0.0.0.0:443 ssl crt {pem} alpn http/1.1")
    assert config["frontend qdrant"][0] == f"bind 0.0.0.0:6333 ssl crt {pem} alpn http/1.1"


def test_authorization_and_api_key_headers_pass_through(config):
    for name, lines in config.items():
        for line in lines:
            lowered = line.lower()
            if "header" in lowered:
                assert "authorization" not in lowered, f"{name}: {line}"
                assert "api-key" not in lowered, f"{name}: {line}"


def test_prometheus_endpoint_on_its_own_port_for_the_allowed_sources(config):
    stats = config["frontend stats"]
    assert stats[0] == "bind 127.0.0.1:8404"
    assert "http-request deny unless { src 127.0.0.1 10.0.0.0/24 }" in stats
    assert "http-request use-service prometheus-exporter if { path /metrics }" in stats


def test_haproxy_check_rejects_a_broken_config(converged, tmp_path):
    """The check above can fail: a config naming a missing certificate does not pass."""
    broken = (converged["dir"] / "haproxy.cfg").read_text().replace("server.pem", "missing.pem")
    path = tmp_path / "broken.cfg"
    path.write_text(broken)
    assert converged["haproxy"].check(path).returncode != 0


def test_the_pinned_package_version_is_the_one_checked(converged):
    from .haproxy_binary import pinned_version

    assert converged["haproxy"].version == pinned_version() or os.environ.get("CI") is None
