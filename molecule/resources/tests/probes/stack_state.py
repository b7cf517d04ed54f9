"""Probe (molecule/default/tests/test_vscode_tasks.py): unit states, main PIDs and readiness.

argv[1]: JSON {"units": {key: unit}, "urls": {key: url}}. Prints {key: {"ActiveState",
"MainPID"}} for each unit and {key: HTTP status (0: no answer)} for each url.
"""

import json
import subprocess
import sys
import urllib.request


def get(url):
    try:
        return urllib.request.urlopen(url, timeout=5).status
    except Exception as e:
        return getattr(e, "code", 0)


def show(unit):
    out = subprocess.run(
        ["systemctl", "show", "-p", "ActiveState,MainPID", unit], capture_output=True, text=True
    ).stdout
    return dict(line.split("=", 1) for line in out.split())


args = json.loads(sys.argv[1])
state = {key: show(unit) for key, unit in args["units"].items()}
state.update({key: get(url) for key, url in args["urls"].items()})
print(json.dumps(state))
