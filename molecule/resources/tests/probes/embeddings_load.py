"""Probe (molecule/team, on the workstation): `count` sequential one-input embeddings requests over
TLS (verified against the CA argv[1] names); prints each one's status.
"""

import json
import ssl
import sys
import urllib.error
import urllib.request

args = json.loads(sys.argv[1])
ctx = ssl.create_default_context(cafile=args["ca"])
statuses = []
for i in range(args["count"]):
    body = json.dumps({"model": args["model"], "input": [f"def f{i}(x):\n    return x + {i}\n"]})
    req = urllib.request.Request(
        args["url"],
        data=body.encode(),
        method="POST",
        headers={"Authorization": "Bearer " + args["key"], "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60, context=ctx) as r:
            statuses.append(r.status if len(json.load(r)["data"]) == 1 else -1)
    except urllib.error.HTTPError as e:
        statuses.append(e.code)
    except OSError as e:
        statuses.append(repr(e))
print(json.dumps(statuses))
