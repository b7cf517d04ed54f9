"""Probe (molecule/team, on a Qdrant peer): the running Qdrant's argv and API keys (from its
environment), its nftables table, and when its unit first started and first listened (journal,
realtime microseconds).
"""

import json
import subprocess
from pathlib import Path


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


pid = run("systemctl", "show", "qdrant.service", "-p", "MainPID", "--value").strip()
argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")
environ = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
keys = sorted(e for e in environ if e.startswith("QDRANT__SERVICE__") and "API_KEY=" in e)
journal = [
    json.loads(line)
    for line in run("journalctl", "-u", "qdrant.service", "-o", "json", "--no-pager").splitlines()
]


def first(prefix):
    times = [int(e["__REALTIME_TIMESTAMP"]) for e in journal if prefix in str(e.get("MESSAGE"))]
    return min(times) if times else None


nft = json.loads(run("nft", "-j", "list", "table", "inet", "qdrant"))
print(
    json.dumps(
        {
            "argv": argv,
            "keys": keys,
            "nft": nft,
            "started": first("Started qdrant.service"),
            "listening": first("Qdrant HTTP listening"),
            "ignored": [
                str(e.get("MESSAGE")) for e in journal if "ignored" in str(e.get("MESSAGE"))
            ],
        }
    )
)
