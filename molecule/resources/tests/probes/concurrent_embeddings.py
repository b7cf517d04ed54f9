"""Probe (molecule/default, test_doctor_overload): `requests` embeddings requests sent at the same
instant from as many threads, each of `inputs` distinct chunks; prints each one's status.

argv[1]: JSON {"url", "key", "model", "requests", "inputs"}.
"""

import json
import sys
import threading
import urllib.error
import urllib.request

args = json.loads(sys.argv[1])
start = threading.Barrier(args["requests"])
statuses = [0] * args["requests"]


def send(number):
    texts = [
        f"def handler_{number}_{i}(event):\n    return event.get({i!r}, {number})\n" * 8
        for i in range(args["inputs"])
    ]
    body = json.dumps({"model": args["model"], "input": texts}).encode()
    request = urllib.request.Request(
        args["url"],
        data=body,
        method="POST",
        headers={"Authorization": "Bearer " + args["key"], "Content-Type": "application/json"},
    )
    start.wait()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            statuses[number] = response.status
    except urllib.error.HTTPError as error:
        statuses[number] = error.code


threads = [threading.Thread(target=send, args=(n,)) for n in range(args["requests"])]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(json.dumps(statuses))
