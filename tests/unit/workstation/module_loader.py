"""Load roles/workstation/library/vscode_jsonc_merge.py (an Ansible module file) for tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

MODULE_PATH = (
    Path(__file__).resolve().parents[3] / "roles/workstation/library/vscode_jsonc_merge.py"
)


def load_module() -> ModuleType:
    name = "vscode_jsonc_merge"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, MODULE_PATH)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
