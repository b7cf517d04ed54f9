"""Every role's preflight runs whatever --tags selects.

A role's tasks/main.yml is a table of contents of tagged includes. An include that carries a
tag the preflight does not carry runs, under ``--tags THAT_TAG``, without the assertions the
README promises (issue 14: ``--tags qdrant_firewall`` skipped the qdrant preflight). For every
role under roles/ this collects each tag used anywhere in its task files and checks that the
preflight include (``preflight.yml``; a role without one: its first stage) carries all of them,
both on the include and in its ``apply``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
SPECIAL_TAGS = {"always", "never"}
INCLUDES = {
    "include_tasks",
    "ansible.builtin.include_tasks",
    "import_tasks",
    "ansible.builtin.import_tasks",
}


def _as_list(tags: Any) -> list[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        return [t.strip() for t in tags.split(",") if t.strip()]
    return [str(t) for t in tags]


def _tasks(items: Any) -> list[dict[str, Any]]:
    """Every task in a task list, blocks flattened."""
    out: list[dict[str, Any]] = []
    for item in items or []:
        if not isinstance(item, dict):
            continue
        out.append(item)
        for section in ("block", "rescue", "always"):
            out.extend(_tasks(item.get(section)))
    return out


def _include(task: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for key in INCLUDES:
        if key in task:
            spec = task[key]
            if isinstance(spec, str):
                return spec, {}
            return str(spec.get("file", "")), spec
    return None


def _tags_used(role: Path) -> set[str]:
    used: set[str] = set()
    for path in sorted((role / "tasks").rglob("*.yml")):
        for task in _tasks(yaml.safe_load(path.read_text())):
            used.update(_as_list(task.get("tags")))
            included = _include(task)
            if included:
                used.update(_as_list((included[1].get("apply") or {}).get("tags")))
    return used - SPECIAL_TAGS


def _roles() -> list[Path]:
    return sorted(p for p in ROLES.iterdir() if (p / "tasks" / "main.yml").is_file())


def test_every_role_is_checked():
    names = {p.name for p in _roles()}
    assert {"qdrant", "workstation", "stack_cli", "jina_embeddings", "nvidia_driver"} <= names


@pytest.mark.parametrize("role", _roles(), ids=lambda p: p.name)
def test_preflight_carries_every_tag_of_the_role(role: Path):
    main = _tasks(yaml.safe_load((role / "tasks" / "main.yml").read_text()))
    includes = [(task, _include(task)) for task in main if _include(task)]
    assert includes, f"{role.name}: tasks/main.yml includes no stage"
    preflight = [(t, inc) for t, inc in includes if inc and inc[0] == "preflight.yml"]
    if (role / "tasks" / "preflight.yml").exists():
        assert preflight, f"{role.name}: tasks/preflight.yml exists but main.yml never includes it"
        task, included = preflight[0]
    else:
        task, included = includes[0]
    assert included is not None
    assert main.index(task) == 0, f"{role.name}: the preflight is not the first stage"
    used = _tags_used(role)
    on_include = set(_as_list(task.get("tags")))
    on_apply = set(_as_list((included[1].get("apply") or {}).get("tags")))
    assert used - on_include == set(), (
        f"{role.name}: the preflight include lacks tags {sorted(used - on_include)}"
    )
    assert used - on_apply == set(), (
        f"{role.name}: the preflight's apply lacks tags {sorted(used - on_apply)}"
    )


def test_the_check_sees_a_missing_tag(tmp_path: Path):
    """The helper itself: a stage tag that the preflight lacks is found."""
    role = tmp_path / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(
        "- name: Preflight\n"
        "  ansible.builtin.include_tasks: {file: preflight.yml, apply: {tags: [demo]}}\n"
        "  tags: [demo]\n"
        "- name: Extra\n"
        "  ansible.builtin.include_tasks: {file: extra.yml, apply: {tags: [demo, demo_extra]}}\n"
        "  tags: [demo, demo_extra]\n"
    )
    assert _tags_used(role) == {"demo", "demo_extra"}
