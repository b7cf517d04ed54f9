"""Probe (molecule/default/tests/test_qdrant.py): everything the file, unit and process tests
look at, in one round trip. argv[1]: JSON list of paths to stat.
"""

import grp
import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return {"rc": p.returncode, "out": p.stdout.strip(), "err": p.stderr.strip()}


paths = json.loads(sys.argv[1])
stat = {}
for path in paths:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        continue
    stat[path] = {
        "user": pwd.getpwuid(st.st_uid).pw_name,
        "group": grp.getgrgid(st.st_gid).gr_name,
        "mode": st.st_mode & 0o7777,
        "link": os.readlink(path) if os.path.islink(path) else None,
    }
shown = run("systemctl", "show", "--all", "qdrant.service")["out"].splitlines()
show = dict(line.split("=", 1) for line in shown)
security = run("systemd-analyze", "security", "--no-pager", "qdrant.service")["out"]
meminfo = Path("/proc/meminfo").read_text()
pw = pwd.getpwnam("qdrant")
print(
    json.dumps(
        {
            "stat": stat,
            "show": show,
            "user": {
                "uid": pw.pw_uid,
                "shell": pw.pw_shell,
                "group": grp.getgrgid(pw.pw_gid).gr_name,
            },
            "memtotal_kb": int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1)),
            "version": run("/usr/local/bin/qdrant", "--version")["out"],
            "config": Path("/etc/qdrant/config.yaml").read_text(),
            "env": Path("/etc/qdrant/qdrant.env").read_text(),
            "enabled": run("systemctl", "is-enabled", "qdrant.service")["out"],
            "active": run("systemctl", "is-active", "qdrant.service")["out"],
            "main_user": run("ps", "-o", "user=", "-p", show.get("MainPID", "0"))["out"],
            "listen": run("ss", "-Hltn")["out"].splitlines(),
            "verify": run(
                "systemd-analyze", "verify", "--man=no", "/etc/systemd/system/qdrant.service"
            ),
            "security": security.splitlines()[-1:],
        }
    )
)
