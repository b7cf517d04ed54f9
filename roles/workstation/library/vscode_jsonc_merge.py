#!/usr/bin/python3
"""Ansible module: merge managed entries into a VS Code JSON-with-comments file.

VS Code's user files (tasks.json, keybindings.json, settings.json) are JSONC: comments and
trailing commas are allowed and users keep their own entries there. This module edits the
text in place, so every byte outside the managed entries (comments, formatting, the user's
entries) stays as it was:

- ``mode: array`` keeps a list of managed objects at the end of an array (the top-level array
  of keybindings.json, or the array under ``key`` such as ``tasks`` in tasks.json). An element
  is managed when its ``managed_field`` is one of ``managed_values`` or starts with
  ``managed_prefix``. Managed elements are removed wherever they are and ``entries`` are
  appended (``state: present``), or only removed (``state: absent``).
- ``mode: object`` sets (or, absent, removes) top-level keys of an object (settings.json).

The result is parsed again before it is written; a file that is not valid JSONC fails with
its path, line and column, and is left alone. Nothing outside the managed entries is lost:

- a file holding only comments (settings the user commented out) keeps them, the new value
  goes after them;
- a symlink (stow, home-manager) is followed and its target written, the link stays;
- CRLF line endings, a UTF-8 byte order mark and the presence or absence of the final newline
  are kept;
- a comment next to a managed entry (also between it and its comma) stays when the entry goes;
- ``backup: true`` keeps a timestamped copy of the file before it is changed (as Ansible's own
  file modules do); the new text is written to a temporary file, fsync'ed, renamed over the
  file and the directory fsync'ed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

DOCUMENTATION = r"""
module: vscode_jsonc_merge
short_description: Merge managed entries into a VS Code JSONC file without touching the rest
description:
  - Edits tasks.json, keybindings.json or settings.json as text, keeping comments and the
    user's entries. See the module's docstring for the rules.
options:
  path:
    description: The file (created when missing).
    type: path
    required: true
  mode:
    description: array (managed elements of an array) or object (top-level keys).
    type: str
    choices: [array, object]
    default: array
  key:
    description: Top-level key holding the array; empty for a top-level array.
    type: str
    default: ""
  entries:
    description: The managed array elements.
    type: list
    elements: dict
    default: []
  managed_field:
    description: Field that marks an element as managed.
    type: str
    default: ""
  managed_values:
    description: Values of managed_field that mark an element as managed.
    type: list
    elements: str
    default: []
  managed_prefix:
    description: Prefix of managed_field that marks an element as managed.
    type: str
    default: ""
  settings:
    description: Top-level keys to set or remove (mode object).
    type: dict
    default: {}
  new_file:
    description: Keys a new object starts with (mode array with key).
    type: dict
    default: {}
  state:
    description: present or absent.
    type: str
    choices: [present, absent]
    default: present
  mode_bits:
    description: File mode of a new file.
    type: str
    default: "0600"
  backup:
    description: Keep a timestamped copy of the file (next to it) before changing it.
    type: bool
    default: false
notes:
  - A symlinked file is followed; its target is written and the link is kept.
author: [jina-stack infrastructure team]
"""

EXAMPLES = r"""
- name: Keybindings
  vscode_jsonc_merge:
    path: ~/.config/Code/User/keybindings.json
    entries:
      - {key: ctrl+shift+9, command: workbench.action.tasks.runTask, args: "startall + warmup"}
    managed_field: args
    managed_values: ["startall + warmup"]
"""

RETURN = r"""
managed:
  description: Number of managed elements or keys now in the file.
  type: int
  returned: always
target:
  description: The file written when path is a symlink.
  type: str
  returned: when path is a symlink
backup_file:
  description: The copy made before the change.
  type: str
  returned: when backup is true and the file changed
"""

INDENT = "  "
BOM = b"\xef\xbb\xbf"


class JsoncError(ValueError):
    """Text that is not JSON with comments."""

    def __init__(self, message: str, text: str, pos: int) -> None:
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        super().__init__(f"{message} at line {line} column {column}")
        self.line, self.column = line, column


@dataclass
class Node:
    """A parsed value with its span in the text; containers keep their children's spans."""

    start: int
    end: int
    value: Any
    items: list[Node] = field(default_factory=list)  # array elements
    members: list[tuple[str, int, Node]] = field(default_factory=list)  # (key, key start, value)


