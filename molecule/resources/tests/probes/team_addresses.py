"""Probe (molecule/team): this host's IPv4 addresses beyond loopback (iproute2's JSON), as a
JSON list."""

import json
import subprocess

out = subprocess.run(["ip", "-j", "-4", "addr", "show"], capture_output=True, text=True, check=True)
addrs = [
    a["local"]
    for link in json.loads(out.stdout)
    if link["ifname"] != "lo"
    for a in link.get("addr_info", [])
]
print(json.dumps(addrs))
