"""Probe (molecule/team, on the proxy): the embeddings backend's servers from HAProxy's stats
socket (`show stat`) and haproxy_server_status from its Prometheus endpoint; with wait_for,
polls until that server has that status or the timeout passes. seen_at: CLOCK_MONOTONIC.
"""

import csv
import io
import json
import socket
import sys
import time
import urllib.request

args = json.loads(sys.argv[1])


def show_stat():
    with socket.socket(socket.AF_UNIX) as s:
        s.connect("/run/haproxy/admin.sock")
        s.sendall(b"show stat\n")
        chunks = []
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    return {
        r["svname"]: {
            "status": r["status"],
            "stot": int(r["stot"] or 0),
            "check_status": r["check_status"],
        }
        for r in csv.DictReader(io.StringIO(text))
        if r["pxname"] == "embeddings" and r["svname"] not in ("FRONTEND", "BACKEND")
    }


def metrics():
    with urllib.request.urlopen(args["metrics_url"], timeout=10) as r:
        text = r.read().decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith("haproxy_server_status{") and 'proxy="embeddings"' in line
    ]


want = args.get("wait_for")
deadline = time.monotonic() + args.get("timeout", 0)
while True:
    seen_at = time.clock_gettime(time.CLOCK_MONOTONIC)
    servers = show_stat()
    if not want or servers[want["server"]]["status"] == want["status"]:
        break
    if time.monotonic() > deadline:
        break
    time.sleep(0.2)
print(json.dumps({"servers": servers, "seen_at": seen_at, "metrics": metrics()}))
