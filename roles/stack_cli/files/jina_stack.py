#!/usr/bin/python3 -I
"""jina-stack: operate the code-search stack (Qdrant + the embeddings service) on this host.

    jina-stack ACTION [TARGET] [--lines N] [--follow] [--timeout S] [--since WHEN]

ACTION  start | stop | restart | status | logs | warmup | health | doctor | help
TARGET  all (default) | qdrant | jina
doctor  explains what Roo Code's UI does not: requests for a model id the service does not
        serve, Qdrant collections whose vector size is not the model's dimension, 401s by key,
        429s and their cause, truncated inputs. Reads the service's access log since --since:
        30m, 1h (default), 2d, or any journalctl --since value ("2026-12-02 13:00:00").
EXIT    0 done (doctor: no problem found), 1 a systemctl or journalctl call failed, 2 usage
        error, 3 not healthy or not ready in time (doctor: the service or Qdrant did not
        answer), 4 needs root (run as root, or with the sudo rule), 5 doctor found a problem.

Installed by roles/stack_cli; its settings are in /etc/jina-stack/jina-stack.json. Python 3
standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

CONFIG_FILE = Path(os.environ.get("JINA_STACK_CONFIG", "/etc/jina-stack/jina-stack.json"))
ACTIONS = ("start", "stop", "restart", "status", "logs", "warmup", "health", "doctor", "help")
TARGETS = ("all", "qdrant", "jina")
# Actions that need root: systemctl start/stop, the journal, the API keys (warmup, doctor).
PRIVILEGED = frozenset({"start", "stop", "restart", "logs", "warmup", "doctor"})
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNHEALTHY, EXIT_PERMISSION = 0, 1, 2, 3, 4
EXIT_PROBLEMS = 5
WARMUP_INPUT = "def warmup():\n    return 'jina-stack warmup'\n"

USAGE = __doc__.split("\n\n", 1)[1].split("\n\nInstalled", 1)[0]


class UsageError(Exception):
    """Bad command line."""


def log(message: str) -> None:
    print(f"jina-stack: {message}", flush=True)


def load_config() -> dict:
    try:
        return json.loads(CONFIG_FILE.read_text())
    except (OSError, ValueError) as exc:
        print(f"jina-stack: cannot read {CONFIG_FILE}: {exc}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


def parse_args(argv: Sequence[str]) -> dict:
    args: dict = {
        "action": None,
        "target": "all",
        "lines": 100,
        "follow": False,
        "timeout": None,
        "since": "1h",
    }
    positional: list[str] = []
    items = list(argv)
    while items:
        item = items.pop(0)
        if item in ("-h", "--help"):
            positional.insert(0, "help")
        elif item in ("-n", "--lines", "--timeout"):
            if not items or not items[0].isdigit():
                raise UsageError(f"{item} needs a number")
            args["lines" if item != "--timeout" else "timeout"] = int(items.pop(0))
        elif item in ("-f", "--follow"):
            args["follow"] = True
        elif item == "--since" or item.startswith("--since="):
            value = item.split("=", 1)[1] if "=" in item else (items.pop(0) if items else "")
            if not value.strip():
                raise UsageError(
                    "--since needs a time (30m, 1h, 2d, or a journalctl --since value)"
                )
            args["since"] = value
        elif item.startswith("-"):
            raise UsageError(f"unknown option {item}")
        else:
            positional.append(item)
    if not positional:
        raise UsageError("no action given")
    if len(positional) > 2:
        raise UsageError(f"too many arguments: {' '.join(positional)}")
    args["action"] = positional[0]
    if args["action"] not in ACTIONS:
        raise UsageError(f"unknown action {args['action']!r} (one of {', '.join(ACTIONS)})")
    if len(positional) == 2:
        args["target"] = positional[1]
    if args["target"] not in TARGETS:
        raise UsageError(f"unknown target {args['target']!r} (one of {', '.join(TARGETS)})")
    return args


def components(config: dict, target: str) -> list[str]:
    """The components TARGET names that this host runs, Qdrant first."""
    local = [name for name in ("qdrant", "jina") if config.get(name, {}).get("managed")]
    wanted = local if target == "all" else [target]
    missing = [name for name in wanted if name not in local]
    if missing:
        raise UsageError(f"{missing[0]} is not managed on this host (see {CONFIG_FILE})")
    return wanted


def become_root(argv: Sequence[str]) -> None:
    """Re-run through `sudo -n` (the rule roles/stack_cli writes), or exit 4."""
    if os.geteuid() == 0:
        return
    me = os.path.realpath(sys.argv[0])
    sudo = shutil.which("sudo")
    if sudo and subprocess.run([sudo, "-n", "-l", me], capture_output=True).returncode == 0:
        os.execv(sudo, [sudo, "-n", me, *argv])
    print(
        f"jina-stack: '{' '.join(argv)}' needs root: run it as root or with sudo, or add this "
        "account to stack_cli_sudo_users (passwordless sudo for jina-stack only).",
        file=sys.stderr,
    )
    sys.exit(EXIT_PERMISSION)


# --- HTTP ----------------------------------------------------------------------------------


def http(
    url: str, *, headers: dict | None = None, body: dict | None = None, timeout: float = 5
) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    except (OSError, ValueError) as exc:
        return 0, str(exc)
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def env_value(path: str, name: str) -> str:
    """NAME's value in a systemd EnvironmentFile ('' when absent or unreadable); undoes the
    double quotes and backslash escapes the roles write."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        if line.startswith(name + "="):
            value = line.split("=", 1)[1].strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            elif len(value) >= 2 and value[0] == value[-1] == "'":
                value = value[1:-1]
            return value
    return ""


