"""roles/hardened_service's systemd_directives filter renders a directive dict as unit lines."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

PLUGIN = (
    Path(__file__).resolve().parents[3]
    / "roles"
    / "hardened_service"
    / "filter_plugins"
    / "systemd_directives.py"
)


def plugin() -> ModuleType:
    spec = importlib.util.spec_from_file_location("systemd_directives", PLUGIN)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_keys_sorted_like_dictsort_lists_repeated_booleans_as_yes_no_null_dropped() -> None:
    render = plugin().FilterModule().filters()["systemd_directives"]
    directives = {
        "UMask": "0077",
        "SystemCallFilter": ["@system-service", "~@privileged"],
        "ProtectHome": None,
        "PrivateDevices": False,
        "MemoryDenyWriteExecute": True,
        "CapabilityBoundingSet": "",
        "ambientCapabilities": "",
        "LimitNOFILE": 65536,
    }
    assert render(directives).split("\n") == [
        "ambientCapabilities=",
        "CapabilityBoundingSet=",
        "LimitNOFILE=65536",
        "MemoryDenyWriteExecute=yes",
        "PrivateDevices=no",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged",
        "UMask=0077",
    ]


def test_nothing_renders_nothing() -> None:
    assert plugin().systemd_directives({"ProtectHome": None}) == ""
