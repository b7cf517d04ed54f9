"""Probe (molecule/default/tests/test_jina_embeddings.py): the host's state and the service's
answers, in one round trip. argv[1]: JSON {"paths", "key", "base", "unit", "user", "env_file",
"state_dir", "venv"}.
"""

import glob
import grp
import json
import os
import pwd
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

args = json.loads(sys.argv[1])


def run(*cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return {"rc": p.returncode, "out": p.stdout.strip(), "err": p.stderr.strip()}


def http(method, path, key=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(args["base"] + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return {"status": r.status, "json": json.load(r)}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "json": json.loads(e.read() or b"null")}
    except OSError as e:
        return {"status": 0, "error": str(e)}


def stat(path):
    st = os.lstat(path)
    return {
        "user": pwd.getpwuid(st.st_uid).pw_name,
        "group": grp.getgrgid(st.st_gid).gr_name,
        "mode": st.st_mode & 0o7777,
        "link": os.readlink(path) if os.path.islink(path) else None,
    }


shown = run("systemctl", "show", "--all", args["unit"])["out"].splitlines()
show = dict(line.split("=", 1) for line in shown if "=" in line)
pids = [p for p in run("ps", "-o", "pid=,user:32=,rss=", "-u", args["user"])["out"].splitlines()]
env_lines = Path(args["env_file"]).read_text().splitlines()
model_dirs = sorted(glob.glob(args["state_dir"] + "/models/*"))
ready = http("GET", "/ready")
model = (ready.get("json") or {}).get("model", "")
inputs = ["def add(a, b):\n    return a + b\n", "SELECT id FROM users WHERE active = 1;"]


def embed(key, **extra):
    return http("POST", "/v1/embeddings", key, dict({"model": model, "input": inputs}, **extra))


def metrics():
    try:
        with urllib.request.urlopen(args["base"] + "/metrics", timeout=60) as r:
            return r.read().decode()
    except OSError as e:
        return str(e)


fields = run(
    args["venv"] + "/bin/python",
    "-c",
    "import json; from jina_openai.settings import Settings; "
    "print(json.dumps(sorted(Settings.model_fields)))",
)
print(
    json.dumps(
        {
            "stat": {p: stat(p) for p in args["paths"] if os.path.lexists(p)},
            "show": show,
            "listen": run("ss", "-Hltn")["out"].splitlines(),
            "processes": [p.split() for p in pids],
            "memtotal_kb": int(Path("/proc/meminfo").read_text().split()[1]),
            "env_lines": env_lines,
            "settings_fields": json.loads(fields["out"]) if fields["rc"] == 0 else fields,
            "model_dirs": {d: stat(d) for d in model_dirs},
            "verified": {d: os.path.exists(d + "/.jina-embeddings-verified") for d in model_dirs},
            "health": http("GET", "/health"),
            "ready": ready,
            "info": http("GET", "/info", args["key"]),
            "embeddings": embed(args["key"], encoding_format="float"),
            "embeddings_base64": embed(args["key"], encoding_format="base64"),
            "metrics": metrics(),
            "no_key": embed(None),
            "wrong_key": embed("not-the-key"),
        }
    )
)
