"""`jina-stack doctor` on the converged test host: each misconfiguration Roo Code's UI cannot
explain is provoked for real against the running service and Qdrant, then doctor must exit 5 and
name every one of them in words. Afterwards, with the provoking collection gone and the log read
from a later point, it must find nothing (exit 0); with Qdrant unreachable it exits 3.

A 429 needs the service reconfigured and restarted (MiniLM serves a burst faster than any
default bound fills): test_doctor_overload.py provokes it after these tests; doctor's 429
report for every cause is in tests/unit/stack_cli/test_jina_stack.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import time

import pytest
from molecule_helpers import http_answers

CLI = "/usr/local/bin/jina-stack"
OPERATOR = "roo-operator"
EMBEDDINGS = "http://127.0.0.1:4000"
QDRANT = "http://127.0.0.1:6333"
SERVED_MODEL, SERVED_DIMENSION = "all-MiniLM-L6-v2", 384
WRONG_MODEL = "jina-embeddings-v2-base-code"  # what a user copies from the upstream docs
WRONG_KEY = "molecule-doctor-stale-key-41f0"
# Roo's collection name for a workspace: ws- + sha256(folder)[:16]; made with OpenAI's size.
COLLECTION = "ws-" + hashlib.sha256(b"/srv/doctor-workspace").hexdigest()[:16]
WRONG_SIZE = 1536


def http(host, *requests: tuple[str, str, dict, object]) -> list[tuple[int, object]]:
    return http_answers(host, requests, timeout=60)


def doctor(host, *args: str, env: str = ""):
    """doctor as the operator account, through its sudo rule (as the VS Code task runs it)."""
    command = " ".join(shlex.quote(a) for a in (CLI, "doctor", *args))
    return host.run(f"{env} runuser -u {OPERATOR} -- {command}" if not env else f"{env} {command}")


@pytest.fixture(scope="module")
def keys(host) -> dict:
    variables = host.ansible.get_variables()
    return {
        "embeddings": variables["jina_embeddings_api_keys"][0],
        "qdrant": variables["qdrant_api_key"],
    }


@pytest.fixture(scope="module")
def provoked(host, keys):
    """Each misconfiguration once; the collection is dropped again at the end of the module."""
    good = {"Authorization": f"Bearer {keys['embeddings']}"}
    qdrant = {"api-key": keys["qdrant"]}
    long_input = "def f():\n    return 1\n" * 400  # ~3,000 tokens; MiniLM takes far fewer
    answers = http(
        host,
        ("POST", f"{EMBEDDINGS}/v1/embeddings", good, {"input": ["x"], "model": WRONG_MODEL}),
        (
            "POST",
            f"{EMBEDDINGS}/v1/embeddings",
            {"Authorization": f"Bearer {WRONG_KEY}"},
            {"input": ["x"], "model": SERVED_MODEL},
        ),
        (
            "POST",
            f"{EMBEDDINGS}/v1/embeddings",
            good,
            {"input": [long_input], "model": SERVED_MODEL},
        ),
        (
            "PUT",
            f"{QDRANT}/collections/{COLLECTION}",
            qdrant,
            {"vectors": {"size": WRONG_SIZE, "distance": "Cosine", "on_disk": True}},
        ),
    )
    statuses = [status for status, _ in answers]
    yield statuses
    dropped = http(host, ("DELETE", f"{QDRANT}/collections/{COLLECTION}", qdrant, None))
    assert dropped[0][0] in (200, 404), dropped  # test_doctor_finds_nothing... dropped it


@pytest.fixture(scope="module")
def report(host, provoked):
    result = doctor(host)
    return result.rc, result.stdout + result.stderr


def test_each_misconfiguration_was_provoked(provoked):
    assert provoked == [404, 401, 200, 200]


def test_doctor_exits_5_on_problems(report):
    rc, output = report
    assert rc == 5, output
    assert f"doctor: model '{SERVED_MODEL}' ({SERVED_DIMENSION} dims" in output
    assert "problem(s) found" in output


def test_doctor_names_the_wrong_model_id_and_the_one_to_set(report):
    _, output = report
    assert f"asked for model '{WRONG_MODEL}'" in output
    assert f"set Roo's Model ID (codebaseIndexEmbedderModelId) to '{SERVED_MODEL}'" in output
    assert "Invalid API endpoint" in output  # what Roo showed for it


def test_doctor_names_the_collection_of_the_wrong_size_and_what_roo_will_do(report):
    _, output = report
    assert f"Qdrant collection {COLLECTION} (0 points) has vector size {WRONG_SIZE}" in output
    assert f"set Roo's Model Dimension to {SERVED_DIMENSION}" in output
    assert f"deletes {COLLECTION} and creates it again with size {SERVED_DIMENSION}" in output


def test_doctor_groups_401s_by_the_fingerprint_of_the_key(report, keys):
    _, output = report
    wrong = hashlib.sha256(WRONG_KEY.encode()).hexdigest()[:12]
    accepted = hashlib.sha256(keys["embeddings"].encode()).hexdigest()[:12]
    assert f"API key with fingerprint {wrong}" in output
    assert f"(fingerprints: {accepted})" in output
    assert WRONG_KEY not in output
    assert keys["embeddings"] not in output


def test_doctor_reports_the_truncated_input(report):
    _, output = report
    pattern = (
        r"\d+ input\(s\) in \d+ requests?( from [^:]+)? were longer than the model's"
        r" max_input_tokens \(\d+\) and were cut to it"
    )
    assert re.search(pattern, output), output


def test_doctor_finds_nothing_in_a_clean_window(host, keys, report):
    """Once the collection is gone and the log is read from after the provocations: exit 0."""
    dropped = http(
        host, ("DELETE", f"{QDRANT}/collections/{COLLECTION}", {"api-key": keys["qdrant"]}, None)
    )
    assert dropped[0][0] == 200, dropped
    since = int(host.check_output("date +%s")) + 1
    time.sleep(2)
    result = doctor(host, "--since", f"@{since}")
    assert result.rc == 0, result.stdout + result.stderr
    assert "doctor: no problem found" in result.stdout


def test_doctor_exits_3_when_qdrant_does_not_answer(host):
    settings = json.loads(host.file("/etc/jina-stack/jina-stack.json").content_string)
    settings["qdrant"]["url"] = "http://127.0.0.1:9"  # nothing listens there
    path = "/run/jina-stack-doctor-test.json"
    host.run(f"printf '%s' {shlex.quote(json.dumps(settings))} > {path}")
    try:
        result = doctor(host, env=f"JINA_STACK_CONFIG={path}")
    finally:
        host.run(f"rm -f {path}")
    assert result.rc == 3, result.stdout + result.stderr
    assert "/collections answered nothing" in result.stdout
