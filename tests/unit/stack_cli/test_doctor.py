"""`jina-stack doctor` (roles/stack_cli/files/jina_stack.py): each finding from fake access-log
lines (written by the service's own JSON formatter), a fake GET /info and fake Qdrant
collections; the exit codes 0, 5, 3 and 1. On a real host: molecule/default/tests/test_doctor.py.
"""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fake_http import JsonHandler, serve
from jina_openai.api.middleware import key_fingerprint
from jina_openai.logging_config import JsonFormatter

from .test_jina_stack import cli

SERVED = "jina-embeddings-v2-base-code"
ROO_WRONG = "ws-0123456789abcdef"
ROO_RIGHT = "ws-fedcba9876543210"
INFO: dict[str, Any] = {
    "model": {"id": SERVED, "aliases": ["jina-code"], "dimension": 768, "max_input_tokens": 8192},
    "limits": {
        "max_queue_wait_s": 120.0,
        "max_queued_tokens": 262144,
        "max_queued_requests": 1024,
        "max_held_bytes": 500000000,
    },
    "measured_tokens_per_s": 900.0,
}


def access_line(**fields: Any) -> str:
    """One access-log line exactly as the service writes it (api/request_log.py)."""
    record = logging.LogRecord("jina_openai.access", logging.INFO, "", 0, "POST x", None, None)
    record.fields = {  # type: ignore[attr-defined]
        "event": "request",
        "method": "POST",
        "path": "/v1/embeddings",
        "client": "10.0.0.7",
        **fields,
    }
    return JsonFormatter().format(record)


def fp(key: str) -> str:
    return key_fingerprint(key.encode())


# --- the findings, one by one -------------------------------------------------------------


def test_fingerprint_is_the_services():
    assert cli.fingerprint("k1") == key_fingerprint(b"k1")
    assert len(cli.fingerprint("k1")) == 12


def test_access_records_keep_request_lines_and_count_unreadable_ones():
    lines = [
        "[2026-12-02 10:00:00 +0000] [42] [INFO] Booting worker with pid: 42",
        access_line(status=200, inputs=3),
        json.dumps({"event": "startup", "message": "listening"}),
        "2026-12-02T10:00:01.000+00:00 info jina_openai.access POST /v1/embeddings 401 key=abc",
        "{not json",
    ]
    records, not_json = cli.access_records(lines)
    assert [r["status"] for r in records] == [200]
    assert not_json == 1


def test_a_wrong_model_id_names_the_id_to_set_and_the_dimension():
    records, _ = cli.access_records(
        [
            access_line(status=404, error_code="model_not_found", requested_model="jina-v2"),
            access_line(status=404, error_code="model_not_found", requested_model="jina-v2"),
            access_line(
                status=404, error_code="model_not_found", requested_model="text-embedding-3-small"
            ),
            access_line(status=200, model=SERVED),
        ]
    )
    findings = cli.model_findings(records, INFO["model"])
    assert len(findings) == 2
    first, builtin = findings
    assert first.startswith("2 requests asked for model 'jina-v2' from 10.0.0.7;")
    assert f"serves '{SERVED}' (also accepted: 'jina-code')" in first
    assert "Invalid API endpoint" in first  # what Roo showed instead
    assert f"Model ID (codebaseIndexEmbedderModelId) to '{SERVED}'" in first
    assert "Model Dimension to 768" in first
    assert "built-in OpenAI names" not in first
    assert "1 request asked for model 'text-embedding-3-small'" in builtin
    assert "built-in OpenAI names" in builtin


def test_401s_are_grouped_by_key_fingerprint_and_never_show_a_key():
    stale, other = fp("old-key"), fp("typo")
    records, _ = cli.access_records(
        [
            access_line(status=401, key=stale, error_code="invalid_api_key"),
            access_line(status=401, key=stale, client="10.0.0.8"),
            access_line(status=401, key=other),
            access_line(status=401),
            access_line(status=200, key=fp("k1")),
        ]
    )
    findings = cli.auth_findings(records, ["k1", "k2"])
    assert len(findings) == 3
    by_key = {f.split("fingerprint ")[1][:12]: f for f in findings if "fingerprint " in f}
    assert set(by_key) == {stale, other}
    assert by_key[stale].startswith("2 requests were refused with 401 from 10.0.0.7, 10.0.0.8:")
    assert by_key[other].startswith("1 request was refused with 401 from 10.0.0.7:")
    assert f"(fingerprints: {fp('k1')}, {fp('k2')})" in by_key[stale]
    assert "not one of the 2 key(s)" in by_key[stale]
    no_key = next(f for f in findings if "fingerprint " not in f)
    assert "sent no API key" in no_key
    assert all("Authentication failed" in f for f in findings)
    assert not any("k1" in f.replace(fp("k1"), "") for f in findings)


