"""Probe (molecule_helpers.http_answers): HTTP requests made on a test host, answered in order.

argv[1]: JSON list of [method, url, headers, body]; a body that is not null is sent as JSON.
Method WAIT polls url until it answers (at most 120 tries) and answers [0, ""].
argv[2]: seconds each request may take. Prints a JSON list of [status, text]; an HTTP error
status is an answer, a request that gets no answer at all fails the probe.
"""

import json
import sys
import time
import urllib.error
import urllib.request

requests, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
answers = []
for method, url, headers, body in requests:
    if method == "WAIT":
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except Exception:
                time.sleep(0.5)
        answers.append([0, ""])
        continue
    data = json.dumps(body).encode() if body is not None else None
    headers = {"content-type": "application/json", **headers}
    req = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    answers.append([status, raw.decode("utf-8", "replace")])
print(json.dumps(answers))