def api_keys(config: dict) -> list[str]:
    """The keys of JINA_OPENAI_API_KEYS in the service's EnvironmentFile ([] when open)."""
    value = env_value(config["jina"].get("env_file", ""), "JINA_OPENAI_API_KEYS")
    return [key.strip() for key in value.split(",") if key.strip()]


def api_key(config: dict) -> str:
    """First key of JINA_OPENAI_API_KEYS in the service's EnvironmentFile ('' when open)."""
    keys = api_keys(config)
    return keys[0] if keys else ""


def qdrant_api_key(config: dict) -> str:
    """Qdrant's read-only key, else its admin key, from its EnvironmentFile ('' when none)."""
    path = config["qdrant"].get("env_file", "")
    return env_value(path, "QDRANT__SERVICE__READ_ONLY_API_KEY") or env_value(
        path, "QDRANT__SERVICE__API_KEY"
    )


def ready(config: dict, name: str) -> tuple[bool, str]:
    if name == "qdrant":
        status, _ = http(config["qdrant"]["url"] + "/readyz")
    else:
        status, _ = http(config["jina"]["url"] + "/ready")
    return status == 200, str(status or "no answer")


def wait_ready(config: dict, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        ok, _ = ready(config, name)
        if ok:
            return True
        if time.monotonic() >= deadline or unit_state(config, name)[0] not in (
            "active",
            "activating",
            "reloading",
        ):
            return False
        time.sleep(1)


def warmup(config: dict, timeout: float) -> int:
    """Wait for /ready, then embed one input as Roo Code does (base64)."""
    started = time.monotonic()
    if not wait_ready(config, "jina", timeout):
        log(
            f"jina: /ready did not answer 200 within {timeout:.0f} s"
            f" (unit {unit_state(config, 'jina')[0]})"
        )
        return EXIT_UNHEALTHY
    waited = time.monotonic() - started
    status, ready_body = http(config["jina"]["url"] + "/ready")
    model = ready_body.get("model", "") if isinstance(ready_body, dict) else ""
    key = api_key(config)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"input": [WARMUP_INPUT], "model": model, "encoding_format": "base64"}
    t0 = time.monotonic()
    status, answer = http(
        config["jina"]["url"] + "/v1/embeddings", headers=headers, body=body, timeout=120
    )
    took = time.monotonic() - t0
    try:
        vector = base64.b64decode(answer["data"][0]["embedding"])  # type: ignore[index]
        dimension = len(struct.unpack(f"<{len(vector) // 4}f", vector))
    except (KeyError, IndexError, TypeError, ValueError, struct.error):
        log(f"jina: warmup request answered {status}: {str(answer)[:300]}")
        return EXIT_UNHEALTHY
    log(
        f"jina: ready after {waited:.1f} s; warmup embedding ({model}, {dimension} dims)"
        f" took {took * 1000:.0f} ms"
    )
    return EXIT_OK


