"""playbooks/verify.yml against the converged host: Roo Code's indexing and search steps."""

from __future__ import annotations

import hashlib
import re

from molecule_helpers import ansible_playbook, http_answers

QDRANT = "http://127.0.0.1:6333"


def collections(host) -> list[str]:
    [(status, body)] = http_answers(
        host,
        [("GET", QDRANT + "/collections", {"api-key": "molecule-qdrant-api-key-7d1c4f"}, None)],
    )
    assert status == 200, body
    return [c["name"] for c in body["result"]["collections"]]


def test_verify_playbook_passes_and_reports(host):
    result = ansible_playbook("verify.yml")
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
    result = ansible_playbook("verify.yml", extra_vars={"verify_embeddings_api_key": "wrong-key"})
    assert result.returncode != 0
    output = result.stdout + result.stderr  # molecule's ansible.cfg: failures go to stderr
    assert "End-to-end check failed" in output
    assert "answered 401" in output