@pytest.mark.parametrize(
    ("reason", "cause", "fix"),
    [
        ("queue_wait", "than max_queue_wait_s (120.0 s) at the measured ~900.0", "below 300 s"),
        ("queued_tokens", "reached max_queued_tokens (262144)", "max_queued_tokens"),
        ("queued_requests", "max_queued_requests (1024)", "jina_embeddings_max_queued_requests"),
        ("request_memory", "max_held_bytes (500000000)", "embeddingBatchSize"),
        ("shutting_down", "stopping or restarting", "jina-stack logs jina"),
        ("something_new", "the server was at capacity", "jina-stack logs jina"),
    ],
)
def test_429s_say_their_cause_and_the_fix(reason, cause, fix):
    records, _ = cli.access_records(
        [access_line(status=429, error_code="server_overloaded", reason=reason)] * 3
    )
    [finding] = cli.overload_findings(records, INFO)
    head = f"3 requests were refused with 429 (server overloaded, reason {reason})"
    assert finding.startswith(head)
    assert cause in finding.split("Fix: ", 1)[0]
    assert fix in finding.split("Fix: ", 1)[1]
    assert "The embedder service is not available" in finding  # what Roo showed instead
    assert "drops the workspace's whole index" in finding


def test_429s_of_different_causes_are_separate_and_a_missing_reason_is_capacity():
    records, _ = cli.access_records(
        [
            access_line(status=429, reason="queue_wait"),
            access_line(status=429, reason="queued_tokens"),
            access_line(status=429),
        ]
    )
    findings = cli.overload_findings(records, {"model": {}})  # no limits: placeholders stay
    assert [f.split("reason ", 1)[1].split(")")[0] for f in findings] == [
        "queue_wait",
        "queued_tokens",
        "capacity",
    ]


def test_truncated_inputs_are_counted_with_the_model_limit():
    records, _ = cli.access_records(
        [
            access_line(status=200, inputs=60, truncated_inputs=2),
            access_line(status=200, inputs=60, truncated_inputs=1, client="10.0.0.9"),
            access_line(status=200, inputs=60),
        ]
    )
    [finding] = cli.truncation_findings(records, INFO)
    assert finding.startswith("3 input(s) in 2 requests from 10.0.0.7, 10.0.0.9 were longer")
    assert "max_input_tokens (8192)" in finding
    assert ".rooignore" in finding
    assert cli.truncation_findings(records[2:], INFO) == []


def test_collections_of_another_size_say_what_roo_will_do():
    findings = cli.collection_findings(
        {ROO_WRONG: (1536, 420), ROO_RIGHT: (768, 10), "ws-aaaaaaaaaaaaaaaa": (None, 0)},
        INFO["model"],
    )
    [finding] = findings
    assert finding.startswith(f"Qdrant collection {ROO_WRONG} (420 points) has vector size 1536")
    assert f"'{SERVED}' makes 768-dimensional vectors" in finding
    assert "Failed to process batch after 3 attempts: Bad Request" in finding
    assert "set Roo's Model Dimension to 768" in finding
    assert f"deletes {ROO_WRONG} and creates it again with size 768" in finding


def test_vector_size_of_unnamed_and_named_vectors():
    assert cli.vector_size({"config": {"params": {"vectors": {"size": 384}}}}) == 384
    named = {"config": {"params": {"vectors": {"code": {"size": 768, "distance": "Cosine"}}}}}
    assert cli.vector_size(named) == 768
    assert cli.vector_size({}) is None


def test_since_durations_become_epochs_and_journalctl_values_pass():
    now = 1_764_680_400.0
    assert cli.since_argument("30m", now) == f"@{int(now) - 1800}"
    assert cli.since_argument("1h", now) == f"@{int(now) - 3600}"
    assert cli.since_argument("2d", now) == f"@{int(now) - 2 * 86400}"
    assert cli.since_argument("2026-12-02 13:00:00", now) == "2026-12-02 13:00:00"
    assert cli.since_argument("@1764680000", now) == "@1764680000"