# --- systemd -----------------------------------------------------------------------------------


def unit(config: dict, name: str) -> str:
    return config[name]["unit"]


def unit_state(config: dict, name: str) -> tuple[str, dict]:
    result = subprocess.run(
        [
            "systemctl",
            "show",
            unit(config, name),
            "--property",
            "ActiveState,SubState,MainPID,MemoryMax,ControlGroup,LoadState",
        ],
        capture_output=True,
        text=True,
    )
    props = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    return props.get("ActiveState", "unknown"), props


def systemctl(verb: str, config: dict, name: str) -> int:
    log(f"{verb} {unit(config, name)}")
    result = subprocess.run(["systemctl", verb, unit(config, name)], check=False)
    if result.returncode != 0:
        log(
            f"systemctl {verb} {unit(config, name)} failed (exit {result.returncode});"
            f" see: jina-stack logs {name}"
        )
        return EXIT_FAILED
    return EXIT_OK


def start(config: dict, names: list[str], verb: str, timeout: float) -> int:
    for name in names:  # Qdrant first: the embeddings service is what Roo Code calls first
        rc = systemctl(verb, config, name)
        if rc:
            return rc
        if name == "qdrant":
            if not wait_ready(config, "qdrant", timeout):
                log(f"qdrant: /readyz did not answer 200 within {timeout:.0f} s")
                return EXIT_UNHEALTHY
            log("qdrant: ready")
        else:
            rc = warmup(config, timeout)
            if rc:
                return rc
    return EXIT_OK


def stop(config: dict, names: list[str]) -> int:
    rc = EXIT_OK
    for name in reversed(names):  # the embeddings service first, Qdrant last
        rc = systemctl("stop", config, name) or rc
    return rc


def rss_bytes(props: dict) -> int:
    """Resident memory of every process in the unit's cgroup (cgroup v1 or v2)."""
    group = props.get("ControlGroup", "")
    pids: set[str] = set()
    if group:
        for root in ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            try:
                pids.update(Path(root + group, "cgroup.procs").read_text().split())
            except OSError:
                continue
    if not pids and props.get("MainPID", "0") != "0":
        pids.add(props["MainPID"])
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (OSError, ValueError):
            continue
    return total


def human(size: float) -> str:
    for unit_name in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit_name == "GiB":
            return f"{size:.0f} {unit_name}" if unit_name == "B" else f"{size:.1f} {unit_name}"
        size /= 1024
    return f"{size:.1f} GiB"


