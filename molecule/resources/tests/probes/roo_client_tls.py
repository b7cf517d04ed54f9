"""Probe (molecule/team, on the workstation): Roo Code's two endpoints through the proxy over TLS,
verified against the installed CA: the TLS peer, embeddings with and without the key, /models,
the denied /metrics, and a collection made, written, searched and dropped in Qdrant.
"""

import json
import socket
import ssl
import sys
import urllib.error
import urllib.request

args = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=args["ca"])


def call(base, method, path, headers=None, body=None, context=ctx):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=60, context=context) as r:
            return {"status": r.status, "json": json.load(r)}
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return {"status": e.code, "json": parsed}
    except (urllib.error.URLError, OSError) as e:
        return {"status": 0, "error": repr(getattr(e, "reason", e))}


emb, qd = args["embeddings"], args["qdrant"]
auth = {"Authorization": "Bearer " + args["key"]}
api_key = {"api-key": args["qdrant_key"]}
out = {}
with (
    socket.create_connection((args["name"], args["port"]), timeout=10) as raw,
    ctx.wrap_socket(raw, server_hostname=args["name"]) as tls,
):
    out["peer"] = {"cert": tls.getpeercert(), "version": tls.version()}
inputs = ["def add(a, b):\n    return a + b\n", "SELECT id FROM users WHERE active = 1;"]
model = args["model"]
out["embed"] = call(emb, "POST", "/embeddings", auth, {"model": model, "input": inputs})
out["embed_no_key"] = call(emb, "POST", "/embeddings", None, {"model": model, "input": ["x"]})
out["models"] = call(emb, "GET", "/models", auth)
# The service serves its metrics at /metrics (not under /v1): the proxy refuses that path.
out["metrics_denied"] = call(emb.removesuffix("/v1"), "GET", "/metrics", auth)
out["system_cas_only"] = call(emb, "GET", "/models", auth, context=ssl.create_default_context())
vector = (out["embed"].get("json") or {}).get("data", [{}])[0].get("embedding")
c = "/collections/" + args["collection"]
out["qdrant_no_key"] = call(qd, "GET", "/collections")
out["qdrant_delete_old"] = call(qd, "DELETE", c, api_key)
out["qdrant_create"] = call(
    qd, "PUT", c, api_key, {"vectors": {"size": len(vector or []), "distance": "Cosine"}}
)
out["qdrant_upsert"] = call(
    qd,
    "PUT",
    c + "/points?wait=true",
    api_key,
    {"points": [{"id": 1, "vector": vector, "payload": {"path": "a.py"}}]},
)
out["qdrant_search"] = call(
    qd, "POST", c + "/points/search", api_key, {"vector": vector, "limit": 1, "with_payload": True}
)
out["qdrant_list"] = call(qd, "GET", "/collections", api_key)
out["qdrant_delete"] = call(qd, "DELETE", c, api_key)
print(json.dumps(out))
