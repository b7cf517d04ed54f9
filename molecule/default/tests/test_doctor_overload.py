"""`jina-stack doctor` on a 429: the one misconfiguration of test_doctor.py that needs the service
reconfigured. The embeddings service is restarted with room for one queued request per worker
(an extra EnvironmentFile in a drop-in: it is read after the role's, so its value wins), a burst
of concurrent requests gets 429s, and doctor must exit 5 and say why, with the limit and the
fix. The drop-in is removed and the service restarted as the role left it, whatever happened.
"""

from __future__ import annotations

import json
import shlex
import time

import pytest
from molecule_helpers import http_answers, run_probe

UNIT = "jina-embeddings.service"
DROP_IN_DIR = f"/etc/systemd/system/{UNIT}.d"
DROP_IN = f"{DROP_IN_DIR}/zz-molecule-overload.conf"
OVERLOAD_ENV = "/etc/jina-embeddings-molecule-overload.env"
EMBEDDINGS = "http://127.0.0.1:4000"
SERVED_MODEL = "all-MiniLM-L6-v2"
OPERATOR = "roo-operator"
BURST = 24  # requests at once, far more than the workers' one slot each


def restart_and_wait(host) -> None:
    host.check_output(f"systemctl daemon-reload && systemctl restart {UNIT}")
    assert http_answers(host, [("WAIT", f"{EMBEDDINGS}/ready", {}, None)], timeout=10)


@pytest.fixture(scope="module")
def one_slot(host):
    host.check_output(
        f"mkdir -p {DROP_IN_DIR}"
        f" && printf '%s\\n' JINA_OPENAI_MAX_QUEUED_REQUESTS=1 > {OVERLOAD_ENV}"
        f" && printf '[Service]\\nEnvironmentFile={OVERLOAD_ENV}\\n' > {DROP_IN}"
    )
    try:
        restart_and_wait(host)
        yield
    finally:
        host.run(f"rm -f {DROP_IN} {OVERLOAD_ENV}")
        restart_and_wait(host)


@pytest.fixture(scope="module")
def burst(host, one_slot):
    key = host.ansible.get_variables()["jina_embeddings_api_keys"][0]
    since = int(host.check_output("date +%s"))
    statuses = run_probe(
        host,
        "concurrent_embeddings",
        json.dumps(
            {
                "url": f"{EMBEDDINGS}/v1/embeddings",
                "key": key,
                "model": SERVED_MODEL,
                "requests": BURST,
                "inputs": 32,
            }
        ),
    )
    time.sleep(2)  # the access log lines reach the journal
    return since, statuses


def test_the_burst_got_429s_and_the_rest_was_served(burst):
    _, statuses = burst
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(429) >= 1, statuses
    assert statuses.count(200) >= 1, statuses


def test_doctor_names_the_429s_their_cause_and_the_fix(host, burst):
    since, statuses = burst
    command = shlex.join(["/usr/local/bin/jina-stack", "doctor", "--since", f"@{since}"])
    result = host.run(f"runuser -u {OPERATOR} -- {command}")
    output = result.stdout + result.stderr
    assert result.rc == 5, output
    refused = statuses.count(429)
    were = f"{refused} request{'s' if refused != 1 else ''} {'was' if refused == 1 else 'were'}"
    assert f"{were} refused with 429 (server overloaded, reason queued_requests)" in output
    assert "max_queued_requests (1) requests were already waiting" in output
    assert "Fix: raise jina_embeddings_max_queued_requests" in output
    assert "drops the workspace's whole index" in output  # what Roo does when it persists