def status(config: dict, names: list[str]) -> int:
    rows = [("COMPONENT", "UNIT", "STATE", "PID", "PORT", "READY", "RSS / MemoryMax")]
    healthy = True
    for name in names:
        state, props = unit_state(config, name)
        is_ready, answer = ready(config, name) if state == "active" else (False, "-")
        healthy = healthy and state == "active" and is_ready
        rss = rss_bytes(props) if state == "active" else 0
        limit = props.get("MemoryMax", "infinity")
        if limit.isdigit():
            memory = f"{human(rss)} / {human(int(limit))} ({100 * rss / int(limit):.0f}%)"
        else:
            memory = f"{human(rss)} / {limit}"
        rows.append(
            (
                name,
                unit(config, name),
                f"{state}/{props.get('SubState', '?')}",
                props.get("MainPID", "0"),
                str(config[name]["port"]),
                "yes" if is_ready else f"no ({answer})",
                memory,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return EXIT_OK if healthy else EXIT_UNHEALTHY


def health(config: dict, names: list[str]) -> int:
    healthy = True
    for name in names:
        is_ready, answer = ready(config, name)
        healthy = healthy and is_ready
        print(f"{name}: {'ready' if is_ready else 'NOT READY (' + answer + ')'}")
    return EXIT_OK if healthy else EXIT_UNHEALTHY


def logs(config: dict, names: list[str], lines: int, follow: bool) -> int:
    command = ["journalctl", "--no-pager", "--output", "short-iso", "--lines", str(lines)]
    for name in names:
        command += ["--unit", unit(config, name)]
    if follow:
        command.append("--follow")
    return subprocess.run(command, check=False).returncode and EXIT_FAILED


# --- doctor --------------------------------------------------------------------------------
# Reads the service's access log (journald, one JSON line per request: api/request_log.py),
# GET /info and Qdrant's collections, and says in words what Roo Code's UI does not (Roo shows
# a fixed text per HTTP status and drops the server's message).

ROO_COLLECTION = re.compile(r"^ws-[0-9a-f]{16}$")  # ws- + sha256(workspace folder)[:16]
ROO_BUILTIN_MODELS = frozenset(
    {
        "text-embedding-3-small",
        "text-embedding-3-large",
        "text-embedding-ada-002",
        "nomic-embed-code",
    }
)
DURATION = re.compile(r"^(\d+)\s*(s|m|min|h|d)$")
SECONDS_PER = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
ROO_GIVES_UP = (
    "Roo retries a refused batch 3 times (waiting 5 s, doubling up to 300 s, shared by every "
    "batch), and when more than 10 % of its blocks fail it ends indexing in Error and drops the "
    "workspace's whole index"
)
OVERLOAD_CAUSES = {
    "queue_wait": (
        "the work queued ahead would have taken longer than max_queue_wait_s ({max_queue_wait_s} s)"
        " at the measured ~{tokens_per_s} tokens/s: more indexing traffic than this host embeds"
        " in time (several workspaces or VS Code windows indexing at once)",
        "index fewer workspaces at once, add capacity (jina_embeddings_workers, another host), or"
        " raise jina_embeddings_max_queue_wait_s (below 300 s: Roo's client gives up there)",
    ),
    "queued_tokens": (
        "the tokens admitted and not yet embedded reached max_queued_tokens ({max_queued_tokens})",
        "raise jina_embeddings_max_queued_tokens, or the memory it derives from"
        " (jina_embeddings_memory_high_mb)",
    ),
    "queued_requests": (
        "max_queued_requests ({max_queued_requests}) requests were already waiting",
        "raise jina_embeddings_max_queued_requests",
    ),
    "request_memory": (
        "the memory held by requests in flight reached max_held_bytes ({max_held_bytes})",
        "raise jina_embeddings_memory_high_mb, or send smaller batches (Roo's setting"
        " roo-cline.codeIndex.embeddingBatchSize)",
    ),
    "shutting_down": (
        "the service was stopping or restarting (jina-stack restart, a worker replaced)",
        "nothing, unless it is often: then see why the service restarts (jina-stack logs jina)",
    ),
}


def since_argument(value: str, now: float) -> str:
    """--since for journalctl: a duration (30m, 1h, 2d) becomes "@EPOCH"; anything else
    (a date, "@EPOCH", "today") is journalctl's own syntax and passes unchanged."""
    match = DURATION.match(value.strip())
    if not match:
        return value
    return f"@{int(now - int(match.group(1)) * SECONDS_PER[match.group(2)])}"


def access_records(lines: Iterable[str]) -> tuple[list[dict], int]:
    """The request lines of the access log, and how many access lines were not JSON."""
    records: list[dict] = []
    not_json = 0
    for line in lines:
        text = line.strip()
        if not text.startswith("{"):
            not_json += "jina_openai.access" in text
            continue
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "request":
            records.append(record)
    return records, not_json


def fingerprint(key: str) -> str:
    """As the service logs a key (api/auth.py key_fingerprint): sha256, 12 hex digits."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _clients(records: list[dict]) -> str:
    seen = sorted({str(r.get("client")) for r in records if r.get("client")})
    if not seen:
        return ""
    more = f" and {len(seen) - 3} more" if len(seen) > 3 else ""
    return " from " + ", ".join(seen[:3]) + more


def _requests(count: int) -> str:
    return f"{count} request{'s' if count != 1 else ''}"


def _were(count: int) -> str:
    return f"{_requests(count)} {'was' if count == 1 else 'were'}"


def model_findings(records: list[dict], model: dict) -> list[str]:
    served = model.get("id", "?")
    aliases = model.get("aliases") or []
    also = f" (also accepted: {', '.join(repr(a) for a in aliases)})" if aliases else ""
    wrong = [r for r in records if r.get("error_code") == "model_not_found"]
    findings = []
    for requested, count in Counter(str(r.get("requested_model", "?")) for r in wrong).items():
        mine = [r for r in wrong if str(r.get("requested_model", "?")) == requested]
        text = (
            f"{_requests(count)} asked for model '{requested}'{_clients(mine)}; this service"
            f" serves '{served}'{also}. Roo's settings check shows \"Invalid API endpoint. Please"
            ' check your URL configuration." for this 404 although the URL is right. Fix: set'
            f" Roo's Model ID (codebaseIndexEmbedderModelId) to '{served}' and its Model"
            f" Dimension to {model.get('dimension', '?')}."
        )
        if requested in ROO_BUILTIN_MODELS:
            text += (
                f" '{requested}' is one of Roo's built-in OpenAI names: Roo takes its dimension"
                " from its own table, not from the Model Dimension setting."
            )
        findings.append(text)
    return findings


def auth_findings(records: list[dict], configured: list[str]) -> list[str]:
    accepted = ", ".join(fingerprint(key) for key in configured) or "none"
    findings = []
    refused = [r for r in records if r.get("status") == 401]
    by_key = Counter(str(r.get("key") or "") for r in refused)
    for key, count in sorted(by_key.items()):
        mine = [r for r in refused if str(r.get("key") or "") == key]
        if key:
            findings.append(
                f"{_were(count)} refused with 401{_clients(mine)}: they presented the"
                f" API key with fingerprint {key} (sha256 of the key, first 12 hex digits), which"
                f" is not one of the {len(configured)} key(s) this service accepts (fingerprints:"
                f' {accepted}). Roo shows "Authentication failed". Fix: enter a key of'
                " jina_embeddings_api_keys as Roo's API key (codebaseIndexOpenAiCompatibleApiKey);"
                " an old key in another VS Code window or workspace is the usual cause."
            )
        else:
            findings.append(
                f"{_were(count)} refused with 401{_clients(mine)}: they sent no API key."
                ' Roo shows "Authentication failed". Fix: enter a key of jina_embeddings_api_keys'
                " as Roo's API key (codebaseIndexOpenAiCompatibleApiKey)."
            )
    return findings


def overload_findings(records: list[dict], info: dict) -> list[str]:
    limits = dict(info.get("limits") or {})
    limits["tokens_per_s"] = info.get("measured_tokens_per_s", "?")
    refused = [r for r in records if r.get("status") == 429]
    findings = []
    for reason, count in Counter(str(r.get("reason") or "capacity") for r in refused).items():
        mine = [r for r in refused if str(r.get("reason") or "capacity") == reason]
        cause, fix = OVERLOAD_CAUSES.get(
            reason, ("the server was at capacity", "see jina-stack logs jina for the message")
        )
        with contextlib.suppress(KeyError, IndexError, ValueError):
            cause = cause.format(**limits)
        findings.append(
            f"{_were(count)} refused with 429 (server overloaded, reason {reason})"
            f"{_clients(mine)}: {cause}. Roo's settings check shows \"The embedder service is not"
            f' available"; while indexing, {ROO_GIVES_UP}. Fix: {fix}.'
        )
    return findings


def truncation_findings(records: list[dict], info: dict) -> list[str]:
    truncated = [r for r in records if r.get("truncated_inputs")]
    if not truncated:
        return []
    inputs = sum(int(r["truncated_inputs"]) for r in truncated)
    limit = (info.get("model") or {}).get("max_input_tokens", "?")
    return [
        f"{inputs} input(s) in {_requests(len(truncated))}{_clients(truncated)} were longer than"
        f" the model's max_input_tokens ({limit}) and were cut to it (truncate_inputs is on): the"
        " text after that point of those chunks is not embedded, so search cannot find it. Roo"
        " does not show this. Fix: if jina_embeddings_max_input_tokens is set below the model's"
        " limit, raise it; otherwise these chunks come from very long lines (minified code, data"
        " files): list such files in .rooignore."
    ]


def collection_findings(collections: dict[str, tuple[int | None, int]], model: dict) -> list[str]:
    """collections: Roo's collection name -> (vector size, points)."""
    dimension = model.get("dimension")
    findings = []
    for name, (size, points) in sorted(collections.items()):
        if size is None or size == dimension:
            continue
        findings.append(
            f"Qdrant collection {name} ({points} points) has vector size {size}, but the served"
            f" model '{model.get('id', '?')}' makes {dimension}-dimensional vectors. While Roo's"
            f" Model Dimension (codebaseIndexEmbedderModelDimension) is {size}, every upsert into"
            ' it fails and Roo shows "Failed to process batch after 3 attempts: Bad Request".'
            f" Fix: set Roo's Model Dimension to {dimension}; at its next indexing start Roo sees"
            f" the size mismatch, deletes {name} and creates it again with size {dimension}, and"
            " embeds the whole workspace again (the points in it now are lost either way)."
        )
    return findings


def vector_size(collection: dict) -> int | None:
    """The vector size of a GET /collections/NAME result (one unnamed vector, or the first
    named one)."""
    vectors = ((collection.get("config") or {}).get("params") or {}).get("vectors") or {}
    if isinstance(vectors.get("size"), int):
        return vectors["size"]
    for value in vectors.values():
        if isinstance(value, dict) and isinstance(value.get("size"), int):
            return value["size"]
    return None


def roo_collections(config: dict) -> tuple[dict[str, tuple[int | None, int]], int, str]:
    """Roo's collections (name -> (size, points)), how many others there are, and an error."""
    url = config["qdrant"]["url"]
    key = qdrant_api_key(config)
    headers = {"api-key": key} if key else {}
    status, body = http(url + "/collections", headers=headers)
    if status in (401, 403):
        where = config["qdrant"].get("env_file", "")
        return (
            {},
            0,
            (
                f"GET {url}/collections answered {status}: Qdrant wants an API key and"
                f" {'none' if not key else 'the one'} read from {where or '(no env_file set)'}"
                f" {'was found' if not key else 'was refused'} (stack_cli_qdrant_env_file)"
            ),
        )
    if status != 200 or not isinstance(body, dict):
        return {}, 0, f"GET {url}/collections answered {status or 'nothing'}: {str(body)[:200]}"
    names = [c.get("name", "") for c in (body.get("result") or {}).get("collections", [])]
    found: dict[str, tuple[int | None, int]] = {}
    for name in names:
        if not ROO_COLLECTION.match(name):
            continue
        status, detail = http(f"{url}/collections/{name}", headers=headers)
        result = detail.get("result") if isinstance(detail, dict) else None
        if status != 200 or not isinstance(result, dict):
            return found, 0, f"GET {url}/collections/{name} answered {status or 'nothing'}"
        found[name] = (vector_size(result), int(result.get("points_count") or 0))
    return found, len(names) - len(found), ""


def journal_lines(config: dict, since: str) -> tuple[list[str], str]:
    command = ["journalctl", "--no-pager", "--output", "cat", "--unit", unit(config, "jina")]
    result = subprocess.run(
        [*command, "--since", since], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return [], f"journalctl --since {since!r} failed: {result.stderr.strip()[:300]}"
    return result.stdout.splitlines(), ""


def doctor(config: dict, since: str) -> int:
    if not config.get("jina", {}).get("managed"):
        print(
            "jina-stack doctor: the embeddings service does not run on this host", file=sys.stderr
        )
        return EXIT_USAGE
    keys = api_keys(config)
    headers = {"Authorization": f"Bearer {keys[0]}"} if keys else {}
    status, info = http(config["jina"]["url"] + "/info", headers=headers)
    if status != 200 or not isinstance(info, dict):
        log(f"doctor: GET /info answered {status or 'nothing'}: {str(info)[:300]}")
        log("doctor: is the service up? (jina-stack status, jina-stack logs jina)")
        return EXIT_UNHEALTHY
    model = info.get("model") or {}
    journal_since = since_argument(since, time.time())
    lines, error = journal_lines(config, journal_since)
    if error:
        log(f"doctor: {error}")
        return EXIT_FAILED
    records, not_json = access_records(lines)
    problems: list[str] = []
    if not_json and not records:
        problems.append(
            f"{not_json} access log line(s) are not JSON, so doctor cannot read them. Fix: set"
            " jina_embeddings_log_format: json."
        )
    problems += model_findings(records, model)
    problems += auth_findings(records, keys)
    problems += overload_findings(records, info)
    problems += truncation_findings(records, info)
    checked = f"{_requests(len(records))} in the access log since {since}"
    if config.get("qdrant", {}).get("managed"):
        collections, others, error = roo_collections(config)
        if error:
            log(f"doctor: {error}")
            return EXIT_UNHEALTHY
        problems += collection_findings(collections, model)
        checked += f", {len(collections)} Roo collection(s) in Qdrant"
        checked += f" ({others} other(s) not checked)" if others else ""
    log(
        f"doctor: model '{model.get('id', '?')}' ({model.get('dimension', '?')} dims,"
        f" max_input_tokens {model.get('max_input_tokens', '?')}); checked {checked}"
    )
    for number, problem in enumerate(problems, 1):
        print(f"\nPROBLEM {number}: {problem}")
    if problems:
        print()
        log(f"doctor: {len(problems)} problem(s) found")
        return EXIT_PROBLEMS
    log("doctor: no problem found")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(f"jina-stack: {exc}\n\n{USAGE}", file=sys.stderr)
        return EXIT_USAGE
    if args["action"] == "help":
        print(USAGE)
        return EXIT_OK
    config = load_config()
    try:
        names = components(config, args["target"])
    except UsageError as exc:
        print(f"jina-stack: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args["action"] in PRIVILEGED:
        become_root(argv)
    timeout = float(args["timeout"] or config.get("warmup_timeout", 300))
    action = args["action"]
    if action == "start":
        return start(config, names, "start", timeout)
    if action == "restart":
        return start(config, names, "restart", timeout)
    if action == "stop":
        return stop(config, names)
    if action == "warmup":
        if "qdrant" in names and not wait_ready(config, "qdrant", timeout):
            log("qdrant: not ready")
            return EXIT_UNHEALTHY
        return warmup(config, timeout) if "jina" in names else EXIT_OK
    if action == "status":
        return status(config, names)
    if action == "health":
        return health(config, names)
    if action == "doctor":
        return doctor(config, args["since"])
    return logs(config, names, args["lines"], args["follow"])


if __name__ == "__main__":
    sys.exit(main())