class Parser:
    """JSONC: JSON plus // and /* */ comments and trailing commas (as VS Code reads it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str, pos: int | None = None) -> JsoncError:
        return JsoncError(message, self.text, self.pos if pos is None else pos)

    def skip(self) -> None:
        text, n = self.text, len(self.text)
        while self.pos < n:
            ch = text[self.pos]
            if ch in " \t\r\n\ufeff":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.error("unterminated /* comment")
                self.pos = end + 2
            else:
                return

    def document(self) -> Node | None:
        self.skip()
        if self.pos == len(self.text):
            return None
        node = self.value()
        self.skip()
        if self.pos != len(self.text):
            raise self.error("unexpected text after the value")
        return node

    def value(self) -> Node:
        self.skip()
        if self.pos >= len(self.text):
            raise self.error("unexpected end of file")
        ch = self.text[self.pos]
        if ch == "{":
            return self.object()
        if ch == "[":
            return self.array()
        if ch == '"':
            start = self.pos
            return Node(start, self.pos_after_string(), json.loads(self.text[start : self.pos]))
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ",]}/ \t\r\n":
            self.pos += 1
        token = self.text[start : self.pos]
        try:
            return Node(start, self.pos, json.loads(token))
        except ValueError:
            raise self.error(f"invalid value {token[:20]!r}", start) from None

    def pos_after_string(self) -> int:
        text, i = self.text, self.pos + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
            elif text[i] == '"':
                self.pos = i + 1
                return self.pos
            elif text[i] == "\n":
                break
            else:
                i += 1
        raise self.error("unterminated string")

    def array(self) -> Node:
        node = Node(self.pos, -1, [])
        self.pos += 1
        while True:
            self.skip()
            if self.text.startswith("]", self.pos):
                break
            child = self.value()
            node.items.append(child)
            node.value.append(child.value)
            self.past_separator("]")
        self.pos += 1
        node.end = self.pos
        return node

    def past_separator(self, close: str) -> None:
        """After an array item or object member: past its ',', or stay at CLOSE."""
        self.skip()
        if self.text.startswith(",", self.pos):
            self.pos += 1
        elif not self.text.startswith(close, self.pos):
            raise self.error(f"expected ',' or '{close}'")

    def object(self) -> Node:
        node = Node(self.pos, -1, {})
        self.pos += 1
        while True:
            self.skip()
            if self.text.startswith("}", self.pos):
                break
            if not self.text.startswith('"', self.pos):
                raise self.error("expected a quoted key")
            key_start = self.pos
            key = json.loads(self.text[key_start : self.pos_after_string()])
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise self.error("expected ':'")
            self.pos += 1
            child = self.value()
            node.members.append((key, key_start, child))
            node.value[key] = child.value
            self.past_separator("}")
        self.pos += 1
        node.end = self.pos
        return node


def parse(text: str) -> Node | None:
    """The document's root node, or None for an empty (or comments-only) file."""
    return Parser(text).document()


def loads(text: str) -> Any:
    """The document as plain Python data (None when empty)."""
    node = parse(text)
    return None if node is None else node.value


# --- text editing ------------------------------------------------------------------------------


def _next_token(text: str, pos: int) -> int:
    """Position of the next character that is not whitespace or a comment."""
    parser = Parser(text)
    parser.pos = pos
    parser.skip()
    return parser.pos


def _prev_token(text: str, start: int, pos: int) -> int:
    """Position of the last significant character in text[start:pos] (start when none)."""
    last, i = start, start + 1
    parser = Parser(text)
    parser.pos = i
    while True:
        parser.skip()
        if parser.pos >= pos:
            return last
        last = parser.pos
        if text[parser.pos] == '"':
            parser.pos_after_string()
            last = parser.pos - 1
        else:
            parser.pos += 1


