"""roles/nvidia_driver/files/nvidia.fact against fake sysfs trees.

The script runs as Ansible runs it (a subprocess, JSON on stdout), pointed at a sysfs tree built
in tmp_path with --sysfs-root and at a fake nvidia-smi with --search-path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .answers import NO_GPU

FACT = Path(__file__).resolve().parents[3] / "roles/nvidia_driver/files/nvidia.fact"

H100 = ("0000:17:00.0", "0x10de", "0x2330", "0x030200")  # 3D controller
RTX_VGA = ("0000:01:00.0", "0x10de", "0x2684", "0x030000")  # VGA-compatible
RTX_AUDIO = ("0000:01:00.1", "0x10de", "0x22ba", "0x040300")  # the card's HDMI audio
ASPEED_VGA = ("0000:03:00.0", "0x1a03", "0x2000", "0x030000")  # BMC graphics, not NVIDIA
NVIDIA_BRIDGE = ("0000:00:01.0", "0x10de", "0x1ad0", "0x060400")  # NVSwitch-style bridge


def make_sysfs(root: Path, devices=(), drivers=None, modules=()) -> Path:
    """devices: (slot, vendor, device, class); drivers: slot -> bound driver; modules: names."""
    pci = root / "bus/pci/devices"
    pci.mkdir(parents=True)
    for slot, vendor, device, pci_class in devices:
        d = pci / slot
        d.mkdir()
        (d / "vendor").write_text(vendor + "\n")
        (d / "device").write_text(device + "\n")
        (d / "class").write_text(pci_class + "\n")
    for slot, driver in (drivers or {}).items():
        target = root / "bus/pci/drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (pci / slot / "driver").symlink_to(target)
    for name, version in dict(modules).items():
        module = root / "module" / name
        module.mkdir(parents=True)
        if version:
            (module / "version").write_text(version + "\n")
    return root


def run_fact(*args: str, env: dict | None = None) -> dict:
    result = subprocess.run(
        [sys.executable, str(FACT), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    assert result.stderr == ""
    return json.loads(result.stdout)


def fact_for(root: Path, search_path: Path | None = None) -> dict:
    empty = root / "empty-bin"
    empty.mkdir(exist_ok=True)
    return run_fact("--sysfs-root", str(root), "--search-path", str(search_path or empty))


def test_file_is_an_executable_script_with_a_system_python_shebang():
    assert os.access(FACT, os.X_OK)
    assert FACT.read_text().splitlines()[0] == "#!/usr/bin/python3"


def test_no_gpu(tmp_path):
    root = make_sysfs(tmp_path / "sys", [ASPEED_VGA])
    assert fact_for(root) == NO_GPU


def test_missing_pci_tree_means_no_gpu(tmp_path):
    (tmp_path / "sys").mkdir()
    assert fact_for(tmp_path / "sys")["gpu_count"] == 0


def test_counts_display_and_3d_functions_only(tmp_path):
    root = make_sysfs(tmp_path / "sys", [H100, RTX_VGA, RTX_AUDIO, ASPEED_VGA, NVIDIA_BRIDGE])
    fact = fact_for(root)
    assert fact["gpu_count"] == 2
    assert fact["devices"] == [
        {"slot": "0000:01:00.0", "device": "0x2684", "class": "0x030000", "driver": None},
        {"slot": "0000:17:00.0", "device": "0x2330", "class": "0x030200", "driver": None},
    ]


def test_gpu_held_by_nouveau_before_the_driver_is_installed(tmp_path):
    root = make_sysfs(
        tmp_path / "sys", [RTX_VGA], drivers={RTX_VGA[0]: "nouveau"}, modules={"nouveau": ""}
    )
    fact = fact_for(root)
    assert fact["devices"][0]["driver"] == "nouveau"
    assert fact["nouveau_loaded"] is True
    assert fact["driver_loaded"] is False
    assert fact["driver_version"] is None


def test_loaded_driver_and_nvidia_smi(tmp_path):
    root = make_sysfs(
        tmp_path / "sys",
        [H100],
        drivers={H100[0]: "nvidia"},
        modules={"nvidia": "535.309.01"},
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text("#!/bin/sh\n")
    smi.chmod(0o755)
    fact = fact_for(root, bin_dir)
    assert fact["gpu_count"] == 1
    assert fact["devices"][0]["driver"] == "nvidia"
    assert fact["driver_loaded"] is True
    assert fact["driver_version"] == "535.309.01"
    assert fact["nvidia_smi"] == str(smi)


def test_non_executable_nvidia_smi_is_not_reported(tmp_path):
    root = make_sysfs(tmp_path / "sys")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("not a program")
    assert fact_for(root, bin_dir)["nvidia_smi"] is None


def test_uppercase_and_unreadable_attributes(tmp_path):
    """Vendor IDs compare case-insensitively; a function whose class cannot be read is skipped."""
    upper = ("0000:65:00.0", "0x10DE", "0x20B5", "0x030200")
    broken = ("0000:66:00.0", "0x10de", "0x20b5", "0x030200")
    root = make_sysfs(tmp_path / "sys", [upper, broken])
    (root / "bus/pci/devices" / broken[0] / "class").unlink()
    fact = fact_for(root)
    assert fact["gpu_count"] == 1
    assert fact["devices"][0]["device"] == "0x20b5"


def test_environment_variables_select_the_roots(tmp_path):
    root = make_sysfs(tmp_path / "sys", [H100])
    fact = run_fact(
        env={"NVIDIA_FACT_SYSFS_ROOT": str(root), "NVIDIA_FACT_SEARCH_PATH": str(tmp_path)}
    )
    assert fact["gpu_count"] == 1


@pytest.mark.skipif(not Path("/sys/bus/pci").is_dir(), reason="no PCI sysfs here")
def test_real_sysfs_prints_the_documented_schema():
    """Ansible runs the script with no arguments; whatever the machine has, the keys are there."""
    result = subprocess.run([str(FACT)], capture_output=True, text=True, check=True, timeout=30)
    fact = json.loads(result.stdout)
    assert set(fact) == {
        "gpu_count",
        "devices",
        "driver_loaded",
        "driver_version",
        "nouveau_loaded",
        "nvidia_smi",
    }
    assert fact["gpu_count"] == len(fact["devices"])
