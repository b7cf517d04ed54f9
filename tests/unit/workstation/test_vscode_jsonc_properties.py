"""Property-based tests of roles/workstation/library/vscode_jsonc_merge.py (hypothesis).

Generated VS Code files: keybindings.json (a top-level array) and tasks.json (an array under
"tasks"), with the user's own entries, stale managed entries anywhere, line and block comments
in every gap (also between an entry and its comma), trailing commas, LF or CRLF, with or without
a final newline and a byte order mark. Each document is built from pieces whose kind is known:

- atoms the user wrote: what precedes the array's ``[``, each of their entries, each comment,
  and the ``]`` with everything after it;
- managed entries (each with the comma that follows it), which the merge replaces;
- whitespace gaps and the commas after the user's entries.

The properties:

1. bytes outside the managed entries never change: the text up to and including ``[`` and from
   ``]`` to the end is byte-identical, every user atom is in the result in the same order, and
   the exact text between two consecutive user atoms with no managed entry between them is kept
   (except after the user's last entry, where the managed entries go, and a comma may be added);
2. the result holds the user's values in order, then the managed entries once each;
3. a second merge is a no-op, and ``state: absent`` then leaves every user atom in place;
4. malformed input (a stray ``@`` in any gap) fails with the line and column of the ``@`` and
   leaves the file's bytes alone;
5. a comments-only file keeps its text, a CRLF file stays CRLF, a BOM stays.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .module_loader import load_module

m = load_module()

LABELS = ["startall + warmup", "stopall"]
BINDINGS = [
    {"key": "ctrl+shift+9", "command": "workbench.action.tasks.runTask", "args": LABELS[0]},
    {"key": "ctrl+shift+-", "command": "workbench.action.tasks.runTask", "args": LABELS[1]},
]
TASKS = [
    {"label": "stopall", "type": "process", "command": "ssh", "detail": "jina-stack: stop"},
    {"label": "startall", "type": "process", "command": "ssh", "detail": "jina-stack: start"},
]
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def params(kind: str, state: str = "present") -> dict:
    base = {
        "mode": "array",
        "settings": {},
        "state": state,
        "mode_bits": "0600",
        "backup": False,
    }
    if kind == "keybindings":
        return base | {
            "key": "",
            "entries": BINDINGS,
            "managed_field": "args",
            "managed_values": LABELS,
            "managed_prefix": "",
            "new_file": {},
        }
    return base | {
        "key": "tasks",
        "entries": TASKS,
        "managed_field": "detail",
        "managed_values": [],
        "managed_prefix": "jina-stack:",
        "new_file": {"version": "2.0.0"},
    }


@dataclass
class Piece:
    kind: str  # "atom" (the user's), "managed", "gap" (whitespace), "comma" (after a user entry)
    text: str
    value: object = None  # a user entry's value
    entry: bool = False  # an atom that is one of the user's entries


@dataclass
class Doc:
    kind: str
    pieces: list[Piece]
    nl: str

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.pieces)

    def offsets(self) -> list[int]:
        out, pos = [], 0
        for piece in self.pieces:
            out.append(pos)
            pos += len(piece.text)
        return out


# --- strategies ------------------------------------------------------------------------------

SAFE = st.text(alphabet=st.sampled_from(list("abcxyz 019,:[]{}\"'/\\é😀")), min_size=0, max_size=12)


@st.composite
def comment(draw: st.DrawFn) -> list[Piece]:
    """A comment atom; a line comment comes with the newline (a gap) that ends it."""
    body = draw(SAFE)
    if draw(st.booleans()):
        return [Piece("atom", "//" + body), Piece("gap", "\n" + draw(st.sampled_from(["", "  "])))]
    return [Piece("atom", "/*" + body.replace("*/", "") + "*/")]


@st.composite
def gap(draw: st.DrawFn, allow_comments: bool = True) -> list[Piece]:
    out = [Piece("gap", draw(st.sampled_from(["", " ", "\n  ", "\n    ", "\n\n  ", "\t"])))]
    if allow_comments:
        for pieces in draw(st.lists(comment(), max_size=2)):
            out += pieces
            out.append(Piece("gap", draw(st.sampled_from(["", " ", "\n  "]))))
    return out


USER_VALUES = st.one_of(
    st.fixed_dictionaries(
        {"key": SAFE, "command": SAFE},
        optional={"when": SAFE, "args": st.sampled_from(["other", "build", ""])},
    ),
    st.integers(-5, 100),
    SAFE,
)
MANAGED = st.one_of(
    st.sampled_from(BINDINGS),
    st.builds(
        lambda label, key: {"key": key, "command": "workbench.action.tasks.runTask", "args": label},
        st.sampled_from(LABELS),
        SAFE,
    ),
)
MANAGED_TASKS = st.builds(
    lambda label, detail: {"label": label, "type": "shell", "detail": "jina-stack:" + detail},
    SAFE,
    SAFE,
)
USER_TASKS = st.fixed_dictionaries(
    {"label": SAFE, "type": st.just("shell"), "command": SAFE},
    optional={"detail": st.sampled_from(["mine", "jina-stacks are mine", ""])},
)


def render(value: object, draw: st.DrawFn) -> str:
    style = draw(st.sampled_from(["compact", "spaced", "indented"]))
    if style == "compact":
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if style == "spaced":
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value, indent=4, ensure_ascii=False).replace("\n", "\n  ")


@st.composite
def documents(draw: st.DrawFn, kind: str | None = None) -> Doc:
    kind = kind or draw(st.sampled_from(["keybindings", "tasks"]))
    pieces: list[Piece] = []
    for c in draw(st.lists(comment(), max_size=2)):
        pieces += c
        pieces.append(Piece("gap", "\n"))
    if kind == "keybindings":
        pieces.append(Piece("atom", "["))
        close_tail = draw(st.sampled_from(["", "\n", "\n\n", " // end\n"]))
    else:
        pieces.append(
            Piece(
                "atom",
                draw(
                    st.sampled_from(
                        [
                            '{\n  "version": "2.0.0",\n  "tasks": [',
                            "{\n  // See https://go.microsoft.com/fwlink/?LinkId=733558\n"
                            '  "version": "2.0.0", "tasks": [',
                            '{"tasks": [',
                        ]
                    )
                ),
            )
        )
        close_tail = draw(st.sampled_from(["\n}\n", "}", ',\n  "inputs": [], // mine\n}\n', "\n}"]))
    items = draw(st.lists(st.booleans(), max_size=6))  # True: a stale managed entry
    user_strategy = USER_VALUES if kind == "keybindings" else USER_TASKS
    managed_strategy = MANAGED if kind == "keybindings" else MANAGED_TASKS
    for index, managed in enumerate(items):
        pieces += draw(gap())
        if managed:
            text = render(draw(managed_strategy), draw)
            pieces.append(Piece("managed", text))
        else:
            value = draw(user_strategy)
            pieces.append(Piece("atom", render(value, draw), value=value, entry=True))
        last = index == len(items) - 1
        if not last or draw(st.booleans()):  # a trailing comma is allowed
            before_comma = draw(gap(allow_comments=True)) if draw(st.booleans()) else []
            comma = Piece("managed" if managed else "comma", ",")
            if managed:
                # The comma, and the gap before it, go with the managed entry - but a comment
                # in that gap is the user's (it stays).
                pieces += [
                    p if p.kind == "atom" else Piece("managed", p.text) for p in before_comma
                ]
            else:
                pieces += before_comma
            pieces.append(comma)
    pieces += draw(gap())
    pieces.append(Piece("atom", "]" + close_tail))
    nl = draw(st.sampled_from(["\n", "\r\n"]))
    if draw(st.booleans()) and pieces[-1].text.endswith("\n"):
        pieces[-1] = Piece("atom", pieces[-1].text[:-1])  # no final newline
    for piece in pieces:
        piece.text = piece.text.replace("\n", nl)
    return Doc(kind, pieces, nl)


# --- helpers ---------------------------------------------------------------------------------


def atoms(doc: Doc) -> list[tuple[int, Piece]]:
    return [(i, p) for i, p in enumerate(doc.pieces) if p.kind == "atom"]


def assert_user_bytes_kept(doc: Doc, out: str) -> None:
    text = doc.text
    pieces = doc.pieces
    opening = next(i for i, p in enumerate(pieces) if p.kind == "atom" and p.text.endswith("["))
    prefix = "".join(p.text for p in pieces[: opening + 1])
    assert out.startswith(prefix), (text, out)
    assert out.endswith(pieces[-1].text), (text, out)
    # Every atom, in order.
    pos = 0
    for _, atom in atoms(doc):
        found = out.find(atom.text, pos)
        assert found >= 0, (atom.text, text, out)
        pos = found + len(atom.text)
    # The exact text between consecutive atoms with nothing managed in between, up to the
    # user's last entry.
    entries = [i for i, p in enumerate(pieces) if p.entry]
    limit = entries[-1] if entries else -1
    listed = atoms(doc)
    offsets = doc.offsets()
    for (i, _), (j, _) in itertools.pairwise(listed):
        if j > limit:
            break
        if any(pieces[k].kind == "managed" for k in range(i, j)):
            continue
        span = text[offsets[i] : offsets[j] + len(pieces[j].text)]
        assert span in out, (span, text, out)


def managed_in(kind: str, data: object) -> list[object]:
    array = data if kind == "keybindings" else data["tasks"]  # type: ignore[index]
    is_managed = m._managed_predicate(
        params(kind)["managed_field"],
        params(kind)["managed_values"],
        params(kind)["managed_prefix"],
    )
    return [e for e in array if is_managed(e)]


def user_values(doc: Doc) -> list[object]:
    return [p.value for p in doc.pieces if p.entry]


# --- the properties --------------------------------------------------------------------------


@SETTINGS
@given(documents())
def test_bytes_outside_the_managed_entries_never_change(doc: Doc):
    out, managed = m.compute(params(doc.kind), doc.text)
    assert managed == 2
    assert_user_bytes_kept(doc, out)
    data = m.loads(out)
    array = data if doc.kind == "keybindings" else data["tasks"]
    expected = BINDINGS if doc.kind == "keybindings" else TASKS
    assert array == [*user_values(doc), *expected]
    if "\r\n" in doc.text:  # (a file without a line break has no line ending to keep)
        assert re.search(r"(?<!\r)\n", out) is None, out


@SETTINGS
@given(documents())
def test_a_second_merge_is_a_no_op_and_absent_keeps_the_user_bytes(doc: Doc):
    once, _ = m.compute(params(doc.kind), doc.text)
    twice, _ = m.compute(params(doc.kind), once)
    assert twice == once
    removed, managed = m.compute(params(doc.kind, "absent"), once)
    assert managed == 0
    assert_user_bytes_kept(doc, removed)
    data = m.loads(removed)
    assert managed_in(doc.kind, data) == []
    assert (data if doc.kind == "keybindings" else data["tasks"]) == user_values(doc)
    assert m.compute(params(doc.kind, "absent"), removed)[0] == removed


@SETTINGS
@given(doc=documents(), data=st.data(), bom=st.booleans())
def test_malformed_input_fails_with_line_and_column_and_the_file_is_left_alone(
    doc: Doc, data: st.DataObject, bom: bool, tmp_path_factory: pytest.TempPathFactory
):
    gaps = [i for i, p in enumerate(doc.pieces) if p.kind == "gap"]
    if not gaps:
        gaps = [len(doc.pieces) - 1]
    where = data.draw(st.sampled_from(gaps))
    pieces = list(doc.pieces)
    # After the gap's whitespace (so never inside a line comment that the gap ends).
    pieces.insert(where + 1, Piece("gap", " @ "))
    text = "".join(p.text for p in pieces)
    pos = sum(len(p.text) for p in pieces[: where + 1]) + 1
    lf_text = text.replace("\r\n", "\n") if doc.nl == "\r\n" else text
    lf_pos = pos - text.count("\r\n", 0, pos) if doc.nl == "\r\n" else pos
    line = lf_text.count("\n", 0, lf_pos) + 1
    column = lf_pos - (lf_text.rfind("\n", 0, lf_pos) + 1) + 1
    path = tmp_path_factory.mktemp("bad") / "keybindings.json"
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    path.write_bytes(raw)
    with pytest.raises(
        m.MergeFailedError, match=rf"at line {line} column {column}\b.*left as it is"
    ):
        m.apply(params(doc.kind) | {"path": str(path), "backup": True})
    assert path.read_bytes() == raw
    assert sorted(p.name for p in path.parent.iterdir()) == ["keybindings.json"]


@SETTINGS
@given(st.lists(comment(), min_size=1, max_size=4), st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_a_comments_only_file_keeps_its_text(comments: list[list[Piece]], nl: str, final: bool):
    text = "".join(
        p.text + (nl if p.kind == "atom" and p.text.startswith("/*") else "")
        for c in comments
        for p in c
    ).replace("\n", nl)
    text = text.replace("\r\r\n", "\r\n")
    if not final:
        text = text.rstrip("\r\n")
    for kind in ("keybindings", "tasks"):
        out, managed = m.compute(params(kind), text)
        assert managed == 2
        assert out.startswith(text), (text, out)
        assert m.compute(params(kind), out)[0] == out


@SETTINGS
@given(doc=documents(), bom=st.booleans())
def test_files_keep_bom_line_endings_and_final_newline(doc: Doc, bom: bool, tmp_path_factory):
    path = tmp_path_factory.mktemp("ok") / "file.json"
    raw = (b"\xef\xbb\xbf" if bom else b"") + doc.text.encode("utf-8")
    path.write_bytes(raw)
    result = m.apply(params(doc.kind) | {"path": str(path)})
    after = path.read_bytes()
    assert after.startswith(b"\xef\xbb\xbf") == bom
    assert after.endswith(doc.nl.encode()) == raw.endswith(doc.nl.encode())
    if "\r\n" in doc.text:
        assert re.search(rb"(?<!\r)\n", after) is None
    assert m.apply(params(doc.kind) | {"path": str(path)})["changed"] is False
    assert result["managed"] == 2


# --- the file itself ---------------------------------------------------------------------------


def test_a_symlinked_file_is_followed_and_the_link_kept(tmp_path: Path):
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    target = dotfiles / "keybindings.json"
    target.write_text("// mine\n[\n]\n")
    link = tmp_path / "keybindings.json"
    link.symlink_to(target)
    result = m.apply(params("keybindings") | {"path": str(link)})
    assert link.is_symlink()
    assert link.resolve() == target
    assert result["target"] == str(target)
    assert m.loads(target.read_text()) == BINDINGS
    assert target.read_text().startswith("// mine\n[")


def test_backup_keeps_the_old_bytes(tmp_path: Path):
    path = tmp_path / "tasks.json"
    old = b'{\r\n  "version": "2.0.0", // mine\r\n  "tasks": []\r\n}\r\n'
    path.write_bytes(old)
    result = m.apply(params("tasks") | {"path": str(path), "backup": True})
    backup = Path(result["backup_file"])
    assert backup.parent == tmp_path
    assert backup.name.startswith("tasks.json.")
    assert backup.name.endswith("~")
    assert backup.read_bytes() == old
    again = m.apply(params("tasks") | {"path": str(path), "backup": True})
    assert "backup_file" not in again  # nothing changed, nothing copied


def test_written_file_is_fsynced_before_the_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    events: list[str] = []
    real_fsync, real_replace = m.os.fsync, m.os.replace

    def fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(m.os, "fsync", fsync)
    monkeypatch.setattr(m.os, "replace", replace)
    m.apply(params("keybindings") | {"path": str(tmp_path / "keybindings.json")})
    assert events == ["fsync", "replace", "fsync"]  # the file, the rename, the directory


def test_a_comment_between_a_managed_entry_and_its_comma_stays():
    text = (
        "[\n  " + json.dumps(BINDINGS[0]) + ' /* mine: why ctrl+shift+9 */,\n  {"key": "f1"}\n]\n'
    )
    out, _ = m.compute(params("keybindings"), text)
    assert "/* mine: why ctrl+shift+9 */" in out
    removed, _ = m.compute(params("keybindings", "absent"), out)
    assert "/* mine: why ctrl+shift+9 */" in removed
    assert m.loads(removed) == [{"key": "f1"}]


def test_non_utf8_fails_and_is_left_alone(tmp_path: Path):
    path = tmp_path / "keybindings.json"
    path.write_bytes(b"[\n  // caf\xe9\n]\n")
    with pytest.raises(m.MergeFailedError, match=r"not UTF-8 \(byte 10\)"):
        m.apply(params("keybindings") | {"path": str(path)})
    assert path.read_bytes() == b"[\n  // caf\xe9\n]\n"
