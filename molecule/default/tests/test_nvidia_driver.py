"""roles/nvidia_driver on the converged test host: the no-GPU path.

The test host (a container on a machine without an NVIDIA GPU) must get the detection fact and
nothing else: no driver packages, no non-free package sources. The last tests run the role's
play from playbooks/site.yml again in check mode (plain, forced, on a host that has no fact file
yet) and with a branch Debian 12 does not package: none of them may change the host.
"""

from __future__ import annotations

import json
import re
import subprocess

from molecule_helpers import ansible_playbook, recap_changed
from nvidia_fact.answers import NO_GPU

FACT_FILE = "/etc/ansible/facts.d/nvidia.fact"
SOURCES_FILE = "/etc/apt/sources.list.d/nvidia-driver-non-free.sources"
# Debian 12's driver, its libraries and firmware, and what DKMS would need.
DRIVER_PACKAGES = [
    "nvidia-*",
    "libnvidia-*",
    "libcuda1",
    "firmware-misc-nonfree",
    "firmware-nvidia-*",
    "linux-headers-*",
    "dkms",
]


def run_playbook(*args: str, tags: str = "nvidia_driver") -> subprocess.CompletedProcess[str]:
    """The role's play from site.yml against the scenario's inventory."""
    return ansible_playbook("site.yml", *args, tags=tags)


def flat(output: str) -> str:
    """Ansible's YAML callback folds long messages: compare with whitespace collapsed."""
    return " ".join(output.split())


def changed(result: subprocess.CompletedProcess[str]) -> int:
    return recap_changed(result, role="nvidia_driver")


def assert_untouched(host):
    assert not host.file(SOURCES_FILE).exists
    assert installed_driver_packages(host) == []


def installed_driver_packages(host) -> list[str]:
    patterns = " ".join(f"'{p}'" for p in DRIVER_PACKAGES)
    # Exit 1 when a pattern matches nothing: that is the expected case.
    out = host.run(f"dpkg-query -W -f='${{db:Status-Status}} ${{Package}}\\n' {patterns}").stdout
    return [line.split()[1] for line in out.splitlines() if line.split()[:1] != ["not-installed"]]


def test_fact_file_is_an_executable_root_owned_script(host):
    fact = host.file(FACT_FILE)
    assert fact.is_file
    assert (fact.user, fact.group, fact.mode) == ("root", "root", 0o755)
    assert host.file("/etc/ansible/facts.d").mode == 0o755


def test_fact_reports_no_gpu(host):
    assert json.loads(host.check_output(FACT_FILE)) == NO_GPU


def test_ansible_sees_the_fact(host):
    facts = host.ansible("setup", "filter=ansible_local", check=False)["ansible_facts"]
    assert facts["ansible_local"]["nvidia"] == NO_GPU


def test_no_nvidia_packages(host):
    result = host.run("dpkg -l 'nvidia-*'")
    assert not [line for line in result.stdout.splitlines() if line.startswith("ii")]
    assert installed_driver_packages(host) == []


def test_no_non_free_sources(host):
    assert not host.file(SOURCES_FILE).exists
    found = host.run(
        "grep -rlE 'non-free|contrib' /etc/apt/sources.list /etc/apt/sources.list.d"
    ).stdout.split()
    assert found == []


def test_check_mode_changes_nothing(host):
    result = run_playbook("--check")
    assert changed(result) == 0, result.stdout[-3000:]
    assert "0 NVIDIA GPU(s)" in result.stdout
    assert "no driver installed, no package sources changed" in flat(result.stdout)
    # With the fact installed, detection reads ansible_local and does not run the script.
    assert re.search(
        r"TASK \[nvidia_driver : Run the detection script directly\][^\n]*\n([^\n]*\n)?skipping",
        result.stdout,
    ), result.stdout[-3000:]


def test_forced_install_in_check_mode_writes_nothing(host):
    """nvidia_driver_force walks the Debian install path; check mode must leave no trace."""
    result = run_playbook("--check", "-e", "nvidia_driver_force=true")
    # The sources file would be written; the package step waits for its index.
    assert changed(result) >= 1, result.stdout[-3000:]
    assert "Enable contrib, non-free and non-free-firmware" in result.stdout
    assert "nvidia_driver_force installed the driver" in flat(result.stdout)
    assert "a real run writes it, updates the index and installs them" in flat(result.stdout)
    assert_untouched(host)


def test_unpackaged_branch_fails_early(host):
    result = run_playbook(
        "--check", "-e", "nvidia_driver_force=true", "-e", "nvidia_driver_branch=999"
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    expected = "nvidia_driver_branch=999 is not packaged by Debian 12"
    assert expected in flat(output), output[-3000:]
    assert_untouched(host)


def test_check_mode_on_a_host_without_the_fact_file(host):
    """A first run in check mode cannot read ansible_local.nvidia yet: detection still works.

    Run under the verify tag alone, which must bring detection along.
    """
    host.run_expect([0], f"rm -f {FACT_FILE}")
    try:
        result = run_playbook("--check", tags="nvidia_driver_verify")
        assert changed(result) == 1, result.stdout[-3000:]  # the fact file
        assert "0 NVIDIA GPU(s)" in result.stdout
        assert re.search(
            r"TASK \[nvidia_driver : Run the detection script directly\][^\n]*\n([^\n]*\n)?ok:",
            result.stdout,
        ), result.stdout[-3000:]
        assert not host.file(FACT_FILE).exists
    finally:
        restored = run_playbook()
    assert changed(restored) == 1
    assert json.loads(host.check_output(FACT_FILE)) == NO_GPU


def test_failed_forced_install_removes_its_sources_file(host):
    """A real (not check mode) forced install that apt cannot complete.

    The sources file it wrote goes again. apt-get update runs against the Debian mirror with the
    file in place, so this also proves apt accepts it next to the host's own sources.
    """
    result = run_playbook(
        "-e",
        "nvidia_driver_force=true",
        "-e",
        "nvidia_driver_kernel_headers=false",
        "-e",
        '{"nvidia_driver_packages": ["nvidia-driver-does-not-exist"]}',
    )
    output = flat(result.stdout + result.stderr)
    assert result.returncode != 0
    expected = "No package matching 'nvidia-driver-does-not-exist' is available"
    assert expected in output, output[-3000:]
    assert "was removed again" in output
    assert_untouched(host)