def test_since_option():
    assert cli.parse_args(["doctor"])["since"] == "1h"
    assert cli.parse_args(["doctor", "--since", "30m"])["since"] == "30m"
    assert cli.parse_args(["doctor", "--since=2d"])["since"] == "2d"
    with pytest.raises(cli.UsageError, match="--since needs a time"):
        cli.parse_args(["doctor", "--since"])


def test_env_value_undoes_the_roles_quoting(tmp_path):
    env = tmp_path / "qdrant.env"
    env.write_text(
        '# managed\nQDRANT__SERVICE__API_KEY="a\\"b\\\\c"\nQDRANT__SERVICE__READ_ONLY_API_KEY=ro\n'
    )
    assert cli.env_value(str(env), "QDRANT__SERVICE__API_KEY") == 'a"b\\c'
    assert cli.qdrant_api_key({"qdrant": {"env_file": str(env)}}) == "ro"  # read-only first
    env.write_text('QDRANT__SERVICE__API_KEY="admin"\n')
    assert cli.qdrant_api_key({"qdrant": {"env_file": str(env)}}) == "admin"
    assert cli.qdrant_api_key({"qdrant": {"env_file": str(tmp_path / "none")}}) == ""


# --- doctor end to end: a fake service + Qdrant, a fake journal -------------------------------


class FakeStack(JsonHandler):
    """GET /info (needs the service key) and Qdrant's collections (need its key)."""

    collections: ClassVar[dict[str, int]] = {}
    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def do_GET(self) -> None:
        type(self).seen.append(
            (self.path, self.headers.get("Authorization"), self.headers.get("api-key"))
        )
        if self.path == "/info":
            if self.headers.get("Authorization") != "Bearer k1":
                self.send_json(401, {"error": {"code": "invalid_api_key"}})
            else:
                self.send_json(200, INFO)
            return
        if self.headers.get("api-key") != "qdrant-ro":
            self.send_json(401, "Invalid API key or JWT")
            return
        if self.path == "/collections":
            names = [*self.collections, "notes"]
            self.send_json(200, {"result": {"collections": [{"name": n} for n in names]}})
            return
        name = self.path.rsplit("/", 1)[1]
        size = self.collections.get(name, 0)
        params = {"vectors": {"size": size, "distance": "Cosine"}}
        self.send_json(200, {"result": {"points_count": 3, "config": {"params": params}}})


@pytest.fixture
def stack(tmp_path) -> Iterator[dict]:
    FakeStack.collections = {ROO_RIGHT: 768}
    FakeStack.seen = []
    (tmp_path / "jina.env").write_text('JINA_OPENAI_API_KEYS="k1,k2"\n')
    (tmp_path / "qdrant.env").write_text(
        'QDRANT__SERVICE__API_KEY="qdrant-admin"\nQDRANT__SERVICE__READ_ONLY_API_KEY="qdrant-ro"\n'
    )
    with serve(FakeStack) as server:
        yield {
            "qdrant": {
                "managed": True,
                "unit": "qdrant.service",
                "url": server.url,
                "port": 6333,
                "env_file": str(tmp_path / "qdrant.env"),
            },
            "jina": {
                "managed": True,
                "unit": "jina-x.service",
                "url": server.url,
                "port": 4000,
                "env_file": str(tmp_path / "jina.env"),
            },
        }


@pytest.fixture
def journal(monkeypatch) -> dict:
    """What journalctl prints (lines) and exits with (rc); the commands it was run with."""
    state: dict = {"lines": [], "rc": 0, "commands": []}

    def fake_run(command, **kwargs):
        state["commands"].append(command)
        assert command[0] == "journalctl"
        stdout = "".join(line + "\n" for line in state["lines"])
        return subprocess.CompletedProcess(command, state["rc"], stdout, "No journal files")

    monkeypatch.setattr(cli.subprocess, "run", fake_run)
    return state


def test_doctor_with_nothing_wrong_exits_0(stack, journal, capsys):
    journal["lines"] = [access_line(status=200, key=fp("k1"), inputs=60)]
    assert cli.doctor(stack, "1h") == cli.EXIT_OK
    out = capsys.readouterr().out
    assert f"model '{SERVED}' (768 dims, max_input_tokens 8192)" in out
    assert "checked 1 request in the access log since 1h, 1 Roo collection(s) in Qdrant" in out
    assert "(1 other(s) not checked)" in out  # "notes" is not Roo's
    assert "no problem found" in out
    command = journal["commands"][0]
    assert command[command.index("--unit") + 1] == "jina-x.service"
    assert command[command.index("--since") + 1].startswith("@")
    assert ("/collections", None, "qdrant-ro") in FakeStack.seen  # Qdrant's read-only key


