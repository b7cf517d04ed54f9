"""roles/qdrant on the converged test host (molecule default scenario).

The scenario installs the Qdrant stand-in through the offline variables
(qdrant_archive_src + qdrant_archive_sha256) and sets an API key and a
read-only key. Commands reach the host through Ansible (slow per call), so the
host's state is collected once by a small python3 script
(molecule/resources/tests/probes/qdrant_state.py) and the tests assert on that.
Tests run in file order: the last ones write data, restart, re-converge the host
with the qdrant role (data must survive, nothing may change), run it in check
mode (nothing may change), and offer a tarball whose checksum does not match.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from molecule_helpers import PROJECT, ansible_playbook, http_answers, recap_changed, run_probe

ROLE_VARS = yaml.safe_load((PROJECT / "roles/qdrant/vars/main.yml").read_text())
BASE_URL = "http://127.0.0.1:6333"
COLLECTION = "molecule_qdrant_role"
PATHS = [
    "/etc/qdrant",
    "/etc/qdrant/config.yaml",
    "/etc/qdrant/qdrant.env",
    "/var/lib/qdrant",
    "/var/lib/qdrant/storage",
    "/var/lib/qdrant/snapshots",
    "/etc/systemd/system/qdrant.service",
    "/usr/local/bin/qdrant",
]


def http(host, *requests: tuple) -> list[tuple[int, object]]:
    """requests: (method, path, api_key, json_body) tuples, or ("WAIT",) for /readyz."""
    made = []
    for method, path, key, body in (tuple(r) + (None,) * (4 - len(r)) for r in requests):
        if method == "WAIT":
            made.append(("WAIT", BASE_URL + "/readyz", {}, None))
        else:
            made.append((method, BASE_URL + path, {"api-key": key} if key else {}, body))
    return http_answers(host, made, timeout=10)


def count_request(key: str) -> tuple:
    return ("POST", f"/collections/{COLLECTION}/points/count", key, {"exact": True})


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def api_key(hostvars):
    key = hostvars.get("qdrant_api_key", "")
    assert key, "the default scenario must set qdrant_api_key"
    return key


@pytest.fixture(scope="module")
def state(host):
    return run_probe(host, "qdrant_state", json.dumps(PATHS))


@pytest.fixture(scope="module")
def config(state):
    return yaml.safe_load(state["config"])


# --- files -------------------------------------------------------------------


def test_system_user_and_group(state):
    assert state["user"]["group"] == "qdrant"
    assert state["user"]["shell"] == "/usr/sbin/nologin"
    assert state["user"]["uid"] < 1000, "a system user"


@pytest.mark.parametrize(
    ("path", "owner", "group", "mode"),
    [
        ("/etc/qdrant", "root", "qdrant", 0o750),
        ("/etc/qdrant/config.yaml", "root", "qdrant", 0o640),
        ("/etc/qdrant/qdrant.env", "root", "root", 0o600),
        ("/var/lib/qdrant", "qdrant", "qdrant", 0o750),
        ("/var/lib/qdrant/storage", "qdrant", "qdrant", 0o750),
        ("/var/lib/qdrant/snapshots", "qdrant", "qdrant", 0o750),
        ("/etc/systemd/system/qdrant.service", "root", "root", 0o644),
    ],
)
def test_owner_and_mode(state, path, owner, group, mode):
    assert path in state["stat"], f"{path} is missing"
    st = state["stat"][path]
    assert (st["user"], st["group"], oct(st["mode"])) == (owner, group, oct(mode))


def test_binary_is_the_wanted_version_behind_a_symlink(host, state, hostvars):
    version = hostvars["qdrant_version"]
    assert state["stat"]["/usr/local/bin/qdrant"]["link"] == f"/opt/qdrant/{version}/qdrant"
    binary = host.file(f"/opt/qdrant/{version}/qdrant")
    assert (binary.user, binary.group, binary.mode) == ("root", "root", 0o755)
    assert state["version"].split()[1] == version


def test_config_content(config):
    assert config["service"]["host"] == "127.0.0.1"
    assert config["service"]["http_port"] == 6333
    assert config["service"]["grpc_port"] is None
    assert config["telemetry_disabled"] is True
    assert config["log_level"] == "INFO"
    assert config["storage"]["storage_path"] == "/var/lib/qdrant/storage"
    assert config["storage"]["snapshots_path"] == "/var/lib/qdrant/snapshots"
    assert "api_key" not in config["service"]
    assert "read_only_api_key" not in config["service"]


def test_config_has_only_real_qdrant_keys(config):
    known = ROLE_VARS["_qdrant_config_key_paths"]

    def leaves(node, prefix=""):
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, f"{prefix}.{key}" if prefix else key)
        else:
            yield prefix

    def is_known(path):
        return any(path == k or (k.endswith(".*") and path.startswith(k[:-1])) for k in known)

    assert [p for p in leaves(config) if not is_known(p)] == []


def test_environment_file_holds_the_api_keys(state, hostvars, api_key):
    assert f'QDRANT__SERVICE__API_KEY="{api_key}"' in state["env"]
    ro_key = hostvars.get("qdrant_read_only_api_key")
    if ro_key:
        assert f'QDRANT__SERVICE__READ_ONLY_API_KEY="{ro_key}"' in state["env"]


# --- unit ----------------------------------------------------------------------


def test_unit_file_verifies(state):
    assert state["verify"]["rc"] == 0, state["verify"]
    assert state["verify"]["err"] == "", state["verify"]


def test_unit_runs_qdrant_as_its_user(state):
    show = state["show"]
    assert show["User"] == "qdrant"
    assert show["Group"] == "qdrant"
    assert show["WorkingDirectory"] == "/var/lib/qdrant"
    assert "/usr/local/bin/qdrant --config-path /etc/qdrant/config.yaml" in show["ExecStart"]
    assert "/etc/qdrant/qdrant.env" in show["EnvironmentFiles"]
    assert show["Restart"] == "on-failure"
    assert show["LimitNOFILE"] == "65536"
    assert show["TimeoutStopUSec"] == "1min 30s"


def test_memory_limits_derive_from_host_memory(state):
    memtotal_mb = state["memtotal_kb"] // 1024
    high, high_max = int(state["show"]["MemoryHigh"]), int(state["show"]["MemoryMax"])
    assert high == int(memtotal_mb * 0.60) * 1024 * 1024
    assert high_max == int(memtotal_mb * 0.75) * 1024 * 1024
    assert high < high_max


@pytest.mark.parametrize(
    ("prop", "value"),
    [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("RestrictNamespaces", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("ProtectProc", "invisible"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("UMask", "0077"),
        ("ReadWritePaths", "/var/lib/qdrant/storage /var/lib/qdrant/snapshots"),
    ],
)
def test_unit_hardening(state, prop, value):
    assert state["show"][prop] == value


def test_unit_syscall_and_socket_filters(state):
    assert state["show"]["SystemCallFilter"], "a system call allow list is set"
    families = set(state["show"]["RestrictAddressFamilies"].split())
    assert families == {"AF_INET", "AF_INET6", "AF_UNIX"}


def test_security_exposure_is_low(state):
    line = state["security"][0]
    exposure = float(re.search(r"level for qdrant\.service: ([0-9.]+)", line).group(1))
    assert exposure <= 2.0, line


# --- running service -------------------------------------------------------------


def test_service_enabled_and_running(state):
    assert state["enabled"] == "enabled"
    assert state["active"] == "active"
    assert state["main_user"] == "qdrant"


def test_http_listens_on_loopback_only(state):
    on_6333 = [line.split()[3] for line in state["listen"] if line.split()[3].endswith(":6333")]
    assert on_6333 == ["127.0.0.1:6333"]
    assert not [line for line in state["listen"] if line.split()[3].endswith(":6334")], "no gRPC"


def test_readyz(host):
    [(status, _)] = http(host, ("GET", "/readyz"))
    assert status == 200


def test_api_key_is_enforced(host, api_key):
    no_key, wrong_key, right_key = http(
        host,
        ("GET", "/collections"),
        ("GET", "/collections", "not-the-key"),
        ("GET", "/collections", api_key),
    )
    assert no_key[0] == 401
    assert wrong_key[0] in (401, 403)
    assert right_key[0] == 200, right_key


def test_read_only_key_reads_but_cannot_write(host, hostvars):
    ro_key = hostvars.get("qdrant_read_only_api_key")
    if not ro_key:
        pytest.skip("no read-only key in this scenario")
    create = {"vectors": {"size": 2, "distance": "Dot"}}
    read, write = http(
        host,
        ("GET", "/collections", ro_key),
        ("PUT", "/collections/ro_must_fail", ro_key, create),
    )
    assert read[0] == 200
    assert write[0] in (401, 403)


# --- data survives restart and re-converge -------------------------------------------


def test_data_survives_systemctl_restart(host, api_key):
    points = [
        {"id": i, "vector": [1.0, 0.5, 0.25, float(i)], "payload": {"n": i}} for i in (1, 2, 3)
    ]
    answers = http(
        host,
        ("DELETE", f"/collections/{COLLECTION}", api_key),
        (
            "PUT",
            f"/collections/{COLLECTION}",
            api_key,
            {"vectors": {"size": 4, "distance": "Cosine"}},
        ),
        ("PUT", f"/collections/{COLLECTION}/points?wait=true", api_key, {"points": points}),
    )
    assert answers[1][0] == 200, answers[1]
    assert answers[2][0] == 200, answers[2]
    pid_before = host.check_output("systemctl show qdrant.service -P MainPID")
    host.check_output("systemctl restart qdrant.service")
    _, (status, body) = http(host, ("WAIT",), count_request(api_key))
    assert host.check_output("systemctl show qdrant.service -P MainPID") != pid_before
    assert status == 200, body
    assert body["result"]["count"] == 3


def test_reconverge_keeps_data_and_changes_nothing(host, api_key):
    assert recap_changed(ansible_playbook(tags="qdrant"), role="qdrant") == 0
    [(status, body)] = http(host, count_request(api_key))
    assert status == 200, body
    assert body["result"]["count"] == 3


def test_check_mode_changes_nothing():
    assert recap_changed(ansible_playbook("site.yml", "--check", tags="qdrant"), role="qdrant") == 0


def test_snapshot_timer_is_on_by_default_and_runs_with_the_api_key(host):
    assert host.service("qdrant-snapshot.timer").is_enabled
    assert host.service("qdrant-snapshot.timer").is_running
    unit = "qdrant-snapshot.service"
    assert host.check_output(f"systemctl show {unit} -P StateDirectory") == "qdrant-snapshot"
    run = host.run(f"systemctl start {unit}")
    log = host.check_output(f"journalctl -u {unit} -n 20 --no-pager --output cat")
    assert run.rc == 0, log
    assert " error(s)" in log
    assert "error:" not in log, log


def test_checksum_mismatch_fails_naming_the_file(host):
    """The stand-in tarball offered as real Qdrant 1.18.3 must not match the pinned checksum."""
    archive = next((PROJECT / "build/qdrant-standin").glob("*/qdrant-*-unknown-linux-musl.tar.gz"))
    link_before = host.file("/usr/local/bin/qdrant").linked_to
    result = ansible_playbook(
        "site.yml",
        "--tags",
        "qdrant_install",
        # 1.15.5 -> 1.18.3 is a jump the preflight refuses; allowed here to reach the checksum.
        "-e",
        "qdrant_upgrade_allow_version_jump=true",
        "-e",
        "qdrant_version=1.18.3",
        "-e",
        f"qdrant_archive_src={archive}",
        "-e",
        "qdrant_archive_sha256=",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"Checksum mismatch for {archive}" in output, output[-3000:]
    assert "_qdrant_checksums" in output, "the message says where the expected value came from"
    assert host.file("/usr/local/bin/qdrant").linked_to == link_before
    assert not host.file("/opt/qdrant/1.18.3").exists
