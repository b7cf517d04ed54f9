"""roles/workstation/library/vscode_jsonc_merge.py: JSONC parsing and text-preserving merges.

The module edits VS Code's user files as text. These tests feed it what users really have
there (comments of both kinds, trailing commas, their own entries) and check that the result
parses, keeps every user byte outside the managed entries, holds each managed entry once, and
that a second run changes nothing.
"""

from __future__ import annotations

import json

import pytest

from .module_loader import load_module

m = load_module()

LABELS = ["startall + warmup", "stopall"]
BINDINGS = [
    {
        "key": "ctrl+shift+9",
        "command": "workbench.action.tasks.runTask",
        "args": "startall + warmup",
    },
    {"key": "ctrl+shift+-", "command": "workbench.action.tasks.runTask", "args": "stopall"},
]
TASKS = [
    {
        "label": "stopall",
        "type": "process",
        "command": "ssh",
        "args": ["h", "jina-stack", "stop"],
        "detail": "jina-stack: stop",
    },
]
USER_KEYBINDINGS = """// Place your key bindings in this file to override the defaults
[
    // mine: "quoted // not a comment"
    { "key": "ctrl+k ctrl+t", "command": "workbench.action.selectTheme" }, // trailing comment
    /* block
       comment, with ] and } inside */
    {
        "key": "ctrl+shift+9",
        "command": "editor.action.formatDocument", // user's own use of the key
    },
]
"""
USER_TASKS = """{
  // See https://go.microsoft.com/fwlink/?LinkId=733558
  "version": "2.0.0",
  "tasks": [
    { "label": "build", "type": "shell", "command": "make", }, /* keep me */
  ],
}
"""


def array_params(**overrides: object) -> dict:
    params = {
        "mode": "array",
        "key": "",
        "entries": BINDINGS,
        "managed_field": "args",
        "managed_values": LABELS,
        "managed_prefix": "",
        "settings": {},
        "new_file": {},
        "state": "present",
    }
    return params | overrides


def task_params(**overrides: object) -> dict:
    return (
        array_params(
            key="tasks",
            entries=TASKS,
            managed_field="detail",
            managed_values=[],
            managed_prefix="jina-stack:",
            new_file={"version": "2.0.0"},
        )
        | overrides
    )


def user_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() not in ("[", "]", "{", "}")]


# --- the parser --------------------------------------------------------------------------------


def test_parser_reads_comments_and_trailing_commas():
    assert m.loads(USER_KEYBINDINGS) == [
        {"key": "ctrl+k ctrl+t", "command": "workbench.action.selectTheme"},
        {"key": "ctrl+shift+9", "command": "editor.action.formatDocument"},
    ]
    assert m.loads(USER_TASKS)["tasks"][0]["label"] == "build"


def test_parser_agrees_with_json_on_plain_json():
    text = json.dumps({"a": [1, 2.5, -3e2, None, True, 'x\\"y\u00e9'], "b": {}}, indent=1)
    assert m.loads(text) == json.loads(text)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1 "b": 2}', "line 1 column 9"),
        ("[\n  1,\n  2\n", "line 4 column 1"),
        ('{"a": /* open', "unterminated /* comment"),
        ("{a: 1}", "expected a quoted key"),
        ("[1] x", "unexpected text after the value"),
    ],
)
def test_parser_names_where_the_text_is_wrong(text, where):
    with pytest.raises(m.JsoncError, match=where.replace("*", r"\*")):
        m.loads(text)


def test_empty_and_comment_only_files_are_empty():
    assert m.loads("") is None
    assert m.loads("// nothing yet\n/* really */\n") is None


# --- arrays (keybindings.json, tasks.json) -------------------------------------------------------


def test_keybindings_merge_keeps_every_user_line_and_adds_each_binding_once():
    merged, managed = m.compute(array_params(), USER_KEYBINDINGS)
    assert managed == len(BINDINGS)
    data = m.loads(merged)
    assert data[:2] == m.loads(USER_KEYBINDINGS)
    assert data[2:] == BINDINGS
    for line in user_lines(USER_KEYBINDINGS):
        assert line in merged, line
    assert m.compute(array_params(), merged)[0] == merged  # idempotent


def test_changed_entries_replace_the_old_ones_in_place_of_duplicates():
    merged, _ = m.compute(array_params(), USER_KEYBINDINGS)
    moved = [b | {"key": b["key"].replace("ctrl", "cmd")} for b in BINDINGS]
    again, managed = m.compute(array_params(entries=moved), merged)
    data = m.loads(again)
    assert managed == 2
    assert [b for b in data if b.get("args") in LABELS] == moved
    assert len(data) == 4


