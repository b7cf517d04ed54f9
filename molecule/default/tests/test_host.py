"""The test bed itself: a Debian 12 host with systemd as PID 1, as the roles expect."""

import json


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_system_is_running_without_failed_units(host):
    state = host.run("systemctl is-system-running --wait")
    failed = host.check_output("systemctl list-units --failed --output=json")
    assert json.loads(failed) == [], failed
    assert state.stdout.strip() == "running", state.stdout


def test_debian_12(host):
    assert host.system_info.distribution == "debian"
    assert host.system_info.release.startswith("12")


def test_base_tools_present(host):
    for command in ("python3", "sudo", "sshd"):
        assert host.exists(command) or host.file(f"/usr/sbin/{command}").exists, command
    assert host.run("python3 -m venv --help").rc == 0
