"""roles/stack_cli on the converged test host: the jina-stack program, its settings, the sudo
rule for the operator account (molecule.yml: stack_cli_sudo_users), exit codes and output.

Starting and stopping through the VS Code tasks over ssh is in test_vscode_tasks.py."""

from __future__ import annotations

import json

from molecule_helpers import ansible_playbook

CLI = "/usr/local/bin/jina-stack"
OPERATOR = "roo-operator"


def active(host, unit: str) -> str:
    return host.run(f"systemctl is-active {unit}").stdout.strip()


def test_program_and_settings_are_installed(host):
    program = host.file(CLI)
    assert program.user == "root"
    assert program.group == "root"
    assert program.mode == 0o755
    settings = json.loads(host.file("/etc/jina-stack/jina-stack.json").content_string)
    assert settings["qdrant"] == {
        "managed": True,
        "unit": "qdrant.service",
        "url": "http://127.0.0.1:6333",
        "port": 6333,
        "env_file": "/etc/qdrant/qdrant.env",
    }
    assert settings["jina"]["unit"] == "jina-embeddings.service"
    assert settings["jina"]["url"] == "http://127.0.0.1:4000"
    assert settings["jina"]["env_file"] == "/etc/jina-embeddings/jina-embeddings.env"


def test_sudo_rule_allows_only_jina_stack(host):
    rule = host.file("/etc/sudoers.d/jina-stack")
    assert rule.mode == 0o440
    assert f"{OPERATOR} ALL=(root) NOPASSWD: {CLI}" in rule.content_string
    assert host.run("visudo -c").rc == 0
    allowed = host.run(f"runuser -u {OPERATOR} -- sudo -n -l {CLI}")
    assert allowed.rc == 0, allowed.stderr
    assert host.run(f"runuser -u {OPERATOR} -- sudo -n -l /bin/sh").rc != 0


def test_status_shows_both_units_ports_readiness_and_memory(host):
    result = host.run(f"{CLI} status")
    assert result.rc == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["COMPONENT", "UNIT", "STATE", "PID", "PORT", "READY"]
    qdrant = next(line for line in lines if line.startswith("qdrant "))
    jina = next(line for line in lines if line.startswith("jina "))
    for row, unit, port in (
        (qdrant, "qdrant.service", "6333"),
        (jina, "jina-embeddings.service", "4000"),
    ):
        fields = row.split()
        assert fields[1] == unit
        assert fields[2] == "active/running"
        assert int(fields[3]) > 0
        assert fields[4] == port
        assert fields[5] == "yes"
        assert " MiB / " in row  # RSS against MemoryMax
        assert "%" in row  # MemoryMax is finite on both units


def test_usage_errors_exit_2(host):
    for command in (f"{CLI}", f"{CLI} launch all", f"{CLI} start everything"):
        result = host.run(command)
        assert result.rc == 2, command
        assert "ACTION" in result.stderr


def test_an_account_without_the_sudo_rule_gets_exit_4_and_nothing_stops(host):
    before = host.run("systemctl show -p MainPID --value jina-embeddings.service").stdout
    result = host.run(f"runuser -u nobody -- {CLI} stop all")
    assert result.rc == 4
    assert "needs root" in result.stderr
    assert active(host, "jina-embeddings.service") == "active"
    assert host.run("systemctl show -p MainPID --value jina-embeddings.service").stdout == before


def test_operator_reads_health_and_logs(host):
    health = host.run(f"runuser -u {OPERATOR} -- {CLI} health")
    assert health.rc == 0, health.stdout + health.stderr
    assert health.stdout.split() == ["qdrant:", "ready", "jina:", "ready"]
    logs = host.run(f"runuser -u {OPERATOR} -- {CLI} logs jina --lines 5")
    assert logs.rc == 0, logs.stderr
    lines = logs.stdout.splitlines()
    assert 0 < len(lines) <= 5
    assert "gunicorn[" in lines[-1]  # the service's own journal


def test_a_bad_sudo_user_fails_the_play_early_naming_the_variable(host):
    result = ansible_playbook(
        "site.yml", tags="stack_cli", extra_vars={"stack_cli_sudo_users": ["Bad User"]}
    )
    assert result.returncode != 0
    # molecule's ansible.cfg sends failures to stderr (display_failed_stderr)
    assert "stack_cli_sudo_users must list account names" in result.stdout + result.stderr
    assert OPERATOR in host.file("/etc/sudoers.d/jina-stack").content_string
