"""The four shapes of `input`, checked by hand so each error names the offending item."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jina_openai.api.errors import ApiError

SHAPES = (
    "a string, an array of strings, an array of token ids (integers) "
    "or an array of arrays of token ids"
)


@dataclass(frozen=True)
class NormalizedInput:
    items: list[str] | list[list[int]]
    token_ids: bool  # items are token id lists
    single: bool  # the request held one input (a string or one token id array)


def normalize_input(value: Any, *, max_inputs: int) -> NormalizedInput:
    if isinstance(value, str):
        if not value:
            raise _invalid("'input' must not be an empty string", "input", "empty_input")
        return NormalizedInput([value], token_ids=False, single=True)
    if not isinstance(value, list):
        raise _invalid(f"'input' must be {SHAPES}", "input", "invalid_type")
    if not value:
        raise _invalid("'input' must not be an empty array", "input", "empty_input")
    first = value[0]
    if _is_token_id(first):
        _check_token_ids(value, "input")
        return NormalizedInput([value], token_ids=True, single=True)
    if len(value) > max_inputs:
        raise _invalid(
            f"'input' holds {len(value)} items; this server takes at most {max_inputs} per request",
            "input",
            "too_many_inputs",
        )
    if isinstance(first, str):
        for position, item in enumerate(value):
            param = f"input[{position}]"
            if not isinstance(item, str):
                raise _invalid(
                    f"'{param}' must be a string like the other items", param, "invalid_type"
                )
            if not item:
                raise _invalid(f"'{param}' must not be an empty string", param, "empty_input")
        return NormalizedInput(value, token_ids=False, single=False)
    if isinstance(first, list):
        for position, item in enumerate(value):
            param = f"input[{position}]"
            if not isinstance(item, list):
                raise _invalid(
                    f"'{param}' must be an array of token ids like the other items",
                    param,
                    "invalid_type",
                )
            if not item:
                raise _invalid(f"'{param}' must not be an empty array", param, "empty_input")
            _check_token_ids(item, param)
        return NormalizedInput(value, token_ids=True, single=False)
    raise _invalid(f"'input' must be {SHAPES}", "input[0]", "invalid_type")


def _is_token_id(value: Any) -> bool:
    return type(value) is int  # bool is an int subclass: excluded on purpose


def _check_token_ids(ids: list[Any], param: str) -> None:
    for position, token in enumerate(ids):
        if not _is_token_id(token):
            raise _invalid(
                f"'{param}[{position}]' must be an integer token id", param, "invalid_type"
            )


def _invalid(message: str, param: str, code: str) -> ApiError:
    return ApiError(400, message, param=param, code=code)
