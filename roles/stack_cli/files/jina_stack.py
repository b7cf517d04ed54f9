#!/usr/bin/python3 -I
"""jina-stack: operate the code-search stack (Qdrant + the embeddings service) on this host.

    jina-stack ACTION [TARGET] [--lines N] [--follow] [--timeout S]

ACTION  start | stop | restart | status | logs | warmup | health | help
TARGET  all (default) | qdrant | jina

Installed by roles/stack_cli; its settings are in /etc/jina-stack/jina-stack.json. Python 3
standard library only. Exit codes: 0 done, 1 a systemctl action failed, 2 usage error,
3 not healthy or not ready in time, 4 needs root (run as root, or with the sudo rule).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

CONFIG_FILE = Path(os.environ.get("JINA_STACK_CONFIG", "/etc/jina-stack/jina-stack.json"))
ACTIONS = ("start", "stop", "restart", "status", "logs", "warmup", "health", "help")
TARGETS = ("all", "qdrant", "jina")
# Actions that need root: systemctl start/stop, the journal, the API key for the warmup request.
PRIVILEGED = frozenset({"start", "stop", "restart", "logs", "warmup"})
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNHEALTHY, EXIT_PERMISSION = 0, 1, 2, 3, 4
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
    args: dict = {"action": None, "target": "all", "lines": 100, "follow": False, "timeout": None}
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


def api_key(config: dict) -> str:
    """First key of JINA_OPENAI_API_KEYS in the service's EnvironmentFile ('' when open)."""
    path = config["jina"].get("env_file", "")
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return ""
    for line in lines:
        if line.startswith("JINA_OPENAI_API_KEYS="):
            value = line.split("=", 1)[1].strip().strip('"')
            return value.split(",")[0].strip()
    return ""


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
    return logs(config, names, args["lines"], args["follow"])


if __name__ == "__main__":
    sys.exit(main())
