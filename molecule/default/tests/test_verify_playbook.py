"""playbooks/verify.yml against the converged host: Roo Code's indexing and search steps."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

PROJECT = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))


def run_verify(*args: str) -> subprocess.CompletedProcess:
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(PROJECT / "playbooks/verify.yml"), *args],
        capture_output=True,
        text=True,
        check=False,
        env={
            "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
            **os.environ,
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
        },
    )


def collections(host) -> list[str]:
    script = (
        "import json, urllib.request\n"
        "r = urllib.request.Request('http://127.0.0.1:6333/collections',"
        " headers={'api-key': 'molecule-qdrant-api-key-7d1c4f'})\n"
        "names = json.load(urllib.request.urlopen(r))['result']['collections']\n"
        "print(json.dumps([c['name'] for c in names]))\n"
    )
    return json.loads(host.check_output("python3 -c " + "'" + script.replace("'", "'\"'\"'") + "'"))


def test_verify_playbook_passes_and_reports(host):
    result = run_verify()
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "OK: all-MiniLM-L6-v2 (384 dims)" in result.stdout
    # the expected chunk first (at Roo's score_threshold 0.4 MiniLM keeps few others)
    assert re.search(r'"ranking: src/billing/invoice\.py( > [^"]+)?"', result.stdout)
    for step in ("embed_chunks=", "create_collection=", "upsert=", "query=", "delete_by_filter="):
        assert step in result.stdout
    workspace = f"/srv/jina-stack-verify/{host.backend.host}"  # the inventory name
    name = "ws-" + hashlib.sha256(workspace.encode()).hexdigest()[:16]
    assert f"collection {name} created and dropped" in result.stdout
    assert not [c for c in collections(host) if c.startswith("ws-")]


def test_verify_playbook_fails_on_a_wrong_key():
    result = run_verify("--extra-vars", json.dumps({"verify_embeddings_api_key": "wrong-key"}))
    assert result.returncode != 0
    output = result.stdout + result.stderr  # molecule's ansible.cfg: failures go to stderr
    assert "End-to-end check failed" in output
    assert "answered 401" in output
