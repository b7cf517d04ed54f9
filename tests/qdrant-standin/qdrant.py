#!/usr/bin/env python3
"""qdrant - a STAND-IN for the Qdrant vector database, for tests only.

This program is NOT Qdrant. It is a small, single-file, standard-library-only Python
imitation of the part of Qdrant's REST API that this project's roles, its tests and the
Roo Code client use. It exists because the real Qdrant release cannot be downloaded on the
test machines. It says so in `--version`, in `GET /` and in its README.

Searches are exact brute force over all points (no HNSW), there is no gRPC, no TLS, no
cluster mode, no named/sparse/multi vectors and no quantization. What it does take
seriously: the response envelopes, the API-key rules and durability (a write-ahead log
that is fsync'ed before a write is acknowledged).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import datetime as dt
import fcntl
import hashlib
import heapq
import hmac
import http.server
import io
import json
import logging
import math
import operator
import os
import re
import signal
import socket
import socketserver
import struct
import sys
import tarfile
import threading
import time
import uuid
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import parse_qs, unquote, urlsplit

# The release builder (build_release.py) rewrites this line.
VERSION = "0.0.0-dev"

STANDIN_NOTE = "stand-in for tests, not the real Qdrant"
LOG = logging.getLogger("qdrant.standin")

# ---------------------------------------------------------------------------------------
# YAML: a strict parser for the block subset that Ansible's `to_nice_yaml` emits
# ---------------------------------------------------------------------------------------


class ConfigError(Exception):
    """A configuration problem; the message says where (file:line or variable)."""


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
# Numbers as PyYAML (which writes the file for Ansible's to_nice_yaml) reads them, minus the
# YAML 1.1 oddities (octal 0777, sexagesimal, underscores): those stay strings.
_INT_RE = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT_RE = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+][0-9]+)?")
_INF_RE = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN_RE = re.compile(r"\.(nan|NaN|NAN)")
_KEY_END_RE = re.compile(r":(?=[ \t]|$)")
_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


class YamlInt(int):
    """An int read from an unquoted scalar; keeps its text for keys that want a string."""

    text = ""


class YamlFloat(float):
    """A float read from an unquoted scalar; keeps its text for keys that want a string."""

    text = ""


def resolve_plain_scalar(text: str) -> Any:
    """Resolve an unquoted scalar: null, booleans, ints, floats, else the string itself."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    number: YamlInt | YamlFloat
    if _INT_RE.fullmatch(text):
        number = YamlInt(int(text, 10))
    elif _HEX_RE.fullmatch(text):
        number = YamlInt(int(text[2:], 16))
    elif _FLOAT_RE.fullmatch(text):
        number = YamlFloat(float(text))
    elif _INF_RE.fullmatch(text):
        number = YamlFloat(-math.inf if text.startswith("-") else math.inf)
    elif _NAN_RE.fullmatch(text):
        number = YamlFloat(math.nan)
    else:
        return text
    number.text = text
    return number


def _fold_lines(segments: list[str], escapes: bool) -> str:
    """Join the raw lines of a multi-line flow scalar the way YAML folds them."""
    out = segments[0].rstrip(" \t") if len(segments) > 1 else segments[0]
    newlines = 0
    for index, raw in enumerate(segments[1:], start=1):
        last = index == len(segments) - 1
        seg = raw.lstrip(" \t") if last else raw.strip(" \t")
        if escapes and _ends_with_escape(out):
            out = out[:-1] + seg
            newlines = 0
            continue
        if seg == "" and not last:
            newlines += 1
            continue
        out += ("\n" * newlines if newlines else " ") + seg
        newlines = 0
    return out


def _ends_with_escape(text: str) -> bool:
    count = len(text) - len(text.rstrip("\\"))
    return count % 2 == 1


