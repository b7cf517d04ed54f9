"""Probe (molecule/team): the addresses argv[1]'s port listens on (ss) and its nftables table as
JSON (nft -j).
"""

import json
import subprocess
import sys

args = json.loads(sys.argv[1])
ss = subprocess.run(
    ["ss", "-Hltn", f"sport = :{args['port']}"], capture_output=True, text=True, check=True
).stdout.split()
nft = subprocess.run(
    ["nft", "-j", "list", "table", "inet", args["table"]], capture_output=True, text=True
)
print(
    json.dumps(
        {
            "ss": ss,
            "nft_rc": nft.returncode,
            "nft": json.loads(nft.stdout or "null"),
            "nft_err": nft.stderr,
        }
    )
)