def test_doctor_reports_every_problem_and_exits_5(stack, journal, capsys):
    FakeStack.collections = {ROO_RIGHT: 768, ROO_WRONG: 1536}
    journal["lines"] = [
        access_line(status=404, error_code="model_not_found", requested_model="jina-v2"),
        access_line(status=401, key=fp("stale")),
        access_line(status=429, reason="queue_wait"),
        access_line(status=200, inputs=1, truncated_inputs=1),
    ]
    assert cli.doctor(stack, "30m") == cli.EXIT_PROBLEMS
    out = capsys.readouterr().out
    problems = [line for line in out.splitlines() if line.startswith("PROBLEM ")]
    assert [p.split(":", 1)[0] for p in problems] == [f"PROBLEM {n}" for n in range(1, 6)]
    text = "\n".join(problems)
    assert "asked for model 'jina-v2'" in text
    assert f"fingerprint {fp('stale')}" in text
    assert "reason queue_wait" in text
    assert "were cut to it" in text
    assert f"Qdrant collection {ROO_WRONG} (3 points) has vector size 1536" in text
    assert "5 problem(s) found" in out


def test_plain_text_access_logs_are_a_problem_doctor_names(stack, journal, capsys):
    journal["lines"] = ["2026-12-02T10:00:01.000+00:00 info jina_openai.access GET /info 200"]
    assert cli.doctor(stack, "1h") == cli.EXIT_PROBLEMS
    assert "jina_embeddings_log_format: json" in capsys.readouterr().out


def test_doctor_exits_3_when_the_service_does_not_answer(stack, journal, capsys):
    stack["jina"]["url"] = "http://127.0.0.1:9"
    assert cli.doctor(stack, "1h") == cli.EXIT_UNHEALTHY
    assert "GET /info answered nothing" in capsys.readouterr().out
    assert journal["commands"] == []


def test_doctor_exits_3_when_qdrant_refuses_the_key_and_names_the_setting(
    stack, journal, tmp_path, capsys
):
    Path(stack["qdrant"]["env_file"]).write_text('QDRANT__SERVICE__API_KEY="wrong"\n')
    assert cli.doctor(stack, "1h") == cli.EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert "answered 401" in out
    assert "stack_cli_qdrant_env_file" in out


def test_doctor_exits_3_when_qdrant_does_not_answer(stack, journal, capsys):
    stack["qdrant"]["url"] = "http://127.0.0.1:9"
    assert cli.doctor(stack, "1h") == cli.EXIT_UNHEALTHY
    assert "/collections answered nothing" in capsys.readouterr().out


def test_doctor_skips_qdrant_on_a_host_without_it(stack, journal, capsys):
    stack["qdrant"] = {"managed": False}
    assert cli.doctor(stack, "1h") == cli.EXIT_OK
    assert "Roo collection" not in capsys.readouterr().out


def test_doctor_exits_1_when_journalctl_fails(stack, journal, capsys):
    journal["rc"] = 1
    assert cli.doctor(stack, "yesterday-ish") == cli.EXIT_FAILED
    out = capsys.readouterr().out
    assert "journalctl --since 'yesterday-ish' failed: No journal files" in out


def test_doctor_needs_the_embeddings_service_on_this_host(stack, journal, capsys):
    stack["jina"]["managed"] = False
    assert cli.doctor(stack, "1h") == cli.EXIT_USAGE
    assert "does not run on this host" in capsys.readouterr().err


def test_main_runs_doctor_as_root_with_the_since_option(stack, monkeypatch):
    calls: list = []
    monkeypatch.setattr(cli, "load_config", lambda: stack)
    monkeypatch.setattr(cli, "become_root", lambda argv: calls.append(("root", argv)))
    monkeypatch.setattr(cli, "doctor", lambda config, since: calls.append(("doctor", since)) or 5)
    assert cli.main(["doctor", "--since", "30m"]) == cli.EXIT_PROBLEMS
    assert calls == [("root", ["doctor", "--since", "30m"]), ("doctor", "30m")]