class _YamlParser:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
        self.i = 0
        self.pending: tuple[int, int, str] | None = None

    def error(self, index: int, message: str) -> ConfigError:
        return ConfigError(f"{self.filename}:{index + 1}: {message}")

    # -- line scanning ------------------------------------------------------------------

    def _indent(self, index: int) -> int:
        raw = self.lines[index]
        stripped = raw.lstrip(" ")
        if stripped.startswith("\t"):
            raise self.error(index, "tab characters are not allowed in indentation")
        return len(raw) - len(stripped)

    def peek(self) -> tuple[int, int, str] | None:
        """The next significant line as (index, indent, content), or None at the end."""
        if self.pending is not None:
            return self.pending
        while self.i < len(self.lines):
            raw = self.lines[self.i]
            content = raw.strip(" \t")
            if content == "" or content.startswith("#"):
                self.i += 1
                continue
            indent = self._indent(self.i)
            if indent == 0 and (content == "..." or content.startswith("... ")):
                self._expect_end(self.i + 1)
                self.i = len(self.lines)
                return None
            if indent == 0 and (content == "---" or content.startswith("--- ")):
                raise self.error(self.i, "only one YAML document is supported")
            return self.i, indent, content.rstrip(" \t")
        return None

    def _expect_end(self, start: int) -> None:
        for index in range(start, len(self.lines)):
            content = self.lines[index].strip()
            if content and not content.startswith("#"):
                raise self.error(index, "content after the document end marker `...`")

    def advance(self) -> None:
        if self.pending is not None:
            self.pending = None
            return
        self.peek()
        self.i += 1

    # -- structure ----------------------------------------------------------------------

    def parse_document(self) -> Any:
        while self.i < len(self.lines):
            content = self.lines[self.i].strip()
            if content.startswith("%"):
                raise self.error(self.i, "YAML directives are not supported")
            if content == "" or content.startswith("#"):
                self.i += 1
                continue
            if content == "---" or content.startswith("--- #"):
                self.i += 1
            break
        token = self.peek()
        if token is None:
            return None
        value = self.parse_node(token[1], -1)
        rest = self.peek()
        if rest is not None:
            raise self.error(rest[0], "unexpected content (bad indentation?)")
        return value

    def parse_node(self, indent: int, parent_indent: int) -> Any:
        token = self.peek()
        assert token is not None
        index, _, content = token
        if _is_seq_item(content):
            return self.parse_seq(indent)
        if self.split_key(index, content) is not None:
            return self.parse_map(indent)
        self.advance()
        return self.parse_value(index, content, parent_indent)

    def parse_map(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            token = self.peek()
            if token is None or token[1] < indent:
                return result
            index, line_indent, content = token
            if line_indent > indent:
                raise self.error(index, "unexpected indentation")
            if _is_seq_item(content):
                raise self.error(index, "a list item where a mapping key was expected")
            split = self.split_key(index, content)
            if split is None:
                raise self.error(index, f"expected `key: value`, found {content!r}")
            key, rest = split
            if key in result:
                raise self.error(index, f"duplicate key {key!r}")
            self.advance()
            if rest == "" or rest.startswith("#"):
                following = self.peek()
                if following is not None and following[1] > indent:
                    result[key] = self.parse_node(following[1], indent)
                elif (
                    following is not None and following[1] == indent and _is_seq_item(following[2])
                ):
                    result[key] = self.parse_seq(indent)
                else:
                    result[key] = None
            else:
                result[key] = self.parse_value(index, rest, indent)

    def parse_seq(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while True:
            token = self.peek()
            if token is None or token[1] < indent:
                return result
            index, line_indent, content = token
            if line_indent > indent:
                raise self.error(index, "unexpected indentation")
            if not _is_seq_item(content):
                return result
            rest = content[1:]
            stripped = rest.lstrip(" ")
            self.advance()
            if stripped == "" or stripped.startswith("#"):
                following = self.peek()
                if following is not None and following[1] > indent:
                    result.append(self.parse_node(following[1], indent))
                else:
                    result.append(None)
                continue
            sub_indent = indent + 1 + len(rest) - len(stripped)
            self.pending = (index, sub_indent, stripped)
            result.append(self.parse_node(sub_indent, indent))

    def split_key(self, index: int, content: str) -> tuple[str, str] | None:
        """Split `key: rest` (rest left-stripped) or return None if this is no mapping key."""
        first = content[0]
        if first in "\"'":
            end = _find_closing_quote(content, 0)
            if end is None:
                return None
            after = content[end + 1 :].lstrip(" \t")
            if not after.startswith(":") or not (len(after) == 1 or after[1] in " \t"):
                return None
            raw = content[1:end]
            key = _decode_double(raw, self, index) if first == '"' else raw.replace("''", "'")
            return key, after[1:].lstrip(" \t")
        indicator = first in "-?:" and (len(content) == 1 or content[1] in " \t")
        if first in "[]{}&*!|>%@`,#" or indicator:
            if first in "&*!" or (first == "?" and indicator):
                raise self.error(index, f"unsupported YAML feature in key {content!r}")
            return None
        comment = _comment_start(content)
        head = content if comment is None else content[:comment]
        match = _KEY_END_RE.search(head)
        if match is None:
            return None
        key = head[: match.start()].rstrip(" \t")
        if key == "":
            raise self.error(index, "empty mapping key")
        return key, content[match.end() :].lstrip(" \t")

    # -- scalars ------------------------------------------------------------------------

    def parse_value(self, index: int, text: str, parent_indent: int) -> Any:
        first = text[0]
        if first in "\"'":
            return self.parse_quoted(index, text, parent_indent)
        if first in "{[":
            body = text
            comment = _comment_start(text)
            if comment is not None:
                body = text[:comment].rstrip(" \t")
            if body in ("{}", "[]"):
                return {} if body == "{}" else []
            raise self.error(index, "flow collections other than {} and [] are not supported")
        if first in "|>":
            raise self.error(index, "block scalars (| and >) are not supported")
        if first in "&*!":
            raise self.error(index, "anchors, aliases and tags are not supported")
        if first in "%@`]},":
            raise self.error(index, f"a plain value may not start with {first!r}")
        if _is_seq_item(text) or text.startswith(("? ", ": ")) or text in ("?", ":"):
            raise self.error(index, "a nested block may not start on the line of its key")
        comment = _comment_start(text)
        first_line = (text if comment is None else text[:comment]).rstrip(" \t")
        if _KEY_END_RE.search(first_line):
            raise self.error(index, "mapping values are not allowed here (quote the value?)")
        segments = [first_line]
        if comment is None:
            segments.extend(self._plain_continuation(parent_indent))
        return resolve_plain_scalar(_fold_lines(segments, escapes=False))

    def _plain_continuation(self, parent_indent: int) -> list[str]:
        segments: list[str] = []
        blanks = 0
        index = self.i
        while index < len(self.lines):
            raw = self.lines[index]
            content = raw.strip(" \t")
            if content == "":
                blanks += 1
                index += 1
                continue
            if content.startswith("#") or self._indent(index) <= parent_indent:
                break
            comment = _comment_start(content)
            if comment is not None:
                content = content[:comment].rstrip(" \t")
            if _KEY_END_RE.search(content):
                raise self.error(index, "mapping values are not allowed here (bad indentation?)")
            segments.extend([""] * blanks)
            segments.append(content)
            blanks = 0
            index += 1
            self.i = index
            if comment is not None:
                break
        return segments

    def parse_quoted(self, index: int, text: str, parent_indent: int) -> str:
        quote = text[0]
        buffer = text
        start_index = index
        end = _find_closing_quote(buffer, 0)
        while end is None:
            if self.i >= len(self.lines):
                raise self.error(start_index, "unterminated quoted string")
            raw = self.lines[self.i]
            if raw.strip(" \t") != "" and self._indent(self.i) <= parent_indent:
                raise self.error(self.i, "unterminated quoted string (bad indentation?)")
            index = self.i
            self.i += 1
            buffer += "\n" + raw
            end = _find_closing_quote(buffer, 0)
        after = buffer[end + 1 :].strip(" \t")
        if after and not after.startswith("#"):
            raise self.error(index, f"unexpected text after a quoted string: {after!r}")
        inner = buffer[1:end]
        if quote == "'":
            return _fold_lines(inner.split("\n"), escapes=False).replace("''", "'")
        return _decode_double(_fold_lines(inner.split("\n"), escapes=True), self, start_index)


def _is_seq_item(content: str) -> bool:
    return content == "-" or content.startswith(("- ", "-\t"))


def _comment_start(text: str) -> int | None:
    match = re.search(r"[ \t]#", text)
    return match.start() if match else None


def _find_closing_quote(text: str, start: int) -> int | None:
    quote = text[start]
    index = start + 1
    while index < len(text):
        char = text[index]
        if quote == '"' and char == "\\":
            index += 2
            continue
        if char == quote:
            if quote == "'" and index + 1 < len(text) and text[index + 1] == "'":
                index += 2
                continue
            return index
        index += 1
    return None


def _decode_double(raw: str, parser: _YamlParser, index: int) -> str:
    out: list[str] = []
    pos = 0
    while pos < len(raw):
        char = raw[pos]
        if char != "\\":
            out.append(char)
            pos += 1
            continue
        if pos + 1 >= len(raw):
            raise parser.error(index, "dangling backslash in a double-quoted string")
        code = raw[pos + 1]
        if code in _ESCAPES:
            out.append(_ESCAPES[code])
            pos += 2
        elif code in _HEX_ESCAPES:
            width = _HEX_ESCAPES[code]
            digits = raw[pos + 2 : pos + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise parser.error(index, f"bad escape \\{code}{digits}")
            out.append(chr(int(digits, 16)))
            pos += 2 + width
        else:
            raise parser.error(index, f"unknown escape \\{code}")
    return "".join(out)


def parse_yaml(text: str, filename: str = "<string>") -> Any:
    """Parse the block-YAML subset; raise ConfigError(file:line: message) on anything else."""
    return _YamlParser(text, filename).parse_document()


# ---------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------

# Real Qdrant keys the stand-in accepts (and, apart from the honoured ones, ignores).
KNOWN_KEYS: dict[str, frozenset[str]] = {
    "": frozenset(
        {
            "log_level",
            "logger",
            "storage",
            "service",
            "cluster",
            "telemetry_disabled",
            "tls",
            "debugger",
            "debug",
            "gpu",
            "inference",
            "audit",
            "feature_flags",
        }
    ),
    "service": frozenset(
        {
            "host",
            "http_port",
            "grpc_port",
            "api_key",
            "read_only_api_key",
            "max_request_size_mb",
            "max_workers",
            "enable_cors",
            "enable_tls",
            "verify_https_client_certificate",
            "jwt_rbac",
            "hide_jwt_dashboard",
            "static_content_dir",
            "enable_static_content",
            "hardware_reporting",
            "max_grpc_request_size_mb",
            "alt_api_key",
            "alt_read_only_api_key",
        }
    ),
    "storage": frozenset(
        {
            "storage_path",
            "snapshots_path",
            "snapshots_config",
            "temp_path",
            "on_disk_payload",
            "update_concurrency",
            "wal",
            "hnsw_index",
            "optimizers",
            "optimizers_overwrite",
            "performance",
            "collection",
            "shard_transfer_method",
            "node_type",
            "update_queue_size",
            "handle_collection_load_errors",
            "recovery_mode",
            "async_scorer",
            "max_collections",
            "update_rate_limit",
            "quantization",
        }
    ),
}


@dataclass
class Settings:
    log_level: str = "INFO"
    storage_path: str = "./storage"
    snapshots_path: str = "./snapshots"
    host: str = "0.0.0.0"
    http_port: int = 6333
    api_key: str | None = None
    read_only_api_key: str | None = None
    max_request_size_mb: int = 32
    enable_tls: bool = False
    # (level, message) pairs to log once logging is configured.
    notes: list[tuple[int, str]] = field(default_factory=list)


def _set_path(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def load_settings(
    config_path: str | None, environ: Mapping[str, str], cwd: str | None = None
) -> Settings:
    """Built-in defaults, then the --config-path file, then QDRANT__SECTION__KEY variables."""
    settings = Settings()
    tree: dict[str, Any] = {}
    sources: dict[tuple[str, ...], str] = {}
    if config_path is not None:
        try:
            with open(config_path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_path}: cannot read the configuration file: {exc}") from exc
        parsed = parse_yaml(text, config_path)
        if parsed is None:
            parsed = {}
        if not isinstance(parsed, dict):
            raise ConfigError(f"{config_path}: the top level must be a mapping")
        tree = parsed
    for name in sorted(environ):
        if not name.startswith("QDRANT__"):
            continue
        parts = [part.lower() for part in name[len("QDRANT__") :].split("__")]
        if any(part == "" for part in parts):
            settings.notes.append((logging.WARNING, f"ignoring malformed variable {name}"))
            continue
        _set_path(tree, parts, environ[name])
        sources[tuple(parts)] = f"environment variable {name}"

    def where(*path: str) -> str:
        return sources.get(path, config_path or "<defaults>")

    for section in ("service", "storage", "cluster", "tls"):
        if section in tree and tree[section] is not None and not isinstance(tree[section], dict):
            raise ConfigError(f"{where(section)}: `{section}` must be a mapping")
    for key in tree:
        if key not in KNOWN_KEYS[""]:
            settings.notes.append(
                (logging.WARNING, f"unknown configuration key `{key}` (real Qdrant ignores it)")
            )
        else:
            settings.notes.append((logging.DEBUG, f"configuration key `{key}` read"))
    for section in ("service", "storage"):
        for key in tree.get(section) or {}:
            dotted = f"{section}.{key}"
            if key not in KNOWN_KEYS[section]:
                settings.notes.append(
                    (logging.WARNING, f"unknown key `{dotted}` (real Qdrant ignores it)")
                )
            else:
                settings.notes.append((logging.DEBUG, f"key `{dotted}` accepted"))

    def get(*path: str) -> tuple[bool, Any]:
        node: Any = tree
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False, None
            node = node[part]
        return True, node

    def get_str(*path: str, optional: bool = False) -> str | None:
        found, value = get(*path)
        if not found or (value is None and optional):
            return None
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(f"{where(*path)}: `{'.'.join(path)}` must be a string")
        return getattr(value, "text", None) or str(value)

    def get_int(*path: str, low: int, high: int) -> int | None:
        found, value = get(*path)
        if not found or value is None:
            return None
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(
                f"{where(*path)}: `{'.'.join(path)}` must be an integer from {low} to {high},"
                f" got {value!r}"
            )
        return value

    def get_bool(*path: str) -> bool | None:
        found, value = get(*path)
        if not found or value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{where(*path)}: `{'.'.join(path)}` must be true or false")
        return value

    cwd = cwd or os.getcwd()
    level = get_str("log_level")
    if level is not None:
        settings.log_level = level
    host = get_str("service", "host")
    if host is not None:
        if host.strip() == "":
            raise ConfigError(f"{where('service', 'host')}: `service.host` must not be empty")
        settings.host = host.strip()
    port = get_int("service", "http_port", low=0, high=65535)
    if port is not None:
        settings.http_port = port
    size = get_int("service", "max_request_size_mb", low=1, high=1 << 20)
    if size is not None:
        settings.max_request_size_mb = size
    for attr in ("api_key", "read_only_api_key"):
        value = get_str("service", attr, optional=True)
        if value == "":
            settings.notes.append((logging.WARNING, f"`service.{attr}` is empty: treated as unset"))
            value = None
        setattr(settings, attr, value)
    if get_bool("cluster", "enabled"):
        settings.notes.append(
            (logging.WARNING, "cluster.enabled is true, but the stand-in runs a single node")
        )
    tls = get_bool("service", "enable_tls")
    if tls:
        settings.enable_tls = True
        settings.notes.append(
            (
                logging.WARNING,
                "service.enable_tls is true, but the stand-in serves plain HTTP only",
            )
        )
    for attr in ("storage_path", "snapshots_path"):
        value = get_str("storage", attr)
        if value is not None:
            if value.strip() == "":
                raise ConfigError(f"{where('storage', attr)}: `storage.{attr}` must not be empty")
            setattr(settings, attr, value)
    settings.storage_path = os.path.normpath(os.path.join(cwd, settings.storage_path))
    settings.snapshots_path = os.path.normpath(os.path.join(cwd, settings.snapshots_path))
    return settings


def python_log_level(spec: str) -> tuple[int, bool]:
    """Map Qdrant's log_level (e.g. `INFO`, `debug`, `info,actix=warn`) to a logging level."""
    first = spec.split(",")[0].strip().lower()
    levels = {
        "trace": logging.DEBUG,
        "debug": logging.DEBUG,
        "info": logging.INFO,
        "warn": logging.WARNING,
        "warning": logging.WARNING,
        "error": logging.ERROR,
        "off": logging.CRITICAL + 10,
    }
    if first in levels:
        return levels[first], True
    return logging.INFO, False


# ---------------------------------------------------------------------------------------
# Request validation helpers and errors
# ---------------------------------------------------------------------------------------


class ApiError(Exception):
    """An error answered with Qdrant's error envelope."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def bad_input(message: str) -> ApiError:
    return ApiError(400, f"Wrong input: {message}")


def format_error(message: str) -> ApiError:
    return ApiError(400, f"Format error in JSON body: {message}")


def unsupported(what: str) -> ApiError:
    return ApiError(400, f"Bad request: {what} is not supported by the Qdrant stand-in")


def collection_not_found(name: str) -> ApiError:
    return ApiError(404, f"Not found: Collection `{name}` doesn't exist!")


PointId = int | str
MAX_DIM = 65536
F32_MAX = 3.4028234663852886e38
DISTANCES = ("Cosine", "Euclid", "Dot", "Manhattan")
PAYLOAD_TYPES = ("keyword", "integer", "float", "geo", "text", "bool", "datetime", "uuid")
_COLLECTION_NAME_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def validate_collection_name(name: str) -> None:
    if not 1 <= len(name) <= 255 or _COLLECTION_NAME_BAD.search(name) or name in (".", ".."):
        raise ApiError(
            422,
            f"Validation error in path parameters: [name: collection name `{name}` is invalid:"
            ' 1 to 255 characters, none of <>:"/\\|?* or control characters]',
        )


def parse_point_id(value: Any) -> PointId:
    """Unsigned 64-bit integers or UUIDs (any form Qdrant accepts; answered hyphenated)."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 64:
        return value
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise format_error(
        f"value {json.dumps(value)} is not a valid point ID, "
        "valid values are either an unsigned integer or a UUID"
    )


def parse_url_point_id(text: str) -> PointId:
    if text.isdigit():
        return parse_point_id(int(text))
    return parse_point_id(text)


def id_sort_key(point_id: PointId) -> tuple[int, int]:
    if isinstance(point_id, int):
        return 0, point_id
    return 1, uuid.UUID(point_id).int


def opt_obj(body: Any, key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise format_error(f"`{key}` must be an object")
    return value


def opt_int(body: dict[str, Any], key: str, default: int | None, minimum: int = 0) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise format_error(f"`{key}` must be an integer, got {json.dumps(value)}")
    if value < minimum:
        raise ApiError(
            422,
            f"Validation error in JSON body: [{key}: value {value} invalid,"
            f" must be {minimum} or larger]",
        )
    return value


def opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    value = body.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise format_error(f"`{key}` must be true or false")
    return value


def opt_number(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise format_error(f"`{key}` must be a number")
    return float(value)


def parse_vector(value: Any, size: int) -> array:
    if isinstance(value, dict):
        if set(value) == {""}:
            value = value[""]
        else:
            raise unsupported("named vectors")
    if not isinstance(value, list) or (value and isinstance(value[0], list)):
        raise format_error("a vector must be a list of numbers (multivectors are not supported)")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise format_error(f"vector element {json.dumps(item)} is not a number")
        if not math.isfinite(item) or abs(item) > F32_MAX:
            raise bad_input("vector elements must be finite 32-bit floats")
    if len(value) != size:
        raise bad_input(f"Vector dimension error: expected dim: {size}, got {len(value)}")
    return array("f", value)


def normalize(vector: array) -> array:
    norm = math.sqrt(sum(map(operator.mul, vector, vector)))
    if norm < 1e-30:
        return vector
    return array("f", (x / norm for x in vector))


def vector_b64(vector: array) -> str:
    data = vector
    if sys.byteorder == "big":
        data = array("f", vector)
        data.byteswap()
    return base64.b64encode(data.tobytes()).decode("ascii")


def vector_from_b64(text: str) -> array:
    vector = array("f")
    vector.frombytes(base64.b64decode(text))
    if sys.byteorder == "big":
        vector.byteswap()
    return vector


def f32_out(value: float) -> float:
    """The shortest decimal that reads back as the same 32-bit float (as serde prints f32)."""
    if value == 0 or not math.isfinite(value):
        return value
    for digits in (6, 7, 8, 9):
        candidate = float(f"{value:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == value:
            return candidate
    return value


# ---------------------------------------------------------------------------------------
# Filters and payload selection
# ---------------------------------------------------------------------------------------

_PATH_TOKEN = re.compile(r"^([^\[\]]*)((?:\[\d*\])*)$")


def path_values(payload: Any, key: str) -> list[Any]:
    """Values at a dotted payload path (`a.b`, `a[].b`, `a[0]`); arrays are flattened."""
    current: list[Any] = [payload]
    for token in key.split("."):
        match = _PATH_TOKEN.match(token)
        if match is None:
            raise bad_input(f"invalid payload key {key!r}")
        name, brackets = match.group(1), match.group(2)
        found: list[Any] = []
        for value in current:
            candidates = value if isinstance(value, list) and name else [value]
            for candidate in candidates:
                if name == "":
                    found.append(candidate)
                elif isinstance(candidate, dict) and name in candidate:
                    found.append(candidate[name])
        for index_text in re.findall(r"\[(\d*)\]", brackets):
            expanded: list[Any] = []
            for value in found:
                if not isinstance(value, list):
                    continue
                if index_text == "":
                    expanded.extend(value)
                elif int(index_text) < len(value):
                    expanded.append(value[int(index_text)])
            found = expanded
        current = found
    flat: list[Any] = []
    for value in current:
        if isinstance(value, list):
            flat.extend(value)
        else:
            flat.append(value)
    return flat


def _same_value(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool) or isinstance(stored, bool):
        return isinstance(wanted, bool) and isinstance(stored, bool) and stored == wanted
    if isinstance(wanted, int):
        return isinstance(stored, int) and stored == wanted
    if isinstance(wanted, str):
        return isinstance(stored, str) and stored == wanted
    raise bad_input(f"match value {json.dumps(wanted)} must be a string, integer or boolean")


def _as_list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return [value]
    raise format_error(f"`{what}` must be a condition or a list of conditions")


def _check_range(values: list[Any], spec: Any) -> bool:
    if not isinstance(spec, dict):
        raise format_error("`range` must be an object")
    bounds = []
    for name, op in (("gt", operator.gt), ("gte", operator.ge), ("lt", operator.lt)):
        bounds.append((name, op))
    bounds.append(("lte", operator.le))
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    for number in numbers:
        ok = True
        for name, op in bounds:
            limit = spec.get(name)
            if limit is None:
                continue
            if isinstance(limit, bool) or not isinstance(limit, int | float):
                raise format_error(f"range bound `{name}` must be a number")
            if not op(number, limit):
                ok = False
                break
        if ok:
            return True
    return False


def _check_match(values: list[Any], spec: Any) -> bool:
    if not isinstance(spec, dict):
        raise format_error("`match` must be an object")
    if "value" in spec:
        wanted = spec["value"]
        return any(_same_value(v, wanted) for v in values)
    if "any" in spec:
        options = spec["any"]
        if not isinstance(options, list):
            raise format_error("`match.any` must be a list")
        return any(_same_value(v, o) for v in values for o in options)
    if "except" in spec:
        options = spec["except"]
        if not isinstance(options, list):
            raise format_error("`match.except` must be a list")
        return any(not any(_same_value(v, o) for o in options) for v in values)
    for kind in ("text", "phrase"):
        if kind in spec:
            needle = spec[kind]
            if not isinstance(needle, str):
                raise format_error(f"`match.{kind}` must be a string")
            return any(isinstance(v, str) and needle in v for v in values)
    raise format_error(f"unsupported match {json.dumps(spec)}")


def check_condition(cond: Any, point_id: PointId, payload: dict[str, Any]) -> bool:
    if not isinstance(cond, dict):
        raise format_error("a filter condition must be an object")
    if "key" in cond:
        key = cond["key"]
        if not isinstance(key, str) or key == "":
            raise format_error("condition `key` must be a non-empty string")
        values = path_values(payload, key)
        if cond.get("match") is not None:
            return _check_match(values, cond["match"])
        if cond.get("range") is not None:
            return _check_range(values, cond["range"])
        if cond.get("values_count") is not None:
            return _check_range([len(values)], cond["values_count"])
        if cond.get("is_empty") is not None:
            return (len([v for v in values if v is not None]) == 0) == bool(cond["is_empty"])
        if cond.get("is_null") is not None:
            return any(v is None for v in values) == bool(cond["is_null"])
        raise unsupported(f"field condition {json.dumps(cond)}")
    if "has_id" in cond:
        ids = cond["has_id"]
        if not isinstance(ids, list):
            raise format_error("`has_id` must be a list")
        return point_id in {parse_point_id(i) for i in ids}
    if "is_empty" in cond or "is_null" in cond:
        kind = "is_empty" if "is_empty" in cond else "is_null"
        inner = cond[kind]
        if not isinstance(inner, dict) or not isinstance(inner.get("key"), str):
            raise format_error(f'`{kind}` must be {{"key": ...}}')
        values = path_values(payload, inner["key"])
        if kind == "is_empty":
            return len([v for v in values if v is not None]) == 0
        found = _key_exists(payload, inner["key"])
        return found and (not values or all(v is None for v in values))
    if "has_vector" in cond:
        return cond["has_vector"] == ""
    if "nested" in cond:
        nested = cond["nested"]
        if not isinstance(nested, dict) or not isinstance(nested.get("key"), str):
            raise format_error('`nested` must be {"key": ..., "filter": ...}')
        items = path_values(payload, nested["key"])
        return any(
            isinstance(item, dict) and check_filter(nested.get("filter"), point_id, item)
            for item in items
        )
    if any(k in cond for k in ("must", "should", "must_not", "min_should")):
        return check_filter(cond, point_id, payload)
    raise unsupported(f"filter condition {json.dumps(cond)[:200]}")


def _key_exists(payload: dict[str, Any], key: str) -> bool:
    head, _, rest = key.partition(".")
    head = head.split("[")[0]
    if not isinstance(payload, dict) or head not in payload:
        return False
    return True if not rest else isinstance(payload[head], dict | list)


def check_filter(filt: Any, point_id: PointId, payload: dict[str, Any]) -> bool:
    if filt is None:
        return True
    if not isinstance(filt, dict):
        raise format_error("`filter` must be an object")
    must = _as_list(filt.get("must"), "must")
    if not all(check_condition(c, point_id, payload) for c in must):
        return False
    should = _as_list(filt.get("should"), "should")
    if should and not any(check_condition(c, point_id, payload) for c in should):
        return False
    must_not = _as_list(filt.get("must_not"), "must_not")
    if any(check_condition(c, point_id, payload) for c in must_not):
        return False
    min_should = filt.get("min_should")
    if min_should is not None:
        if not isinstance(min_should, dict):
            raise format_error("`min_should` must be an object")
        conditions = _as_list(min_should.get("conditions"), "min_should.conditions")
        wanted = min_should.get("min_count", 0)
        hits = sum(1 for c in conditions if check_condition(c, point_id, payload))
        if hits < wanted:
            return False
    return True


def validate_filter(filt: Any) -> None:
    """Evaluate once against an empty point so that malformed filters fail even when empty."""
    check_filter(filt, 0, {})


def _include_path(source: dict[str, Any], target: dict[str, Any], parts: list[str]) -> None:
    head = parts[0]
    if head not in source:
        return
    if len(parts) == 1:
        target[head] = source[head]
        return
    child = source[head]
    if isinstance(child, dict):
        sub = target.setdefault(head, {})
        if isinstance(sub, dict):
            _include_path(child, sub, parts[1:])


def _exclude_path(target: dict[str, Any], parts: list[str]) -> None:
    head = parts[0]
    if head not in target:
        return
    if len(parts) == 1:
        del target[head]
        return
    child = target[head]
    if isinstance(child, dict):
        child = dict(child)
        target[head] = child
        _exclude_path(child, parts[1:])


def parse_payload_selector(value: Any, default: bool) -> Any:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return ("include", value)
    if isinstance(value, dict) and len(value) == 1:
        ((kind, keys),) = value.items()
        if (
            kind in ("include", "exclude")
            and isinstance(keys, list)
            and all(isinstance(k, str) for k in keys)
        ):
            return (kind, keys)
    raise format_error("`with_payload` must be true, false, a list of keys, or include/exclude")


def select_payload(payload: dict[str, Any], selector: Any) -> dict[str, Any] | None:
    if selector is True:
        return payload
    if selector is False:
        return None
    kind, keys = selector
    if kind == "include":
        out: dict[str, Any] = {}
        for key in keys:
            _include_path(payload, out, key.split("."))
        return out
    result = dict(payload)
    for key in keys:
        _exclude_path(result, key.split("."))
    return result


def parse_vector_selector(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, list):
        return "" in value
    raise format_error("`with_vector` must be true, false or a list of vector names")


# ---------------------------------------------------------------------------------------
# Collections and the durable engine
# ---------------------------------------------------------------------------------------

HNSW_DEFAULTS: dict[str, Any] = {
    "m": 16,
    "ef_construct": 100,
    "full_scan_threshold": 10000,
    "max_indexing_threads": 0,
    "on_disk": False,
}
HNSW_INT_KEYS = ("m", "ef_construct", "full_scan_threshold", "max_indexing_threads", "payload_m")
HNSW_BOOL_KEYS = ("on_disk", "inline_storage")
OPTIMIZER_DEFAULTS: dict[str, Any] = {
    "deleted_threshold": 0.2,
    "vacuum_min_vector_number": 1000,
    "default_segment_number": 0,
    "max_segment_size": None,
    "memmap_threshold": None,
    "indexing_threshold": 10000,
    "flush_interval_sec": 5,
    "max_optimization_threads": None,
}
OPTIMIZER_INT_KEYS = (
    "vacuum_min_vector_number",
    "default_segment_number",
    "max_segment_size",
    "memmap_threshold",
    "indexing_threshold",
    "flush_interval_sec",
    "max_optimization_threads",
)
WAL_DEFAULTS: dict[str, Any] = {"wal_capacity_mb": 32, "wal_segments_ahead": 0}
WAL_INT_KEYS = ("wal_capacity_mb", "wal_segments_ahead", "wal_retain_closed")


def _clean_diff(
    value: Any, what: str, int_keys: tuple[str, ...], bool_keys: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Keep the known keys of a config diff, type-checked; unknown keys are dropped."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise format_error(f"`{what}` must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if item is None:
            continue
        if key in int_keys:
            if item == "auto" and key == "max_optimization_threads":
                continue
            if isinstance(item, bool) or not isinstance(item, int) or item < 0:
                raise format_error(f"`{what}.{key}` must be a non-negative integer")
            out[key] = item
        elif key in bool_keys:
            if not isinstance(item, bool):
                raise format_error(f"`{what}.{key}` must be true or false")
            out[key] = item
        elif key == "deleted_threshold":
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise format_error(f"`{what}.{key}` must be a number")
            out[key] = float(item)
        else:
            LOG.debug("ignoring %s.%s (not modelled by the stand-in)", what, key)
    return out


def parse_vector_params(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise format_error("`vectors` must be an object")
    if "size" not in value and "distance" not in value:
        if value and all(isinstance(v, dict) for v in value.values()):
            raise unsupported("named vectors")
        raise format_error("missing field `size` in `vectors`")
    size = value.get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise format_error("`vectors.size` must be an integer")
    if not 1 <= size <= MAX_DIM:
        raise ApiError(
            422,
            f"Validation error in JSON body: [vectors.size: value {size} invalid,"
            f" must be from 1 to {MAX_DIM}]",
        )
    distance = value.get("distance")
    if distance not in DISTANCES:
        raise format_error(
            f"unknown variant `{distance}`, expected one of "
            + ", ".join(f"`{d}`" for d in DISTANCES)
        )
    if value.get("multivector_config") is not None:
        raise unsupported("multivector_config")
    params: dict[str, Any] = {"size": size, "distance": distance}
    on_disk = value.get("on_disk")
    if on_disk is not None:
        if not isinstance(on_disk, bool):
            raise format_error("`vectors.on_disk` must be true or false")
        params["on_disk"] = on_disk
    hnsw = _clean_diff(
        value.get("hnsw_config"), "vectors.hnsw_config", HNSW_INT_KEYS, HNSW_BOOL_KEYS
    )
    if hnsw:
        params["hnsw_config"] = hnsw
    for key in ("quantization_config", "datatype"):
        if value.get(key) is not None:
            params[key] = value[key]
    return params


def parse_create_collection(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise format_error("expected an object")
    if "vectors" not in body or body["vectors"] is None:
        raise unsupported("a collection without a dense `vectors` config")
    if body.get("sparse_vectors"):
        raise unsupported("sparse_vectors")
    if body.get("init_from") is not None:
        raise unsupported("init_from")
    if body.get("sharding_method") not in (None, "auto"):
        raise unsupported("custom sharding")
    config: dict[str, Any] = {"vectors": parse_vector_params(body["vectors"])}
    config["hnsw_config"] = _clean_diff(
        body.get("hnsw_config"), "hnsw_config", HNSW_INT_KEYS, HNSW_BOOL_KEYS
    )
    config["optimizers_config"] = _clean_diff(
        body.get("optimizers_config"),
        "optimizers_config",
        OPTIMIZER_INT_KEYS,
        ("prevent_unoptimized",),
    )
    config["wal_config"] = _clean_diff(body.get("wal_config"), "wal_config", WAL_INT_KEYS)
    for key in ("shard_number", "replication_factor", "write_consistency_factor"):
        number = opt_int(body, key, None, minimum=1)
        if number is not None:
            config[key] = number
    if body.get("on_disk_payload") is not None:
        config["on_disk_payload"] = opt_bool(body, "on_disk_payload", True)
    for key in ("quantization_config", "strict_mode_config", "metadata"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, dict):
                raise format_error(f"`{key}` must be an object")
            config[key] = value
    return config


def parse_update_collection(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise format_error("expected an object")
    patch: dict[str, Any] = {}
    if body.get("hnsw_config") is not None:
        patch["hnsw_config"] = _clean_diff(
            body["hnsw_config"], "hnsw_config", HNSW_INT_KEYS, HNSW_BOOL_KEYS
        )
    if body.get("optimizers_config") is not None:
        patch["optimizers_config"] = _clean_diff(
            body["optimizers_config"],
            "optimizers_config",
            OPTIMIZER_INT_KEYS,
            ("prevent_unoptimized",),
        )
    params = opt_obj(body, "params") or {}
    for key in ("replication_factor", "write_consistency_factor"):
        number = opt_int(params, key, None, minimum=1)
        if number is not None:
            patch[key] = number
    if params.get("on_disk_payload") is not None:
        patch["on_disk_payload"] = opt_bool(params, "on_disk_payload", True)
    vectors = opt_obj(body, "vectors")
    if vectors:
        diff = vectors.get("", vectors)
        if not isinstance(diff, dict):
            raise format_error("`vectors` must be an object")
        vector_patch: dict[str, Any] = {}
        if diff.get("on_disk") is not None:
            vector_patch["on_disk"] = opt_bool(diff, "on_disk", False)
        if diff.get("hnsw_config") is not None:
            vector_patch["hnsw_config"] = _clean_diff(
                diff["hnsw_config"], "vectors.hnsw_config", HNSW_INT_KEYS, HNSW_BOOL_KEYS
            )
        patch["vectors"] = vector_patch
    for key in ("quantization_config", "strict_mode_config", "metadata"):
        value = body.get(key)
        if value is not None:
            if not isinstance(value, dict | str):
                raise format_error(f"`{key}` must be an object")
            patch[key] = value
    return patch


@dataclass
class Point:
    vector: array
    payload: dict[str, Any]
    version: int


class Collection:
    def __init__(self, name: str, config: dict[str, Any], created_at: str) -> None:
        self.name = name
        self.config = config
        self.created_at = created_at
        self.points: dict[PointId, Point] = {}
        self.payload_schema: dict[str, dict[str, Any]] = {}

    @property
    def size(self) -> int:
        return int(self.config["vectors"]["size"])

    @property
    def distance(self) -> str:
        return str(self.config["vectors"]["distance"])

    def apply_patch(self, patch: dict[str, Any]) -> None:
        for key in ("hnsw_config", "optimizers_config"):
            if key in patch:
                self.config[key] = {**self.config.get(key, {}), **patch[key]}
        for key in ("replication_factor", "write_consistency_factor", "on_disk_payload"):
            if key in patch:
                self.config[key] = patch[key]
        if "vectors" in patch:
            vectors = self.config["vectors"]
            if "on_disk" in patch["vectors"]:
                vectors["on_disk"] = patch["vectors"]["on_disk"]
            if "hnsw_config" in patch["vectors"]:
                vectors["hnsw_config"] = {
                    **vectors.get("hnsw_config", {}),
                    **patch["vectors"]["hnsw_config"],
                }
        for key in ("strict_mode_config", "metadata"):
            if key in patch:
                self.config[key] = {**self.config.get(key, {}), **patch[key]}
        if "quantization_config" in patch:
            value = patch["quantization_config"]
            self.config["quantization_config"] = value if isinstance(value, dict) else None

    def info(self) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = {
            "vectors": copy.deepcopy(cfg["vectors"]),
            "shard_number": cfg.get("shard_number", 1),
            "replication_factor": cfg.get("replication_factor", 1),
            "write_consistency_factor": cfg.get("write_consistency_factor", 1),
            "on_disk_payload": cfg.get("on_disk_payload", True),
        }
        schema: dict[str, Any] = {}
        for key, entry in sorted(self.payload_schema.items()):
            item: dict[str, Any] = {"data_type": entry["data_type"]}
            if entry.get("params") is not None:
                item["params"] = entry["params"]
            item["points"] = sum(
                1
                for p in self.points.values()
                if any(v is not None for v in path_values(p.payload, key))
            )
            schema[key] = item
        config: dict[str, Any] = {
            "params": params,
            "hnsw_config": {**HNSW_DEFAULTS, **cfg.get("hnsw_config", {})},
            "optimizer_config": {**OPTIMIZER_DEFAULTS, **cfg.get("optimizers_config", {})},
            "wal_config": {**WAL_DEFAULTS, **cfg.get("wal_config", {})},
            "quantization_config": cfg.get("quantization_config"),
            "strict_mode_config": {"enabled": False, **cfg.get("strict_mode_config", {})},
        }
        if cfg.get("metadata") is not None:
            config["metadata"] = cfg["metadata"]
        return {
            "status": "green",
            "optimizer_status": "ok",
            "indexed_vectors_count": 0,
            "points_count": len(self.points),
            "segments_count": 1,
            "config": config,
            "payload_schema": schema,
        }

    def dump(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": self.config,
            "created_at": self.created_at,
            "payload_schema": self.payload_schema,
            "points": [
                [pid, vector_b64(p.vector), p.payload, p.version] for pid, p in self.points.items()
            ],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Collection:
        coll = cls(data["name"], data["config"], data.get("created_at", ""))
        coll.payload_schema = data.get("payload_schema", {})
        for pid, vec, payload, version in data["points"]:
            coll.points[pid] = Point(vector_from_b64(vec), payload, version)
        return coll


class StorageCorruptError(Exception):
    """The on-disk state cannot be read without losing acknowledged data."""


STATE_FORMAT = "qdrant-standin-state/1"
STATE_FILE = "standin-state.json"
WAL_FILE = "standin-wal.log"
LOCK_FILE = ".standin.lock"
COMPACT_WAL_BYTES = 32 * 1024 * 1024


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def makedirs_durable(path: str) -> None:
    missing: list[str] = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o755)
        fsync_dir(os.path.dirname(directory))


def write_file_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(directory)


def utc_now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


class Engine:
    """All collections in memory, made durable by a global write-ahead log plus a snapshot."""

    def __init__(self, storage_path: str, snapshots_path: str) -> None:
        self.storage_path = storage_path
        self.snapshots_path = snapshots_path
        self.lock = threading.RLock()
        self.collections: dict[str, Collection] = {}
        self.op = 0
        self.wal_fd = -1
        self.wal_bytes = 0
        self.lock_fd = -1

    # -- startup / shutdown -------------------------------------------------------------

    def open(self) -> None:
        makedirs_durable(self.storage_path)
        self.lock_fd = os.open(
            os.path.join(self.storage_path, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644
        )
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise StorageCorruptError(
                f"{self.storage_path} is in use by another qdrant process ({exc})"
            ) from exc
        state_path = os.path.join(self.storage_path, STATE_FILE)
        last_op = 0
        if os.path.exists(state_path):
            try:
                with open(state_path, encoding="utf-8") as handle:
                    state = json.load(handle)
                if state.get("format") != STATE_FORMAT:
                    raise ValueError(f"unknown format {state.get('format')!r}")
                for data in state["collections"]:
                    coll = Collection.load(data)
                    self.collections[coll.name] = coll
                last_op = int(state["last_op"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StorageCorruptError(f"cannot read {state_path}: {exc}") from exc
        self.op = last_op
        wal_path = os.path.join(self.storage_path, WAL_FILE)
        replayed = self._replay(wal_path, last_op)
        created = not os.path.exists(wal_path)
        self.wal_fd = os.open(wal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            fsync_dir(self.storage_path)
        self.wal_bytes = os.fstat(self.wal_fd).st_size
        LOG.info(
            "loaded %d collection(s) from %s (snapshot up to operation %d, %d WAL record(s))",
            len(self.collections),
            self.storage_path,
            last_op,
            replayed,
        )
        if self.wal_bytes:
            self.compact()

    def _replay(self, wal_path: str, last_op: int) -> int:
        try:
            with open(wal_path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return 0
        pieces = data.split(b"\n")
        offset = 0
        good_end = 0
        replayed = 0
        for number, piece in enumerate(pieces):
            complete = number < len(pieces) - 1
            if not complete and piece == b"":
                break
            record = _decode_wal_line(piece) if complete else None
            if record is None:
                later_valid = any(_decode_wal_line(p) is not None for p in pieces[number + 1 : -1])
                if later_valid:
                    raise StorageCorruptError(
                        f"{wal_path}: record at byte {offset} is corrupt but later records are"
                        " valid; refusing to start rather than lose acknowledged writes"
                    )
                LOG.warning(
                    "%s: ignoring a torn or corrupt last record at byte %d (%d byte(s));"
                    " it was never acknowledged",
                    wal_path,
                    offset,
                    len(data) - offset,
                )
                with open(wal_path, "r+b") as handle:
                    handle.truncate(good_end)
                    handle.flush()
                    os.fsync(handle.fileno())
                break
            op = record["op"]
            if op > last_op:
                if op <= self.op:
                    raise StorageCorruptError(f"{wal_path}: operation {op} out of order")
                try:
                    self._apply(record)
                except (KeyError, TypeError, ValueError) as exc:
                    raise StorageCorruptError(
                        f"{wal_path}: cannot apply operation {op}: {exc!r}"
                    ) from exc
                self.op = op
                replayed += 1
            offset += len(piece) + 1
            good_end = offset
        return replayed

    def compact(self) -> None:
        """Write the whole state atomically, then empty the WAL."""
        with self.lock:
            state = {
                "format": STATE_FORMAT,
                "note": f"Qdrant {STANDIN_NOTE}: this is not Qdrant's storage format",
                "last_op": self.op,
                "collections": [c.dump() for c in self.collections.values()],
            }
            data = json.dumps(state, separators=(",", ":")).encode("utf-8")
            write_file_atomic(os.path.join(self.storage_path, STATE_FILE), data)
            if self.wal_fd >= 0:
                os.ftruncate(self.wal_fd, 0)
                os.fsync(self.wal_fd)
            self.wal_bytes = 0
            LOG.debug("compacted storage at operation %d (%d bytes)", self.op, len(data))

    def close(self) -> None:
        with self.lock:
            if self.wal_fd >= 0:
                os.close(self.wal_fd)
                self.wal_fd = -1
            if self.lock_fd >= 0:
                os.close(self.lock_fd)
                self.lock_fd = -1

    # -- the write path -----------------------------------------------------------------

    def _commit(self, record: dict[str, Any], decoded: list[array] | None = None) -> int:
        """Log, fsync, then apply. Caller holds the lock and has validated the record."""
        self.op += 1
        record["op"] = self.op
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=True).encode("ascii")
        line = b"%08x " % zlib.crc32(body) + body + b"\n"
        view = memoryview(line)
        while view:
            written = os.write(self.wal_fd, view)
            view = view[written:]
        os.fsync(self.wal_fd)
        self.wal_bytes += len(line)
        self._apply(record, decoded)
        if self.wal_bytes > COMPACT_WAL_BYTES:
            self.compact()
        return self.op

    def _apply(self, record: dict[str, Any], decoded: list[array] | None = None) -> None:
        kind = record["t"]
        name = record["c"]
        if kind == "create_collection":
            self.collections[name] = Collection(name, record["cfg"], record["at"])
            return
        if kind == "delete_collection":
            self.collections.pop(name, None)
            return
        if kind == "restore_collection":
            coll = Collection.load({**record["data"], "name": name})
            self.collections[name] = coll
            return
        coll = self.collections.get(name)
        if coll is None:
            raise StorageCorruptError(
                f"operation {record['op']} refers to missing collection {name}"
            )
        op = record["op"]
        if kind == "upsert":
            for index, (pid, vec, payload) in enumerate(record["points"]):
                vector = decoded[index] if decoded is not None else vector_from_b64(vec)
                coll.points[pid] = Point(vector, payload, op)
        elif kind == "delete_points":
            for pid in record["ids"]:
                coll.points.pop(pid, None)
        elif kind == "create_index":
            coll.payload_schema[record["field"]] = record["schema"]
        elif kind == "delete_index":
            coll.payload_schema.pop(record["field"], None)
        elif kind == "update_collection":
            coll.apply_patch(record["patch"])
        else:
            raise StorageCorruptError(f"unknown WAL record type {kind!r}")

    def _get(self, name: str) -> Collection:
        coll = self.collections.get(name)
        if coll is None:
            raise collection_not_found(name)
        return coll

    def create_collection(self, name: str, config: dict[str, Any]) -> None:
        with self.lock:
            if name in self.collections:
                raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
            self._commit({"t": "create_collection", "c": name, "cfg": config, "at": utc_now_iso()})

    def restore_collection(self, name: str, data: dict[str, Any]) -> None:
        """Replace (or create) collection NAME with DATA, a dump from a snapshot (logged)."""
        with self.lock:
            Collection.load({**data, "name": name})  # refuse a broken dump before logging it
            self._commit({"t": "restore_collection", "c": name, "data": data})

    def dump_all(self) -> list[dict[str, Any]]:
        with self.lock:
            return json.loads(json.dumps([c.dump() for c in self.collections.values()]))

    def update_collection(self, name: str, patch: dict[str, Any]) -> None:
        with self.lock:
            self._get(name)
            self._commit({"t": "update_collection", "c": name, "patch": patch})

    def delete_collection(self, name: str) -> bool:
        with self.lock:
            if name not in self.collections:
                return False
            self._commit({"t": "delete_collection", "c": name})
            return True

    def create_index(self, name: str, field_name: str, schema: dict[str, Any]) -> int:
        with self.lock:
            self._get(name)
            return self._commit(
                {"t": "create_index", "c": name, "field": field_name, "schema": schema}
            )

    def delete_index(self, name: str, field_name: str) -> int:
        with self.lock:
            self._get(name)
            return self._commit({"t": "delete_index", "c": name, "field": field_name})

    def upsert(self, name: str, points: list[tuple[PointId, Any, dict[str, Any]]]) -> int:
        with self.lock:
            coll = self._get(name)
            vectors = [parse_vector(vec, coll.size) for _, vec, _ in points]
            if coll.distance == "Cosine":
                vectors = [normalize(v) for v in vectors]
            rows = [
                [pid, vector_b64(vector), payload]
                for (pid, _, payload), vector in zip(points, vectors, strict=True)
            ]
            return self._commit({"t": "upsert", "c": name, "points": rows}, vectors)

    def delete_points(self, name: str, ids: list[PointId] | None, filt: Any) -> int:
        with self.lock:
            coll = self._get(name)
            if ids is None:
                ids = [pid for pid, p in coll.points.items() if check_filter(filt, pid, p.payload)]
            return self._commit({"t": "delete_points", "c": name, "ids": ids})

    # -- reads --------------------------------------------------------------------------

    def collection_names(self) -> list[str]:
        with self.lock:
            return sorted(self.collections)

    def info(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self._get(name).info()

    def exists(self, name: str) -> bool:
        with self.lock:
            return name in self.collections

    def search(
        self,
        name: str,
        query: Any,
        filt: Any,
        limit: int,
        offset: int,
        threshold: float | None,
        with_payload: Any,
        with_vector: bool,
    ) -> list[dict[str, Any]]:
        with self.lock:
            coll = self._get(name)
            validate_filter(filt)
            exclude: PointId | None = None
            if query is None:
                ordered = sorted(coll.points.items(), key=lambda item: id_sort_key(item[0]))
                chosen = [(0.0, pid, p) for pid, p in ordered if check_filter(filt, pid, p.payload)]
                return [
                    _scored(pid, p, score, with_payload, with_vector)
                    for score, pid, p in chosen[offset : offset + limit]
                ]
            if isinstance(query, list):
                vector = parse_vector(query, coll.size)
            else:
                exclude = parse_point_id(query)
                if exclude not in coll.points:
                    raise ApiError(404, f"Not found: No point with id {exclude} found")
                vector = coll.points[exclude].vector
            if coll.distance == "Cosine":
                vector = normalize(vector)
            qvec = list(vector)
            distance = coll.distance
            higher_better = distance in ("Cosine", "Dot")
            scored: list[tuple[float, tuple[int, int], PointId, Point]] = []
            for pid, point in coll.points.items():
                if pid == exclude or not check_filter(filt, pid, point.payload):
                    continue
                if higher_better:
                    score = sum(map(operator.mul, qvec, point.vector))
                elif distance == "Euclid":
                    score = math.dist(qvec, point.vector)
                else:
                    score = sum(map(abs, map(operator.sub, qvec, point.vector)))
                if threshold is not None and (
                    score < threshold if higher_better else score > threshold
                ):
                    continue
                scored.append((-score if higher_better else score, id_sort_key(pid), pid, point))
            best = heapq.nsmallest(offset + limit, scored, key=lambda row: (row[0], row[1]))
            return [
                _scored(pid, point, -key if higher_better else key, with_payload, with_vector)
                for key, _, pid, point in best[offset:]
            ]

    def scroll(
        self,
        name: str,
        start: PointId | None,
        limit: int,
        filt: Any,
        with_payload: Any,
        with_vector: bool,
    ) -> dict[str, Any]:
        with self.lock:
            coll = self._get(name)
            validate_filter(filt)
            start_key = id_sort_key(start) if start is not None else None
            rows = sorted(
                (
                    (id_sort_key(pid), pid, p)
                    for pid, p in coll.points.items()
                    if (start_key is None or id_sort_key(pid) >= start_key)
                    and check_filter(filt, pid, p.payload)
                ),
                key=lambda row: row[0],
            )
            page = rows[:limit]
            next_offset = rows[limit][1] if len(rows) > limit else None
            return {
                "points": [_record(pid, p, with_payload, with_vector) for _, pid, p in page],
                "next_page_offset": next_offset,
            }

    def count(self, name: str, filt: Any) -> int:
        with self.lock:
            coll = self._get(name)
            validate_filter(filt)
            return sum(1 for pid, p in coll.points.items() if check_filter(filt, pid, p.payload))

    def retrieve(
        self, name: str, ids: list[PointId], with_payload: Any, with_vector: bool
    ) -> list[dict[str, Any]]:
        with self.lock:
            coll = self._get(name)
            out = []
            seen: set[PointId] = set()
            for pid in ids:
                if pid in coll.points and pid not in seen:
                    seen.add(pid)
                    out.append(_record(pid, coll.points[pid], with_payload, with_vector))
            return out

    def dump_collection(self, name: str) -> dict[str, Any]:
        with self.lock:
            return json.loads(json.dumps(self._get(name).dump()))

    def vector_count(self) -> int:
        with self.lock:
            return sum(len(c.points) for c in self.collections.values())


def _vector_out(point: Point) -> list[float]:
    return [f32_out(x) for x in point.vector]


def _scored(
    pid: PointId, point: Point, score: float, with_payload: Any, with_vector: bool
) -> dict[str, Any]:
    out: dict[str, Any] = {"id": pid, "version": point.version, "score": score}
    payload = select_payload(point.payload, with_payload)
    if payload is not None:
        out["payload"] = payload
    if with_vector:
        out["vector"] = _vector_out(point)
    return out


def _record(pid: PointId, point: Point, with_payload: Any, with_vector: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": pid}
    payload = select_payload(point.payload, with_payload)
    if payload is not None:
        out["payload"] = payload
    if with_vector:
        out["vector"] = _vector_out(point)
    return out


# ---------------------------------------------------------------------------------------
# The HTTP API
# ---------------------------------------------------------------------------------------

PUBLIC_PATHS = frozenset({"/", "/healthz", "/livez", "/readyz"})
READ_ONLY_POST = re.compile(
    r"^/collections/[^/]+/(points(/(count|scroll|search|search/batch|search/groups|query"
    r"|query/batch|query/groups|recommend|recommend/batch|recommend/groups|discover"
    r"|discover/batch|search/matrix/pairs|search/matrix/offsets))?|facet)$"
)
SNAPSHOT_NAME = re.compile(r"^[^./\\\x00-\x1f][^/\\\x00-\x1f]*\.snapshot$")


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    close: bool = False


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def ok_response(result: Any, started: float) -> Response:
    return Response(
        200,
        _json_bytes({"result": result, "status": "ok", "time": time.monotonic() - started}),
    )


def error_response(status: int, message: str, started: float, close: bool = False) -> Response:
    body = {"status": {"error": message}, "time": time.monotonic() - started}
    return Response(status, _json_bytes(body), close=close)


def text_response(status: int, text: str) -> Response:
    return Response(status, text.encode(), "text/plain; charset=utf-8")


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


class Request:
    def __init__(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        read_body: Callable[[], bytes],
    ) -> None:
        self.method = method
        parts = urlsplit(target)
        self.path = parts.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = headers
        self._read_body = read_body
        self.body_read = False

    def json(self) -> Any:
        """The parsed body; None when empty."""
        self.body_read = True
        raw = self._read_body()
        if not raw.strip():
            return None
        try:
            return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise format_error(str(exc)[:500]) from exc

    def json_object(self, required: bool = True) -> dict[str, Any]:
        body = self.json()
        if body is None:
            if required:
                raise format_error("EOF while parsing a value at line 1 column 0")
            return {}
        if not isinstance(body, dict):
            raise format_error(f"expected a JSON object, got {type(body).__name__}")
        return body

    def flag(self, name: str, default: bool) -> bool:
        value = self.query.get(name)
        if value is None:
            return default
        if value.lower() in ("true", "1", ""):
            return True
        if value.lower() in ("false", "0"):
            return False
        raise ApiError(400, f"Query deserialize error: invalid value for `{name}`: {value!r}")


Handler = Callable[..., Any]


class App:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.stopping = threading.Event()
        self.inflight = 0
        self.inflight_lock = threading.Condition()
        self.max_body = settings.max_request_size_mb * 1024 * 1024
        self.started_at = time.time()
        self.routes: list[tuple[str, tuple[str, ...], Handler]] = []
        for method, pattern, handler in (
            ("GET", "/", self.root),
            ("GET", "/healthz", self.healthz),
            ("GET", "/livez", self.healthz),
            ("GET", "/readyz", self.readyz),
            ("GET", "/metrics", self.metrics),
            ("GET", "/collections", self.list_collections),
            ("GET", "/aliases", self.aliases),
            ("GET", "/collections/{c}", self.get_collection),
            ("PUT", "/collections/{c}", self.create_collection),
            ("PATCH", "/collections/{c}", self.update_collection),
            ("DELETE", "/collections/{c}", self.delete_collection),
            ("GET", "/collections/{c}/exists", self.collection_exists),
            ("GET", "/collections/{c}/aliases", self.aliases),
            ("PUT", "/collections/{c}/index", self.create_index),
            ("DELETE", "/collections/{c}/index/{f}", self.delete_index),
            ("PUT", "/collections/{c}/points", self.upsert),
            ("POST", "/collections/{c}/points", self.retrieve),
            ("POST", "/collections/{c}/points/delete", self.delete_points),
            ("POST", "/collections/{c}/points/query", self.query),
            ("POST", "/collections/{c}/points/query/batch", self.query_batch),
            ("POST", "/collections/{c}/points/search", self.search),
            ("POST", "/collections/{c}/points/search/batch", self.search_batch),
            ("POST", "/collections/{c}/points/scroll", self.scroll),
            ("POST", "/collections/{c}/points/count", self.count),
            ("GET", "/collections/{c}/points/{id}", self.get_point),
            ("POST", "/collections/{c}/snapshots", self.create_snapshot),
            ("GET", "/collections/{c}/snapshots", self.list_snapshots),
            ("GET", "/collections/{c}/snapshots/{s}", self.download_snapshot),
            ("DELETE", "/collections/{c}/snapshots/{s}", self.delete_snapshot),
            ("PUT", "/collections/{c}/snapshots/recover", self.recover_snapshot),
            ("POST", "/snapshots", self.create_full_snapshot),
            ("GET", "/snapshots", self.list_full_snapshots),
            ("GET", "/snapshots/{s}", self.download_full_snapshot),
            ("DELETE", "/snapshots/{s}", self.delete_full_snapshot),
        ):
            self.routes.append((method, tuple(pattern.strip("/").split("/")), handler))

    # -- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        with self.inflight_lock:
            self.inflight += 1
        try:
            yield
        finally:
            with self.inflight_lock:
                self.inflight -= 1
                self.inflight_lock.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.inflight_lock:
            while self.inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.inflight_lock.wait(left)
        return True

    def dispatch(self, req: Request) -> Response:
        started = time.monotonic()
        try:
            segments = tuple(unquote(s) for s in req.path.strip("/").split("/"))
            path_for_auth = req.path.rstrip("/") or "/"
            if path_for_auth not in PUBLIC_PATHS:
                denied = self.authorize(req, path_for_auth, started)
                if denied is not None:
                    return denied
            handler, params = self.route(req.method, segments)
            if handler is None:
                raise ApiError(
                    404,
                    f"Not found: the Qdrant stand-in has no route {req.method} {req.path}",
                )
            if "c" in params:
                validate_collection_name(params["c"])
            result = handler(req, started, **params)
            if isinstance(result, Response):
                return result
            return ok_response(result, started)
        except ApiError as exc:
            return error_response(exc.status, exc.message, started, exc.close)

    def route(
        self, method: str, segments: tuple[str, ...]
    ) -> tuple[Handler | None, dict[str, str]]:
        lookup = "GET" if method == "HEAD" else method
        if segments == ("",):
            segments = ()
        for route_method, pattern, handler in self.routes:
            pattern_segments = () if pattern == ("",) else pattern
            if route_method != lookup or len(pattern_segments) != len(segments):
                continue
            params: dict[str, str] = {}
            for want, got in zip(pattern_segments, segments, strict=True):
                if want.startswith("{"):
                    params[want[1:-1]] = got
                elif want != got:
                    break
            else:
                return handler, params
        return None, {}

    def authorize(self, req: Request, path: str, started: float) -> Response | None:
        api_key = self.settings.api_key
        ro_key = self.settings.read_only_api_key
        if api_key is None and ro_key is None:
            return None
        key = req.headers.get("api-key")
        if key is None:
            auth = req.headers.get("authorization")
            if auth is not None and auth.startswith("Bearer "):
                key = auth[len("Bearer ") :]
        if key is None:
            return Response(
                401,
                b"Must provide an API key or an Authorization bearer token",
                "text/plain; charset=utf-8",
                close=True,
            )
        given = key.encode("utf-8", "surrogateescape")
        rw_ok = api_key is not None and hmac.compare_digest(given, api_key.encode("utf-8"))
        ro_ok = ro_key is not None and hmac.compare_digest(given, ro_key.encode("utf-8"))
        if rw_ok:
            return None
        if ro_ok:
            is_read = req.method in ("GET", "HEAD") or (
                req.method == "POST" and READ_ONLY_POST.match(path) is not None
            )
            if is_read:
                return None
            return error_response(
                403, "Forbidden: Global manage access is required", started, close=True
            )
        return Response(401, b"Invalid API key or JWT", "text/plain; charset=utf-8", close=True)

    # -- service ------------------------------------------------------------------------

    def root(self, req: Request, started: float) -> Response:
        body = {
            "title": "qdrant - vector search engine (stand-in for tests)",
            "version": VERSION,
            "commit": None,
        }
        return Response(200, _json_bytes(body))

    def healthz(self, req: Request, started: float) -> Response:
        return text_response(200, "healthz check passed")

    def readyz(self, req: Request, started: float) -> Response:
        return text_response(200, "all shards are ready")

    def metrics(self, req: Request, started: float) -> Response:
        lines = [
            "# HELP app_info information about qdrant server",
            "# TYPE app_info gauge",
            f'app_info{{name="qdrant",version="{VERSION}",standin="true"}} 1',
            "# HELP collections_total number of collections",
            "# TYPE collections_total gauge",
            f"collections_total {len(self.engine.collection_names())}",
            "# HELP collections_vector_total total number of vectors in all collections",
            "# TYPE collections_vector_total gauge",
            f"collections_vector_total {self.engine.vector_count()}",
            "# HELP process_uptime_seconds seconds since the stand-in started",
            "# TYPE process_uptime_seconds gauge",
            f"process_uptime_seconds {time.time() - self.started_at:.3f}",
        ]
        return Response(200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4")

    # -- collections --------------------------------------------------------------------

    def list_collections(self, req: Request, started: float) -> Any:
        return {"collections": [{"name": n} for n in self.engine.collection_names()]}

    def aliases(self, req: Request, started: float, c: str | None = None) -> Any:
        if c is not None and not self.engine.exists(c):
            raise collection_not_found(c)
        return {"aliases": []}

    def get_collection(self, req: Request, started: float, c: str) -> Any:
        return self.engine.info(c)

    def create_collection(self, req: Request, started: float, c: str) -> Any:
        config = parse_create_collection(req.json_object())
        self.engine.create_collection(c, config)
        LOG.info("created collection %s (%s)", c, json.dumps(config["vectors"]))
        return True

    def update_collection(self, req: Request, started: float, c: str) -> Any:
        self.engine.update_collection(c, parse_update_collection(req.json_object()))
        return True

    def delete_collection(self, req: Request, started: float, c: str) -> Any:
        deleted = self.engine.delete_collection(c)
        if deleted:
            LOG.info("deleted collection %s", c)
        return deleted

    def collection_exists(self, req: Request, started: float, c: str) -> Any:
        return {"exists": self.engine.exists(c)}

    def create_index(self, req: Request, started: float, c: str) -> Any:
        body = req.json_object()
        field_name = body.get("field_name")
        if not isinstance(field_name, str) or not field_name:
            raise format_error("missing field `field_name`")
        path_values({}, field_name)
        schema = body.get("field_schema")
        if isinstance(schema, str):
            data_type, params = schema, None
        elif isinstance(schema, dict) and isinstance(schema.get("type"), str):
            data_type, params = schema["type"], schema
        else:
            raise format_error("`field_schema` must be a type name or an object with `type`")
        if data_type not in PAYLOAD_TYPES:
            raise format_error(
                f"unknown variant `{data_type}`, expected one of "
                + ", ".join(f"`{t}`" for t in PAYLOAD_TYPES)
            )
        op = self.engine.create_index(c, field_name, {"data_type": data_type, "params": params})
        return self._update_result(req, op)

    def delete_index(self, req: Request, started: float, c: str, f: str) -> Any:
        return self._update_result(req, self.engine.delete_index(c, f))

    # -- points -------------------------------------------------------------------------

    @staticmethod
    def _update_result(req: Request, op: int) -> dict[str, Any]:
        waited = req.flag("wait", False)
        return {"operation_id": op, "status": "completed" if waited else "acknowledged"}

    def upsert(self, req: Request, started: float, c: str) -> Any:
        body = req.json_object()
        for key in ("update_filter", "shard_key"):
            if body.get(key) is not None:
                raise unsupported(key)
        points: list[tuple[PointId, Any, dict[str, Any]]] = []
        if "points" in body:
            raw = body["points"]
            if not isinstance(raw, list):
                raise format_error("`points` must be a list")
            for item in raw:
                if not isinstance(item, dict):
                    raise format_error("each point must be an object")
                if "id" not in item:
                    raise format_error("missing field `id`")
                if item.get("vector") is None:
                    raise format_error("missing field `vector`")
                points.append((parse_point_id(item["id"]), item["vector"], _payload(item)))
        elif "batch" in body:
            batch = body["batch"]
            if not isinstance(batch, dict):
                raise format_error("`batch` must be an object")
            ids, vectors = batch.get("ids"), batch.get("vectors")
            payloads = batch.get("payloads")
            if not isinstance(ids, list) or not isinstance(vectors, list):
                raise format_error("`batch` needs lists `ids` and `vectors`")
            if payloads is None:
                payloads = [None] * len(ids)
            if not isinstance(payloads, list) or not len(ids) == len(vectors) == len(payloads):
                raise bad_input("`batch` ids, vectors and payloads must have the same length")
            for pid, vec, payload in zip(ids, vectors, payloads, strict=True):
                points.append((parse_point_id(pid), vec, _payload({"payload": payload})))
        else:
            raise format_error("expected `points` or `batch`")
        op = self.engine.upsert(c, points)
        return self._update_result(req, op)

    def delete_points(self, req: Request, started: float, c: str) -> Any:
        body = req.json_object()
        if body.get("shard_key") is not None:
            raise unsupported("shard_key")
        if body.get("points") is not None:
            if not isinstance(body["points"], list):
                raise format_error("`points` must be a list of ids")
            ids = [parse_point_id(i) for i in body["points"]]
            op = self.engine.delete_points(c, ids, None)
        elif "filter" in body:
            filt = body["filter"]
            validate_filter(filt)
            op = self.engine.delete_points(c, None, filt)
        else:
            raise format_error("expected `points` or `filter`")
        return self._update_result(req, op)

    def _read_common(self, body: dict[str, Any], payload_default: bool) -> dict[str, Any]:
        return {
            "with_payload": parse_payload_selector(body.get("with_payload"), payload_default),
            "with_vector": parse_vector_selector(body.get("with_vector")),
        }

    def _query_one(self, c: str, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("prefetch", "lookup_from", "shard_key"):
            if body.get(key) not in (None, []):
                raise unsupported(f"`{key}`")
        if body.get("using") not in (None, ""):
            raise unsupported("named vectors (`using`)")
        params = body.get("params")
        if params is not None and not isinstance(params, dict):
            raise format_error("`params` must be an object")
        query = body.get("query")
        if isinstance(query, dict):
            if set(query) != {"nearest"}:
                raise unsupported(f"query {json.dumps(sorted(query))}")
            query = query["nearest"]
            if isinstance(query, dict):
                raise unsupported("sparse or multi-vector queries")
        if query is not None and not isinstance(query, list):
            query = parse_point_id(query)
        points = self.engine.search(
            c,
            query,
            body.get("filter"),
            opt_int(body, "limit", 10, minimum=1) or 10,
            opt_int(body, "offset", 0) or 0,
            opt_number(body, "score_threshold"),
            **self._read_common(body, payload_default=False),
        )
        return {"points": points}

    def query(self, req: Request, started: float, c: str) -> Any:
        return self._query_one(c, req.json_object(required=False))

    def query_batch(self, req: Request, started: float, c: str) -> Any:
        searches = req.json_object().get("searches")
        if not isinstance(searches, list):
            raise format_error("missing field `searches`")
        return [self._query_one(c, _object(s)) for s in searches]

    def _search_one(self, c: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        vector = body.get("vector")
        if isinstance(vector, dict) and "vector" in vector:
            if vector.get("name") not in (None, ""):
                raise unsupported("named vectors")
            vector = vector["vector"]
        if vector is None:
            raise format_error("missing field `vector`")
        if body.get("limit") is None:
            raise format_error("missing field `limit`")
        if body.get("params") is not None and not isinstance(body["params"], dict):
            raise format_error("`params` must be an object")
        return self.engine.search(
            c,
            vector if isinstance(vector, list) else [vector],
            body.get("filter"),
            opt_int(body, "limit", 10, minimum=1) or 10,
            opt_int(body, "offset", 0) or 0,
            opt_number(body, "score_threshold"),
            **self._read_common(body, payload_default=False),
        )

    def search(self, req: Request, started: float, c: str) -> Any:
        return self._search_one(c, req.json_object())

    def search_batch(self, req: Request, started: float, c: str) -> Any:
        searches = req.json_object().get("searches")
        if not isinstance(searches, list):
            raise format_error("missing field `searches`")
        return [self._search_one(c, _object(s)) for s in searches]

    def scroll(self, req: Request, started: float, c: str) -> Any:
        body = req.json_object(required=False)
        if body.get("order_by") is not None:
            raise unsupported("`order_by`")
        offset = body.get("offset")
        return self.engine.scroll(
            c,
            None if offset is None else parse_point_id(offset),
            opt_int(body, "limit", 10, minimum=1) or 10,
            body.get("filter"),
            **self._read_common(body, payload_default=True),
        )

    def count(self, req: Request, started: float, c: str) -> Any:
        body = req.json_object(required=False)
        opt_bool(body, "exact", True)
        return {"count": self.engine.count(c, body.get("filter"))}

    def retrieve(self, req: Request, started: float, c: str) -> Any:
        body = req.json_object()
        ids = body.get("ids")
        if not isinstance(ids, list):
            raise format_error("missing field `ids`")
        return self.engine.retrieve(
            c,
            [parse_point_id(i) for i in ids],
            **self._read_common(body, payload_default=True),
        )

    def get_point(self, req: Request, started: float, c: str, id: str) -> Any:
        pid = parse_url_point_id(id)
        found = self.engine.retrieve(c, [pid], True, True)
        if not found:
            raise ApiError(404, f"Not found: No point with id {pid} found")
        return found[0]

    # -- snapshots ----------------------------------------------------------------------

    def _snapshot_dir(self, c: str) -> str:
        return os.path.join(self.settings.snapshots_path, c)

    def create_snapshot(self, req: Request, started: float, c: str) -> Any:
        state = self.engine.dump_collection(c)
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        directory = self._snapshot_dir(c)
        makedirs_durable(directory)
        base = f"{c}-standin-{now:%Y-%m-%d-%H-%M-%S}"
        name = f"{base}.snapshot"
        counter = 1
        while os.path.exists(os.path.join(directory, name)):
            name = f"{base}-{counter}.snapshot"
            counter += 1
        data = _snapshot_tar([state], now)
        path = os.path.join(directory, name)
        write_file_atomic(path, data)
        checksum = hashlib.sha256(data).hexdigest()
        write_file_atomic(path + ".checksum", checksum.encode())
        LOG.info("created snapshot %s", path)
        return {
            "name": name,
            "creation_time": now.isoformat(timespec="seconds"),
            "size": len(data),
            "checksum": checksum,
        }

    def list_snapshots(self, req: Request, started: float, c: str) -> Any:
        if not self.engine.exists(c):
            raise collection_not_found(c)
        return _list_snapshot_files(self._snapshot_dir(c))

    def recover_snapshot(self, req: Request, started: float, c: str) -> Any:
        """PUT /collections/{c}/snapshots/recover: a file:// location below snapshots_path."""
        body = req.json_object()
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise format_error("missing field `location`")
        if not location.startswith("file://"):
            raise unsupported("a snapshot location other than file://")
        path = os.path.realpath(unquote(location[len("file://") :]))
        root = os.path.realpath(self.settings.snapshots_path)
        if os.path.commonpath([path, root]) != root or not os.path.isfile(path):
            raise ApiError(
                404, f"Not found: Snapshot file {path} not found below the snapshots directory"
            )
        with open(path, "rb") as handle:
            data = handle.read()
        checksum = body.get("checksum")
        if checksum is not None and hashlib.sha256(data).hexdigest() != str(checksum).lower():
            raise bad_input(f"Snapshot checksum mismatch: {location}")
        collections = _read_snapshot_tar(data)
        if len(collections) != 1:
            raise bad_input(f"{location} is not a collection snapshot")
        self.engine.restore_collection(c, collections[0])
        LOG.info("recovered collection %s from %s", c, path)
        return True

    def create_full_snapshot(self, req: Request, started: float) -> Any:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        directory = self.settings.snapshots_path
        makedirs_durable(directory)
        base = f"full-snapshot-{now:%Y-%m-%d-%H-%M-%S}"
        name = f"{base}.snapshot"
        counter = 1
        while os.path.exists(os.path.join(directory, name)):
            name = f"{base}-{counter}.snapshot"
            counter += 1
        data = _snapshot_tar(self.engine.dump_all(), now, full=True)
        path = os.path.join(directory, name)
        write_file_atomic(path, data)
        checksum = hashlib.sha256(data).hexdigest()
        write_file_atomic(path + ".checksum", checksum.encode())
        LOG.info("created full storage snapshot %s", path)
        return {
            "name": name,
            "creation_time": now.isoformat(timespec="seconds"),
            "size": len(data),
            "checksum": checksum,
        }

    def list_full_snapshots(self, req: Request, started: float) -> Any:
        return _list_snapshot_files(self.settings.snapshots_path)

    def _full_snapshot_path(self, s: str) -> str:
        path = os.path.join(self.settings.snapshots_path, s)
        if not SNAPSHOT_NAME.match(s) or not os.path.isfile(path):
            raise ApiError(404, f"Not found: Snapshot {s} not found")
        return path

    def download_full_snapshot(self, req: Request, started: float, s: str) -> Any:
        with open(self._full_snapshot_path(s), "rb") as handle:
            return Response(200, handle.read(), "application/octet-stream")

    def delete_full_snapshot(self, req: Request, started: float, s: str) -> Any:
        path = self._full_snapshot_path(s)
        os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".checksum")
        fsync_dir(os.path.dirname(path))
        return True

    def _snapshot_path(self, c: str, s: str) -> str:
        if not SNAPSHOT_NAME.match(s):
            raise ApiError(404, f"Not found: Snapshot {s} not found")
        path = os.path.join(self._snapshot_dir(c), s)
        if not os.path.isfile(path):
            raise ApiError(404, f"Not found: Snapshot {s} not found")
        return path

    def download_snapshot(self, req: Request, started: float, c: str, s: str) -> Any:
        with open(self._snapshot_path(c, s), "rb") as handle:
            return Response(200, handle.read(), "application/octet-stream")

    def delete_snapshot(self, req: Request, started: float, c: str, s: str) -> Any:
        path = self._snapshot_path(c, s)
        os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".checksum")
        fsync_dir(os.path.dirname(path))
        return True


def _list_snapshot_files(directory: str) -> list[dict[str, Any]]:
    if not os.path.isdir(directory):
        return []
    out = []
    for name in sorted(os.listdir(directory)):
        if not SNAPSHOT_NAME.match(name):
            continue
        path = os.path.join(directory, name)
        stat = os.stat(path)
        checksum = None
        with contextlib.suppress(OSError), open(path + ".checksum", encoding="ascii") as handle:
            checksum = handle.read().strip() or None
        created = dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC).replace(tzinfo=None)
        out.append(
            {
                "name": name,
                "creation_time": created.isoformat(timespec="seconds"),
                "size": stat.st_size,
                "checksum": checksum,
            }
        )
    return out


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise format_error("expected an object")
    return value


def _payload(item: dict[str, Any]) -> dict[str, Any]:
    payload = item.get("payload")
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise format_error("`payload` must be an object")
    return payload


def _snapshot_tar(states: list[dict[str, Any]], now: dt.datetime, full: bool = False) -> bytes:
    """A snapshot: collection.json (one collection) or, FULL, collections.json (all of them)."""
    buffer = io.BytesIO()
    mtime = int(now.replace(tzinfo=dt.UTC).timestamp())
    payload = states if full else states[0]
    files = {
        ("collections.json" if full else "collection.json"): json.dumps(
            payload, separators=(",", ":")
        ).encode(),
        "STANDIN-README.txt": (
            f"Snapshot written by the Qdrant {STANDIN_NOTE} (version {VERSION}).\n"
            "It is NOT a real Qdrant snapshot and cannot be restored into Qdrant.\n"
        ).encode(),
    }
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = mtime
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_snapshot_tar(data: bytes) -> list[dict[str, Any]]:
    """The collection dumps in a stand-in snapshot (one for a collection snapshot)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            names = tar.getnames()
            member = "collections.json" if "collections.json" in names else "collection.json"
            handle = tar.extractfile(member)
            if handle is None:
                raise KeyError(member)
            loaded = json.loads(handle.read())
    except (tarfile.TarError, KeyError, ValueError) as exc:
        raise ApiError(400, f"Bad request: not a stand-in snapshot ({exc})") from None
    states = loaded if isinstance(loaded, list) else [loaded]
    if not all(isinstance(state, dict) and "points" in state for state in states):
        raise ApiError(400, "Bad request: not a stand-in snapshot (no collection data)")
    return states


def _decode_wal_line(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    try:
        crc = int(line[:8], 16)
    except ValueError:
        return None
    body = line[9:]
    if zlib.crc32(body) != crc:
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("op"), int):
        return None
    return record


class _ClientGoneError(Exception):
    pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qdrant-standin"
    sys_version = ""
    timeout = 120
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        LOG.debug("http: " + format, *args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _read_body(self) -> bytes:
        app = self.server.app
        limit = app.max_body
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked(limit)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return b""
        try:
            length = int(length_text)
            if length < 0:
                raise ValueError(length_text)
        except ValueError:
            raise ApiError(400, "Bad request: invalid Content-Length", close=True) from None
        if length > limit:
            raise ApiError(
                413,
                f"JSON payload ({length} bytes) is larger than allowed (limit: {limit} bytes).",
                close=True,
            )
        data = self.rfile.read(length)
        if len(data) < length:
            raise _ClientGoneError
        return data

    def _read_chunked(self, limit: int) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            if not line:
                raise _ClientGoneError
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ApiError(400, "Bad request: bad chunked encoding", close=True) from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass
                return b"".join(chunks)
            total += size
            if total > limit:
                raise ApiError(
                    413, f"JSON payload is larger than allowed (limit: {limit} bytes).", close=True
                )
            chunk = self.rfile.read(size)
            if len(chunk) < size:
                raise _ClientGoneError
            chunks.append(chunk)
            self.rfile.readline(16)

    def _serve(self, method: str) -> None:
        app = self.server.app
        started = time.monotonic()
        request = Request(method, self.path, self.headers, self._read_body)  # type: ignore[arg-type]
        try:
            with app.track():
                if app.stopping.is_set():
                    response = error_response(
                        503, "Service Unavailable: shutting down", started, close=True
                    )
                else:
                    response = app.dispatch(request)
        except (_ClientGoneError, TimeoutError, ConnectionError):
            self.close_connection = True
            return
        except Exception as exc:
            LOG.exception("internal error while serving %s %s", method, self.path)
            response = error_response(
                500, f"Service internal error: {type(exc).__name__}: {exc}", started, close=True
            )
        declared = self.headers.get("Content-Length") not in (None, "0") or self.headers.get(
            "Transfer-Encoding"
        )
        if response.close or (declared and not request.body_read):
            self.close_connection = True
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(response.body)
            self.wfile.flush()
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        LOG.info(
            '%s "%s %s" %d %d %.6f',
            self.client_address[0] if self.client_address else "-",
            method,
            self.path,
            response.status,
            len(response.body),
            time.monotonic() - started,
        )

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: App) -> None:
        self.app = app
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind() does a reverse DNS lookup; skip it (no network here).
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


# ---------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------


def _configure_logging(level: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "%(asctime)s.%(msecs)03dZ %(levelname)s qdrant::standin: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def recover_storage(engine: Engine, path: str, force: bool) -> None:
    """--storage-snapshot: load every collection of a full snapshot (durably, through the WAL)."""
    with open(path, "rb") as handle:
        states = _read_snapshot_tar(handle.read())
    existing = [s["name"] for s in states if engine.exists(s["name"])]
    if existing and not force:
        raise StorageCorruptError(
            f"collection(s) {', '.join(sorted(existing))} already exist; use --force-snapshot"
            " to replace them"
        )
    for state in states:
        engine.restore_collection(state["name"], state)
    LOG.info("recovered %d collection(s) from full snapshot %s", len(states), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="qdrant",
        description=f"Qdrant {STANDIN_NOTE}: a small REST imitation used by this project's tests.",
    )
    parser.add_argument("--config-path", help="YAML configuration file")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--disable-telemetry", action="store_true", help="accepted; no effect")
    parser.add_argument(
        "--storage-snapshot",
        help="recover the whole storage from this full snapshot at start-up, then serve",
    )
    parser.add_argument(
        "--force-snapshot",
        action="store_true",
        help="with --storage-snapshot: replace collections that already exist",
    )
    parser.add_argument("--uri", help="cluster mode: accepted and ignored (one node)")
    parser.add_argument("--bootstrap", help="cluster mode: accepted and ignored (one node)")
    args = parser.parse_args(argv)
    if args.version:
        print(f"qdrant {VERSION} ({STANDIN_NOTE})")
        return 0
    try:
        settings = load_settings(args.config_path, os.environ)
    except ConfigError as exc:
        print(f"qdrant (stand-in): configuration error: {exc}", file=sys.stderr)
        return 1
    level, known_level = python_log_level(settings.log_level)
    _configure_logging(level)
    if not known_level:
        LOG.warning("unknown log_level %r, using INFO", settings.log_level)
    for note_level, message in settings.notes:
        LOG.log(note_level, "%s", message)
    for flag, value in (("--uri", args.uri), ("--bootstrap", args.bootstrap)):
        if value:
            LOG.warning("%s %s ignored: the stand-in cannot form a cluster (one node)", flag, value)
    LOG.warning("qdrant %s - this is a %s", VERSION, STANDIN_NOTE)

    engine = Engine(settings.storage_path, settings.snapshots_path)
    try:
        engine.open()
        makedirs_durable(settings.snapshots_path)
    except (StorageCorruptError, OSError) as exc:
        LOG.error("cannot open storage: %s", exc)
        return 1
    if args.storage_snapshot:
        try:
            recover_storage(engine, args.storage_snapshot, args.force_snapshot)
        except (ApiError, OSError, StorageCorruptError) as exc:
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            LOG.error("cannot recover %s: %s", args.storage_snapshot, message)
            engine.close()
            return 1
    app = App(settings, engine)
    try:
        server = _Server((settings.host, settings.http_port), app)
    except OSError as exc:
        LOG.error("cannot listen on %s:%d: %s", settings.host, settings.http_port, exc)
        engine.close()
        return 1

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        LOG.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
    )
    serving.start()
    LOG.info("Qdrant HTTP listening on %s:%d", settings.host, server.server_port)
    if settings.api_key is None and settings.read_only_api_key is None:
        LOG.warning("no API key configured: the API is open to anyone who can reach the port")

    def compactor() -> None:
        while not stop.wait(60):
            if engine.wal_bytes > 1024 * 1024:
                try:
                    engine.compact()
                except OSError:
                    LOG.exception("periodic compaction failed")

    threading.Thread(target=compactor, name="compactor", daemon=True).start()
    while not stop.wait(1.0):
        pass
    app.stopping.set()
    server.shutdown()
    server.server_close()
    if not app.wait_idle(10):
        LOG.warning("requests still running after 10 s; exiting anyway (the WAL is durable)")
    try:
        engine.compact()
    except OSError:
        LOG.exception("final compaction failed (the WAL still holds every write)")
    engine.close()
    LOG.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