def _line_start(text: str, pos: int) -> int:
    """Start of pos's line when only whitespace precedes pos on it, else pos."""
    begin = text.rfind("\n", 0, pos) + 1
    return begin if text[begin:pos].strip() == "" else pos


def _drop_blank_line(text: str, pos: int) -> str:
    """Remove the line at POS when deleting left it blank."""
    begin = text.rfind("\n", 0, pos) + 1
    stop = text.find("\n", pos)
    if stop >= 0 and text[begin:stop].strip() == "" and begin > 0:
        return text[:begin] + text[stop + 1 :]
    return text


def _remove_spans(text: str, container: Node, removed: list[Node]) -> str:
    """Delete the REMOVED children of CONTAINER, each with one separating comma."""
    for node in sorted(removed, key=lambda n: n.start, reverse=True):
        after = _next_token(text, node.end)
        start = _line_start(text, node.start)
        if text.startswith(",", after):
            between = text[node.end : after]
            if between.strip():
                # A comment between the entry and its comma is the user's: it stays in place.
                text = text[: node.start] + between.lstrip() + text[after + 1 :]
            else:
                text = _drop_blank_line(text[:start] + text[after + 1 :], start)
            continue
        # The last element: drop the comma before it, if there is one and it sits right
        # after the value before it (where this module puts one). A comma after a comment
        # or a space is the user's way of writing a trailing comma: it stays.
        prev = _prev_token(text, container.start, node.start)
        if text[prev] == "," and _prev_token(text, container.start, prev) == prev - 1:
            text = text[:prev] + text[prev + 1 : start] + text[node.end :]
            text = _drop_blank_line(text, start - 1)
        else:
            text = _drop_blank_line(text[:start] + text[node.end :], start)
    return text


def _indent_of(text: str, pos: int) -> str:
    begin = text.rfind("\n", 0, pos) + 1
    prefix = text[begin:pos]
    return prefix[: len(prefix) - len(prefix.lstrip())]


def _render(value: Any, indent: str) -> str:
    rendered = json.dumps(value, indent=2, ensure_ascii=False)
    return rendered.replace("\n", "\n" + indent)


def _keep_before(text: str) -> str:
    """TEXT of a file without a value (comments, whitespace), ready for a value after it."""
    if text and not text.endswith("\n"):
        return text + "\n"
    return text


def merge_array(
    text: str,
    key: str,
    entries: list[dict],
    is_managed: Any,
    new_file: dict | None = None,
) -> str:
    """TEXT with the managed elements of the array (top level, or under KEY) replaced by ENTRIES."""
    root = parse(text)
    if root is None:
        if not entries:
            return text
        data: Any = entries if not key else {**(new_file or {}), key: entries}
        return _keep_before(text) + json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if not key:
        if not isinstance(root.value, list):
            raise JsoncError("expected a JSON array at the top level", text, root.start)
        array = root
    else:
        if not isinstance(root.value, dict):
            raise JsoncError("expected a JSON object at the top level", text, root.start)
        member = next((m for m in root.members if m[0] == key), None)
        if member is None:
            if not entries:
                return text
            indent = _indent_of(text, root.members[0][1]) if root.members else INDENT
            missing = {k: v for k, v in (new_file or {}).items() if k not in root.value}
            rendered = [json.dumps(k) + ": " + _render(v, indent) for k, v in missing.items()]
            rendered.append(json.dumps(key) + ": " + _render(entries, indent))
            return _append_items(text, root, root.end - 1, rendered, indent)
        array = member[2]
        if not isinstance(array.value, list):
            raise JsoncError(f'"{key}" is not an array', text, array.start)
    removed = [node for node in array.items if is_managed(node.value)]
    text = _remove_spans(text, array, removed)
    # Find the array again in the edited text (its start did not move).
    array_node = _node_at(parse(text), array.start)
    if array_node.items:
        item_indent = _indent_of(text, array_node.items[0].start)
    else:
        item_indent = _indent_of(text, array_node.start) + INDENT
    close = array_node.end - 1
    rendered = [_render(entry, item_indent) for entry in entries]
    return _append_items(text, array_node, close, rendered, item_indent)


