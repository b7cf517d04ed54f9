"""Every role's three descriptions of its variables agree: meta/argument_specs.yml,
defaults/main.yml and the README's variables table (the rows that start with a role variable).

Where a defaults value is a Jinja template the spec states its default in words, so only the
names are compared."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"
ROLES = sorted(path.name for path in ROLES_DIR.iterdir() if (path / "meta").is_dir())


def spec_options(role: str) -> dict[str, Any]:
    specs = yaml.safe_load((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"].get("options", {})


def defaults(role: str) -> dict[str, Any]:
    path = ROLES_DIR / role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def readme_variables(role: str) -> set[str]:
    """Every role variable in the first cell of a table row (`a` / `b` rows name several)."""
    text = (ROLES_DIR / role / "README.md").read_text()
    first_cells = re.findall(r"^\|([^|]*)\|", text, flags=re.MULTILINE)
    return {name for cell in first_cells for name in re.findall(rf"`({role}_[a-z0-9_]+)`", cell)}


@pytest.mark.parametrize("role", ROLES)
def test_spec_and_defaults_name_the_same_variables(role: str) -> None:
    assert set(spec_options(role)) == set(defaults(role))


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_equal_the_defaults(role: str) -> None:
    values = defaults(role)
    differing = {
        name: (option["default"], values.get(name))
        for name, option in spec_options(role).items()
        if "default" in option
        and "{{" not in str(values.get(name))  # a template: the spec describes it in words
        and option["default"] != values.get(name)
    }
    assert differing == {}


@pytest.mark.parametrize("role", ROLES)
def test_readme_table_names_every_variable(role: str) -> None:
    # The table may also list the facts a role sets (nvidia_driver_loaded, ...).
    assert set(spec_options(role)) - readme_variables(role) == set()
