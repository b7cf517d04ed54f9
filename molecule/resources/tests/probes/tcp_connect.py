"""Probe (molecule/team): a TCP connection to each of argv[1]'s targets ([address, port]);
prints "open", "refused", "timeout" or the error for each.
"""

import json
import socket
import sys

out = []
for address, port in json.loads(sys.argv[1])["targets"]:
    try:
        socket.create_connection((address, port), timeout=3).close()
        out.append("open")
    except ConnectionRefusedError:
        out.append("refused")
    except TimeoutError:
        out.append("timeout")
    except OSError as e:
        out.append(repr(e))
print(json.dumps(out))
