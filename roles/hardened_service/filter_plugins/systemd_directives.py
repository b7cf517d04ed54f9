"""The systemd_directives filter: a dict of unit directives as the lines of a unit section."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any


def _value(item: object) -> str:
    if isinstance(item, bool):
        return "yes" if item else "no"
    return str(item)


def systemd_directives(directives: Mapping[str, Any]) -> str:
    """``Key=value`` lines, keys sorted case-insensitively (as Jinja's dictsort).

    A list (any non-string iterable) renders the directive once per item, a boolean renders
    as yes/no and a null value not at all (how an override removes a directive). The lines
    are joined by newlines, without a trailing one: the template's line break ends the last.
    """
    lines: list[str] = []
    for key in sorted(directives, key=str.lower):
        value = directives[key]
        if value is None:
            continue
        items = value if isinstance(value, Iterable) and not isinstance(value, str) else [value]
        lines.extend(f"{key}={_value(item)}" for item in items)
    return "\n".join(lines)


class FilterModule:
    def filters(self) -> dict[str, Callable[..., str]]:
        return {"systemd_directives": systemd_directives}
