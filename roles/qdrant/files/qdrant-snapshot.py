#!/usr/bin/python3
"""Snapshot every Qdrant collection, prune the timer's own old snapshots, copy them away.

Installed by roles/qdrant as /usr/local/libexec/qdrant-snapshot; qdrant-snapshot.service runs
``qdrant-snapshot run``. Standard library only.

  qdrant-snapshot run                          snapshot, prune, copy (the timer)
  qdrant-snapshot list [COLLECTION]            snapshots and whether the timer made them
  qdrant-snapshot restore COLLECTION [NAME]    recover COLLECTION from snapshot NAME (default:
                                               the timer's newest, else the newest); the current
                                               state is snapshotted first
  qdrant-snapshot metrics                      record the run that just ended for Prometheus
                                               (ExecStopPost of the service, as root)

``run`` keeps going after an error: every failed collection (and a failed copy) is reported on
stderr and makes the exit status 1, but the other collections are still snapshotted. Pruning
only ever deletes snapshots this program created (recorded in its state file), newest
``QDRANT_SNAPSHOT_KEEP`` kept: snapshots taken by hand or before an upgrade are never touched.

Environment:
  QDRANT_URL                  base URL, default http://127.0.0.1:6333
  QDRANT__SERVICE__API_KEY    API key, when one is set (from /etc/qdrant/qdrant.env)
  QDRANT_SNAPSHOT_KEEP        own snapshots kept per collection (>= 1), default 7
  QDRANT_SNAPSHOT_TIMEOUT     seconds per API call, default 3600 (large collections take long)
  QDRANT_SNAPSHOT_STATE       state file, default /var/lib/qdrant-snapshot/own-snapshots.json
  QDRANT_SNAPSHOTS_PATH       Qdrant's storage.snapshots_path (for restore and copy)
  QDRANT_SNAPSHOT_COPY_DEST   rsync destination (DIR or [USER@]HOST:DIR); empty: no copy
  QDRANT_SNAPSHOT_RSYNC_ARGS  extra rsync arguments (shell words), e.g. --delete
  RSYNC_RSH                   remote shell for rsync, e.g. "ssh -i KEY -o BatchMode=yes"
  QDRANT_SNAPSHOT_TEXTFILE_DIR  node exporter textfile directory ``metrics`` writes
                              jina_stack_qdrant_snapshot.prom into; empty: no metrics
  SERVICE_RESULT, EXIT_STATUS set by systemd for ExecStopPost: the outcome ``metrics`` records

``metrics`` runs after every run, also one that was killed or timed out (systemd's
SERVICE_RESULT says so), and replaces the file atomically: the time of this run, whether it
succeeded, and the time of the last success (carried over from the previous file; 0 if none).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_STATE = "/var/lib/qdrant-snapshot/own-snapshots.json"
TEXTFILE_NAME = "jina_stack_qdrant_snapshot.prom"
LAST_SUCCESS = "jina_stack_qdrant_snapshot_last_success_timestamp_seconds"
LAST_RUN = "jina_stack_qdrant_snapshot_last_run_timestamp_seconds"
LAST_RUN_OK = "jina_stack_qdrant_snapshot_last_run_ok"
# What one failed API call can raise: refused/reset/timed-out connections (OSError, which
# covers URLError, TimeoutError and RemoteDisconnected), a garbled answer, an unexpected body.
CALL_ERRORS = (OSError, http.client.HTTPException, ValueError, KeyError, TypeError)


class Api:
    def __init__(self, env: dict[str, str]) -> None:
        self.base = env.get("QDRANT_URL", "http://127.0.0.1:6333").rstrip("/")
        self.api_key = env.get("QDRANT__SERVICE__API_KEY", "")
        self.timeout = float(env.get("QDRANT_SNAPSHOT_TIMEOUT", "3600"))

    def call(self, method: str, path: str, body: object = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, method=method, data=data)
        if data is not None:
            request.add_header("content-type", "application/json")
        if self.api_key:
            request.add_header("api-key", self.api_key)
        # Loopback: the certificate is for the public name, not for 127.0.0.1.
        context = ssl._create_unverified_context() if self.base.startswith("https:") else None
        with urllib.request.urlopen(request, timeout=self.timeout, context=context) as response:
            return json.load(response).get("result")


def describe(error: BaseException) -> str:
    """One line for the journal; the server's own message for an HTTP error."""
    if isinstance(error, urllib.error.HTTPError):
        try:
            detail = json.loads(error.read() or b"{}").get("status", {}).get("error", "")
        except (ValueError, AttributeError, OSError):
            detail = ""
        return f"HTTP {error.code} {error.reason}{': ' + detail if detail else ''}"
    return f"{type(error).__name__}: {error}"


def load_state(path: str) -> dict[str, list[str]]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return {str(k): [str(n) for n in v] for k, v in data.items() if isinstance(v, list)}