def test_managed_entries_anywhere_in_the_array_are_found():
    text = "[\n  " + json.dumps(BINDINGS[1]) + ',\n  {"key": "f1", "command": "x"}\n]\n'
    merged, managed = m.compute(array_params(), text)
    data = m.loads(merged)
    assert managed == 2
    assert data[0] == {"key": "f1", "command": "x"}
    assert data[1:] == BINDINGS


def test_absent_removes_only_managed_entries():
    merged, _ = m.compute(array_params(), USER_KEYBINDINGS)
    removed, managed = m.compute(array_params(state="absent"), merged)
    assert managed == 0
    assert m.loads(removed) == m.loads(USER_KEYBINDINGS)
    for line in user_lines(USER_KEYBINDINGS):
        assert line.rstrip(",") in removed, line


def test_tasks_merge_under_the_tasks_key():
    merged, managed = m.compute(task_params(), USER_TASKS)
    data = m.loads(merged)
    assert managed == 1
    assert data["version"] == "2.0.0"
    assert [t["label"] for t in data["tasks"]] == ["build", "stopall"]
    assert "/* keep me */" in merged
    assert "// See https://go.microsoft.com/fwlink/?LinkId=733558" in merged
    assert m.compute(task_params(), merged)[0] == merged


@pytest.mark.parametrize(
    "existing", ["", "// new file\n", "{}", "{\n  // a comment only\n}\n", '{"version": "2.0.0"}']
)
def test_tasks_file_without_tasks_gets_version_and_tasks(existing):
    merged, managed = m.compute(task_params(), existing)
    data = m.loads(merged)
    assert managed == 1
    assert data == {"version": "2.0.0", "tasks": TASKS}
    assert m.compute(task_params(), merged)[0] == merged


def test_wrong_shapes_fail_and_say_why():
    with pytest.raises(ValueError, match="expected a JSON array"):
        m.compute(array_params(), '{"key": "x"}')
    with pytest.raises(ValueError, match='"tasks" is not an array'):
        m.compute(task_params(), '{"tasks": {}}')
    with pytest.raises(ValueError, match="would not be recognised as managed"):
        m.compute(array_params(entries=[{"key": "f2", "command": "y"}]), "[]")


def test_nothing_to_write_leaves_a_missing_file_missing():
    assert m.compute(array_params(state="absent"), "")[0] == ""


# --- objects (settings.json) ---------------------------------------------------------------------

USER_SETTINGS = """{
    "editor.fontSize": 14, // I like it big
    /* "roo-cline.autoImportSettingsPath": "commented out" */
    "files.exclude": {"**/.git": true,},
}
"""
KEY = "roo-cline.autoImportSettingsPath"


def object_params(**overrides: object) -> dict:
    return {
        "mode": "object",
        "settings": {KEY: "~/.jina-stack/roo-code-settings.json"},
        "state": "present",
    } | overrides


def test_settings_key_is_added_then_replaced_then_removed():
    added, managed = m.compute(object_params(), USER_SETTINGS)
    data = m.loads(added)
    assert managed == 1
    assert data[KEY] == "~/.jina-stack/roo-code-settings.json"
    assert data["editor.fontSize"] == 14
    assert "// I like it big" in added
    assert m.compute(object_params(), added)[0] == added
    replaced, _ = m.compute(object_params(settings={KEY: "/elsewhere.json"}), added)
    assert m.loads(replaced)[KEY] == "/elsewhere.json"
    assert replaced.count(KEY) == 2  # the user's comment and the one key
    removed, managed = m.compute(object_params(state="absent"), replaced)
    assert managed == 0
    assert m.loads(removed) == m.loads(USER_SETTINGS)
    assert '/* "roo-cline.autoImportSettingsPath": "commented out" */' in removed


def test_settings_in_an_empty_file():
    added, _ = m.compute(object_params(), "")
    assert m.loads(added) == {KEY: "~/.jina-stack/roo-code-settings.json"}


@pytest.mark.parametrize(
    "existing",
    [
        '{\n  // mine\n  "version": "2.0.0",\n  "tasks": [],\n}\n',
        '{\n  "version": "2.0.0",\n  "tasks": [\n  ]\n}\n',
        '{"version": "2.0.0", "tasks": [{"label": "x", "type": "shell", "command": "y"}]}',
        '{\n\t"tasks": [\n\t\t{"label": "x", "type": "shell", "command": "y"} // c\n\t]\n}\n',
        USER_TASKS,
    ],
)
def test_layout_is_stable_across_remove_and_re_add(existing):
    """A re-run removes the managed entries and appends them again: same text every time."""
    once, _ = m.compute(task_params(), existing)
    assert m.compute(task_params(), once)[0] == once
    removed, _ = m.compute(task_params(state="absent"), once)
    assert m.loads(removed) == m.loads(existing)
    assert m.compute(task_params(), removed)[0] == once
