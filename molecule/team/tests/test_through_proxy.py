"""Roo Code's two endpoints through roles/stack_proxy, from the operator's workstation.

The client runs on the workstation container, as Roo Code would: it reaches the proxy by name
(the scenario's podman network resolves it), over TLS, and verifies the server certificate
against the CA that roles/workstation installed there (~/.jina-stack/proxy-ca.crt, the CA
roles/stack_proxy generated). Nothing skips verification: the same request with only the
system's CA bundle must fail.

Embeddings: https://PROXY:443/v1 with the API key (Authorization passes through HAProxy).
Qdrant:     https://PROXY:6333 with its api-key header; a collection made, written, searched
            and dropped as Roo Code's indexer does.
"""

from __future__ import annotations

import json

import pytest
from teamhosts import CA_FILE, MODEL_DIMENSION, MODEL_ID, Team, host, run_probe

ROO_SETTINGS = "/root/.jina-stack/roo-code-settings.json"
ENVIRONMENT_D = "/root/.config/environment.d/60-jina-stack-ca.conf"
COLLECTION = "molecule-team-through-proxy"


@pytest.fixture(scope="module")
def through_proxy(team: Team, embeddings_key: str, qdrant_keys: dict) -> dict:
    return run_probe(
        team.workstation,
        "roo_client_tls",
        {
            "ca": CA_FILE,
            "name": team.proxy,
            "port": 443,
            "embeddings": f"https://{team.proxy}:443/v1",
            "qdrant": f"https://{team.proxy}:6333",
            "key": embeddings_key,
            "qdrant_key": qdrant_keys["rw"],
            "model": MODEL_ID,
            "collection": COLLECTION,
        },
    )


def test_workstation_trusts_the_proxys_generated_ca(team: Team):
    workstation = host(team.workstation)
    proxy_ca = host(team.proxy).file("/etc/haproxy/tls/ca.crt").content_string
    assert "BEGIN CERTIFICATE" in proxy_ca
    assert workstation.file(CA_FILE).content_string == proxy_ca
    assert workstation.file(ENVIRONMENT_D).content_string.splitlines()[-1] == (
        f"NODE_EXTRA_CA_CERTS={CA_FILE}"
    )


def test_roo_settings_point_at_the_proxy_over_https(team: Team):
    settings = json.loads(host(team.workstation).file(ROO_SETTINGS).content_string)
    config = settings["globalSettings"]["codebaseIndexConfig"]
    assert config["codebaseIndexOpenAiCompatibleBaseUrl"] == f"https://{team.proxy}:443/v1"
    assert config["codebaseIndexQdrantUrl"] == f"https://{team.proxy}:6333"
    # Asked through the proxy at converge time (roles/workstation, GET /v1/models).
    assert config["codebaseIndexEmbedderModelId"] == MODEL_ID
    assert config["codebaseIndexEmbedderModelDimension"] == MODEL_DIMENSION


def test_certificate_names_the_proxy_and_is_signed_by_the_generated_ca(through_proxy, team: Team):
    peer = through_proxy["peer"]
    assert ("DNS", team.proxy) in [tuple(san) for san in peer["cert"]["subjectAltName"]]
    issuer = dict(pair[0] for pair in peer["cert"]["issuer"])
    assert issuer["commonName"] == f"jina-stack private CA ({team.proxy})"
    assert peer["version"] in ("TLSv1.2", "TLSv1.3")


def test_the_system_ca_bundle_alone_does_not_trust_it(through_proxy):
    failed = through_proxy["system_cas_only"]
    assert failed["status"] == 0
    assert "CERTIFICATE_VERIFY_FAILED" in failed["error"]


def test_embeddings_through_the_proxy(through_proxy):
    embed = through_proxy["embed"]
    assert embed["status"] == 200, embed
    vectors = [item["embedding"] for item in embed["json"]["data"]]
    assert len(vectors) == 2
    assert {len(v) for v in vectors} == {MODEL_DIMENSION}
    assert vectors[0] != vectors[1]
    models = through_proxy["models"]
    assert models["status"] == 200
    assert [m["id"] for m in models["json"]["data"]] == [MODEL_ID]


def test_the_api_key_passes_through_and_is_enforced(through_proxy):
    assert through_proxy["embed_no_key"]["status"] == 401
    assert through_proxy["qdrant_no_key"]["status"] == 401


def test_the_services_own_metrics_stay_inside(through_proxy):
    assert through_proxy["metrics_denied"]["status"] == 403


def test_qdrant_through_the_proxy_as_roos_indexer_uses_it(through_proxy):
    assert through_proxy["qdrant_delete_old"]["status"] in (200, 404)
    assert through_proxy["qdrant_create"]["status"] == 200, through_proxy["qdrant_create"]
    assert through_proxy["qdrant_upsert"]["status"] == 200, through_proxy["qdrant_upsert"]
    hits = through_proxy["qdrant_search"]["json"]["result"]
    assert [hit["id"] for hit in hits] == [1]
    assert hits[0]["payload"] == {"path": "a.py"}
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    names = [c["name"] for c in through_proxy["qdrant_list"]["json"]["result"]["collections"]]
    assert COLLECTION in names
    assert through_proxy["qdrant_delete"]["status"] == 200