def save_state(path: str, state: dict[str, list[str]]) -> None:
    """Atomically and durably: a lost state file only means old snapshots are not pruned."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".own-snapshots-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def newest_first(snapshots: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(snapshots, key=lambda s: (s.get("creation_time") or "", s["name"]), reverse=True)


def snapshot_collection(
    api: Api, name: str, keep: int, own: list[str], errors: list[str]
) -> list[str]:
    """Snapshot NAME and prune its old own snapshots; returns the own names that remain."""
    quoted = urllib.parse.quote(name, safe="")
    created = api.call("POST", f"/collections/{quoted}/snapshots?wait=true")
    own = [*own, created["name"]]
    print(f"{name}: created snapshot {created['name']}")
    listed = api.call("GET", f"/collections/{quoted}/snapshots") or []
    present = {s["name"] for s in listed}
    mine = [s for s in newest_first(listed) if s["name"] in own]
    kept = [s["name"] for s in mine[:keep]]
    for old in mine[keep:]:
        old_name = urllib.parse.quote(old["name"], safe="")
        try:
            api.call("DELETE", f"/collections/{quoted}/snapshots/{old_name}?wait=true")
            print(f"{name}: deleted old snapshot {old['name']}")
        except CALL_ERRORS as error:
            kept.append(old["name"])  # still ours: try again next run
            errors.append(f"{name}: could not delete old snapshot {old['name']}: {describe(error)}")
    others = sorted(present - set(own))
    if others:
        print(f"{name}: left alone (not made by this timer): {', '.join(others)}")
    return kept


def copy_snapshots(env: dict[str, str], errors: list[str]) -> None:
    dest = env.get("QDRANT_SNAPSHOT_COPY_DEST", "")
    if not dest:
        return
    source = env.get("QDRANT_SNAPSHOTS_PATH", "")
    if not source:
        errors.append("copy: QDRANT_SNAPSHOTS_PATH is not set")
        return
    argv = [
        "rsync",
        "--archive",
        "--partial",
        "--exclude=.*",
        *shlex.split(env.get("QDRANT_SNAPSHOT_RSYNC_ARGS", "")),
        source.rstrip("/") + "/",
        dest,
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    except OSError as error:
        errors.append(f"copy to {dest}: cannot run rsync: {error}")
        return
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        errors.append(f"copy to {dest}: rsync exited {done.returncode}: {' | '.join(tail)}")
    else:
        print(f"copied {source} to {dest}")


def run(env: dict[str, str]) -> int:
    keep = int(env.get("QDRANT_SNAPSHOT_KEEP", "7"))
    if keep < 1:
        print("QDRANT_SNAPSHOT_KEEP must be at least 1", file=sys.stderr)
        return 2
    api = Api(env)
    state_path = env.get("QDRANT_SNAPSHOT_STATE", DEFAULT_STATE)
    errors: list[str] = []
    try:
        state = load_state(state_path)
    except (OSError, ValueError) as error:
        # Unreadable: prune nothing this run (safe), but still snapshot and say so.
        errors.append(f"state file {state_path}: {describe(error)}; nothing pruned")
        state = {}
        state_path = ""
    try:
        collections = [c["name"] for c in api.call("GET", "/collections")["collections"]]
    except CALL_ERRORS as error:
        errors.append(f"cannot list collections: {describe(error)}")
        collections = []
    done = 0
    for name in collections:
        try:
            state[name] = snapshot_collection(api, name, keep, state.get(name, []), errors)
            done += 1
        except CALL_ERRORS as error:
            errors.append(f"{name}: snapshot failed: {describe(error)}")
        if state_path:
            try:
                save_state(state_path, state)
            except OSError as error:
                errors.append(f"state file {state_path}: {describe(error)}")
                state_path = ""
    copy_snapshots(env, errors)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    print(f"snapshotted {done} of {len(collections)} collections, {len(errors)} error(s)")
    return 1 if errors else 0


def list_snapshots(env: dict[str, str], only: str | None) -> int:
    api = Api(env)
    state = load_state(env.get("QDRANT_SNAPSHOT_STATE", DEFAULT_STATE))
    names = [only] if only else [c["name"] for c in api.call("GET", "/collections")["collections"]]
    for name in names:
        quoted = urllib.parse.quote(name, safe="")
        for snap in newest_first(api.call("GET", f"/collections/{quoted}/snapshots") or []):
            origin = "timer" if snap["name"] in state.get(name, []) else "other"
            print(f"{name}\t{snap['name']}\t{snap.get('creation_time')}\t{origin}")
    return 0


def restore(env: dict[str, str], name: str, snapshot: str | None) -> int:
    api = Api(env)
    snapshots_path = env.get("QDRANT_SNAPSHOTS_PATH", "")
    if not snapshots_path:
        print("QDRANT_SNAPSHOTS_PATH must be set for restore", file=sys.stderr)
        return 2
    quoted = urllib.parse.quote(name, safe="")
    try:
        listed = newest_first(api.call("GET", f"/collections/{quoted}/snapshots") or [])
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise
        listed = []  # the collection is gone; its snapshot files may still be there
        directory = os.path.join(snapshots_path, name)
        if os.path.isdir(directory):
            listed = [
                {"name": f, "creation_time": "", "checksum": None}
                for f in sorted(os.listdir(directory), reverse=True)
                if f.endswith(".snapshot")
            ]
    if snapshot is None:
        # The timer's newest first: a snapshot a restore took of the state it replaced is newer,
        # but it is that restore's undo (named in its output), not the backup to go back to.
        own = set(load_state(env.get("QDRANT_SNAPSHOT_STATE", DEFAULT_STATE)).get(name, []))
        listed = [s for s in listed if s["name"] in own] + [
            s for s in listed if s["name"] not in own
        ]
    chosen = next((s for s in listed if snapshot in (None, s["name"])), None)
    if chosen is None:
        have = ", ".join(s["name"] for s in listed) or "none"
        print(f"{name}: no snapshot {snapshot or '(any)'}; available: {have}", file=sys.stderr)
        return 1
    exists = api.call("GET", f"/collections/{quoted}/exists") or {}
    if exists.get("exists"):
        # Whatever is there now is kept as a snapshot the timer never prunes.
        safety = api.call("POST", f"/collections/{quoted}/snapshots?wait=true")
        print(f"{name}: current state kept as snapshot {safety['name']}")
    location = "file://" + os.path.join(snapshots_path, name, chosen["name"])
    body: dict[str, Any] = {"location": location}
    if chosen.get("checksum"):
        body["checksum"] = chosen["checksum"]
    api.call("PUT", f"/collections/{quoted}/snapshots/recover?wait=true", body)
    print(f"{name}: restored from {chosen['name']}")
    return 0


def previous_success(path: str) -> float:
    """The last-success time recorded in an earlier metrics file; 0 when there is none."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) == 2 and fields[0] == LAST_SUCCESS:
                    return float(fields[1])
    except (OSError, ValueError):
        pass
    return 0.0


