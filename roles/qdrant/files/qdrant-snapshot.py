#!/usr/bin/python3
"""Snapshot every Qdrant collection and keep the newest N snapshots of each.

Run by qdrant-snapshot.service (roles/qdrant). Standard library only.
Environment:
  QDRANT_URL                  base URL, e.g. http://127.0.0.1:6333
  QDRANT_SNAPSHOT_KEEP        snapshots kept per collection (>= 1)
  QDRANT__SERVICE__API_KEY    API key, when one is set (from /etc/qdrant/qdrant.env)
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_S = 3600  # creating a snapshot of a large collection takes a while


def call(method: str, path: str) -> object:
    url = os.environ.get("QDRANT_URL", "http://127.0.0.1:6333").rstrip("/") + path
    request = urllib.request.Request(url, method=method)
    api_key = os.environ.get("QDRANT__SERVICE__API_KEY", "")
    if api_key:
        request.add_header("api-key", api_key)
    # Loopback: the certificate is for the public name, not for 127.0.0.1.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
        return json.load(response).get("result")


def main() -> int:
    keep = int(os.environ.get("QDRANT_SNAPSHOT_KEEP", "7"))
    if keep < 1:
        print("QDRANT_SNAPSHOT_KEEP must be at least 1", file=sys.stderr)
        return 2
    failures = 0
    collections = [c["name"] for c in call("GET", "/collections")["collections"]]
    for name in collections:
        quoted = urllib.parse.quote(name, safe="")
        try:
            created = call("POST", f"/collections/{quoted}/snapshots?wait=true")
            print(f"{name}: created snapshot {created['name']}")
            snapshots = call("GET", f"/collections/{quoted}/snapshots") or []
            snapshots.sort(key=lambda s: (s.get("creation_time") or "", s["name"]), reverse=True)
            for old in snapshots[keep:]:
                old_name = urllib.parse.quote(old["name"], safe="")
                call("DELETE", f"/collections/{quoted}/snapshots/{old_name}?wait=true")
                print(f"{name}: deleted old snapshot {old['name']}")
        except (urllib.error.URLError, KeyError, TypeError, ValueError) as error:
            failures += 1
            print(f"{name}: snapshot failed: {error}", file=sys.stderr)
    print(f"snapshotted {len(collections) - failures} of {len(collections)} collections")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