def _append_items(text: str, container: Node, close: int, rendered: list[str], indent: str) -> str:
    """Insert RENDERED (each indented by INDENT) before CLOSE, the container's closing bracket.

    The layout depends only on what stays in the file (the container's opening line and the
    user's last entry), so removing and re-adding the same entries gives the same text.
    """
    if not rendered:
        return text
    prev = _prev_token(text, container.start, close)
    needs_comma = text[prev] not in "[{,"
    head = text[: prev + 1] + ("," if needs_comma else "")
    between = text[prev + 1 : close]
    between = between[: _comments_end(between)]  # keeps comments after the last entry, intact
    outer = _indent_of(text, container.start)
    body = ",\n".join(indent + item for item in rendered)
    return head + between + "\n" + body + "\n" + outer + text[close:]


def _comments_end(gap: str) -> int:
    """End of the last comment in GAP (whitespace and comments only); 0 when there is none.

    A line comment ends before its newline: trailing spaces inside it are the user's text.
    """
    pos = end = 0
    while pos < len(gap):
        if gap.startswith("//", pos):
            stop = gap.find("\n", pos)
            pos = end = len(gap) if stop < 0 else stop
            if gap[end - 1 : end] == "\r":
                end -= 1
        elif gap.startswith("/*", pos):
            pos = end = gap.index("*/", pos + 2) + 2
        else:
            pos += 1
    return end


def _node_at(root: Node | None, start: int) -> Node:
    stack = [root] if root else []
    while stack:
        node = stack.pop()
        if node.start == start:
            return node
        stack.extend(node.items)
        stack.extend(child for _, _, child in node.members)
    raise ValueError(f"no value starts at {start}")


def merge_object(text: str, settings: dict, remove: bool) -> str:
    """TEXT with top-level SETTINGS set (values replaced in place) or, REMOVE, deleted."""
    root = parse(text)
    if root is None:
        if remove or not settings:
            return text
        return _keep_before(text) + json.dumps(settings, indent=2, ensure_ascii=False) + "\n"
    if not isinstance(root.value, dict):
        raise JsoncError("expected a JSON object at the top level", text, root.start)
    members = {key: (key_start, node) for key, key_start, node in root.members}
    if remove:
        spans = [Node(key_start, node.end, key) for key, key_start, node in root.members]
        return _remove_spans(text, root, [span for span in spans if span.value in settings])
    # Replace existing values from the end, so earlier offsets stay valid.
    for key in sorted(
        (k for k in settings if k in members), key=lambda k: members[k][1].start, reverse=True
    ):
        node = members[key][1]
        if node.value != settings[key]:
            text = (
                text[: node.start]
                + _render(settings[key], _indent_of(text, members[key][0]))
                + text[node.end :]
            )
    new = [k for k in settings if k not in members]
    if not new:
        return text
    root = parse(text)
    assert root is not None
    indent = _indent_of(text, root.members[0][1]) if root.members else INDENT
    rendered = [json.dumps(k) + ": " + _render(settings[k], indent) for k in new]
    return _append_items(text, root, root.end - 1, rendered, indent)


# --- Ansible entry point ---------------------------------------------------------------------


def _managed_predicate(field_name: str, values: list[str], prefix: str) -> Any:
    def is_managed(value: Any) -> bool:
        if not isinstance(value, dict) or not field_name:
            return False
        marker = value.get(field_name)
        if not isinstance(marker, str):
            return False
        return marker in values or bool(prefix and marker.startswith(prefix))

    return is_managed


def compute(params: dict, text: str) -> tuple[str, int]:
    """The new text for PARAMS and the number of managed entries it holds.

    A file whose every line ends in CRLF is edited with LF and written back with CRLF (the
    mapping is one to one: a lone CR stays a lone CR); any other file keeps its bytes and new
    lines get LF.
    """
    crlf = "\r\n" in text and text.count("\n") == text.count("\r\n")
    work = text.replace("\r\n", "\n") if crlf else text
    new, managed = _compute(params, work)
    if new == work:
        return text, managed
    return (new.replace("\n", "\r\n") if crlf else new), managed