def render_metrics(now: float, ok: bool, last_success: float) -> str:
    return (
        f"# HELP {LAST_RUN} When the last qdrant-snapshot run ended.\n"
        f"# TYPE {LAST_RUN} gauge\n"
        f"{LAST_RUN} {now:.3f}\n"
        f"# HELP {LAST_RUN_OK} 1 if the last qdrant-snapshot run succeeded, else 0.\n"
        f"# TYPE {LAST_RUN_OK} gauge\n"
        f"{LAST_RUN_OK} {1 if ok else 0}\n"
        f"# HELP {LAST_SUCCESS} When a qdrant-snapshot run last succeeded (0: never).\n"
        f"# TYPE {LAST_SUCCESS} gauge\n"
        f"{LAST_SUCCESS} {last_success:.3f}\n"
    )


def write_metrics(env: dict[str, str], now: float | None = None) -> int:
    """Record the run systemd just finished (SERVICE_RESULT, EXIT_STATUS) as a textfile."""
    directory = env.get("QDRANT_SNAPSHOT_TEXTFILE_DIR", "")
    if not directory:
        print("QDRANT_SNAPSHOT_TEXTFILE_DIR is not set: no metrics written", file=sys.stderr)
        return 2
    now = time.time() if now is None else now
    ok = env.get("SERVICE_RESULT") == "success" and env.get("EXIT_STATUS", "0") == "0"
    path = os.path.join(directory, TEXTFILE_NAME)
    last_success = now if ok else previous_success(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    # The node exporter reads only *.prom: the dot-named temporary file is never half-read.
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{TEXTFILE_NAME}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render_metrics(now, ok, last_success))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    print(f"metrics: last run {'ok' if ok else 'failed'}, written to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qdrant-snapshot", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("run", help="snapshot every collection, prune own old ones, copy")
    listing = sub.add_parser("list", help="list snapshots and who made them")
    listing.add_argument("collection", nargs="?")
    restoring = sub.add_parser("restore", help="recover a collection from a snapshot")
    restoring.add_argument("collection")
    restoring.add_argument("snapshot", nargs="?")
    sub.add_parser("metrics", help="write the textfile metrics of the run that just ended")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    if args.command in (None, "run"):
        return run(env)
    if args.command == "metrics":
        return write_metrics(env)
    try:
        if args.command == "list":
            return list_snapshots(env, args.collection)
        return restore(env, args.collection, args.snapshot)
    except CALL_ERRORS as error:
        print(f"{args.command} failed: {describe(error)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