def _compute(params: dict, text: str) -> tuple[str, int]:
    if params["mode"] == "object":
        new = merge_object(text, params["settings"], params["state"] == "absent")
        data = loads(new) or {}
        return new, sum(1 for k in params["settings"] if k in data)
    is_managed = _managed_predicate(
        params["managed_field"], params["managed_values"], params["managed_prefix"]
    )
    entries = params["entries"] if params["state"] == "present" else []
    bad = [e for e in entries if not is_managed(e)]
    if bad:
        raise ValueError(f"entry {bad[0]!r} would not be recognised as managed (managed_field)")
    new = merge_array(text, params["key"], entries, is_managed, params["new_file"])
    data = loads(new)
    array = (data or {}).get(params["key"], []) if params["key"] else (data or [])
    return new, sum(1 for e in array if is_managed(e))


class MergeFailedError(Exception):
    """A failure to report with fail_json; the file was not changed."""


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(path: str, data: bytes, mode_bits: str) -> None:
    """Atomically and durably: temporary file, fsync, rename over PATH, fsync the directory."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    try:
        old = os.stat(path)
    except FileNotFoundError:
        old = None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".jina-stack-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, old.st_mode & 0o7777 if old else int(mode_bits, 8))
        if old is not None and (old.st_uid, old.st_gid) != (os.geteuid(), os.getegid()):
            with contextlib.suppress(PermissionError):
                os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def backup_copy(path: str) -> str:
    """A copy of PATH named as Ansible's backup_local names it: PATH.PID.YYYY-MM-DD@HH:MM:SS~."""
    stamp = time.strftime("%Y-%m-%d@%H:%M:%S", time.localtime())
    backup = f"{path}.{os.getpid()}.{stamp}~"
    shutil.copy2(path, backup)
    return backup


def apply(
    params: dict,
    check_mode: bool = False,
    diff: bool = False,
    backup: Any = backup_copy,
) -> dict[str, Any]:
    """Read, merge and (unless nothing changes or CHECK_MODE) write PARAMS["path"].

    Raises MergeFailedError, with the file untouched, for unreadable, non-UTF-8 or malformed input.
    """
    path = params["path"]
    target = os.path.realpath(path)  # a symlink's target is the file to edit
    try:
        with open(target, "rb") as handle:
            raw = handle.read()
        exists = True
    except FileNotFoundError:
        raw, exists = b"", False
    except OSError as exc:
        raise MergeFailedError(f"cannot read {path}: {exc}") from exc
    bom = raw.startswith(BOM)
    try:
        before = raw[len(BOM) if bom else 0 :].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MergeFailedError(
            f"{path}: not UTF-8 (byte {exc.start + (len(BOM) if bom else 0)}); "
            "the file was left as it is"
        ) from exc
    try:
        after, managed = compute(params, before)
    except ValueError as exc:
        raise MergeFailedError(f"{path}: {exc}; the file was left as it is") from exc
    changed = after != before
    result: dict[str, Any] = {"changed": changed, "path": path, "managed": managed}
    if target != os.path.abspath(path):
        result["target"] = target
    if diff:
        result["diff"] = {
            "before": before,
            "after": after,
            "before_header": path,
            "after_header": path,
        }
    if changed and not check_mode:
        if params.get("backup") and exists:
            result["backup_file"] = backup(target)
        _write(target, (BOM if bom else b"") + after.encode("utf-8"), params["mode_bits"])
    return result


def main() -> None:
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "mode": {"type": "str", "choices": ["array", "object"], "default": "array"},
            "key": {"type": "str", "default": ""},
            "entries": {"type": "list", "elements": "dict", "default": []},
            "managed_field": {"type": "str", "default": ""},
            "managed_values": {"type": "list", "elements": "str", "default": []},
            "managed_prefix": {"type": "str", "default": ""},
            "settings": {"type": "dict", "default": {}},
            "new_file": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "mode_bits": {"type": "str", "default": "0600"},
            "backup": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    try:
        result = apply(module.params, module.check_mode, module._diff, module.backup_local)
    except MergeFailedError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
