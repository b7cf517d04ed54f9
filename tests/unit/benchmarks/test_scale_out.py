"""`make scale-out`'s harness: the HAProxy configuration it shares with `make dashboard`
(bench/haproxy.py), its figures, its report, and the command end to end in miniature (slow)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import haproxy
from bench.scale_out import host_settings, parse_args, ratio, steady_inputs_per_s
from bench.scale_out_report import TARGET_RATIO, render, verdicts

REPO = Path(__file__).resolve().parents[3]


def two_hosts_config() -> str:
    servers = (haproxy.Server("host1", 4001, 1024), haproxy.Server("host2", 4002, 1024))
    return haproxy.haproxy_config(
        [haproxy.Backend("embeddings", 8080, "/ready", servers)], stats_port=8404
    )


def test_the_proxy_config_is_the_roles_cut_with_both_hosts() -> None:
    config = two_hosts_config()
    role = haproxy.role_defaults()
    assert f"balance {role['stack_proxy_balance']}" in config
    assert "http-check send meth GET uri /ready " in config
    assert "http-check expect status 200" in config
    assert "    server host1 127.0.0.1:4001 maxconn 1024\n" in config
    assert "    server host2 127.0.0.1:4002 maxconn 1024\n" in config
    assert f"timeout server {role['stack_proxy_timeout_server_s']}s" in config
    assert "bind 127.0.0.1:8080" in config
    assert "0.0.0.0" not in config
    assert "ssl" not in config


def test_haproxy_accepts_the_two_host_config(tmp_path: Path) -> None:
    from tests.unit.stack_proxy.haproxy_binary import obtain

    binary, why = obtain()
    if binary is None:
        pytest.skip(why)
    path = tmp_path / "haproxy.cfg"
    path.write_text(two_hosts_config())
    result = binary.check(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_maxconn_per_server_is_derived_from_the_hosts_queue_as_the_role_does() -> None:
    role = {**haproxy.role_defaults(), "stack_proxy_embeddings_maxconn": 0}
    settings = {
        "JINA_OPENAI_WORKERS": "2",
        "JINA_OPENAI_MAX_QUEUED_REQUESTS": "100",
        "JINA_OPENAI_MAX_CONNECTIONS": "70",
    }
    assert haproxy.embeddings_maxconn(settings, role) == 140  # min(2 x 100, 2 x 70)
    assert haproxy.embeddings_maxconn({"JINA_OPENAI_WORKERS": "1"}, role) == 1024
    fixed = {**role, "stack_proxy_embeddings_maxconn": 32}
    assert haproxy.embeddings_maxconn(settings, fixed) == 32


STATS_CSV = """# pxname,svname,qcur,scur,stot,status,check_status,hrsp_2xx,hrsp_4xx,hrsp_5xx,
embeddings,FRONTEND,,0,40,OPEN,,40,0,0,
embeddings,host1,0,0,21,UP,L7OK,21,0,0,
embeddings,host2,0,0,19,DOWN,L7STS,19,0,0,
embeddings,BACKEND,0,0,40,UP,,40,0,0,
stats,FRONTEND,,1,3,OPEN,,3,0,0,
"""


def test_stats_csv_gives_each_servers_state_and_sessions() -> None:
    rows = haproxy.parse_stats_csv(STATS_CSV)
    servers = haproxy.server_rows(rows, "embeddings")
    assert set(servers) == {"host1", "host2"}
    assert servers["host1"]["stot"] == "21"
    assert haproxy.all_up(rows, "embeddings", ["host1"])
    assert not haproxy.all_up(rows, "embeddings", ["host1", "host2"])  # host2 failed its check
    assert not haproxy.all_up(rows, "embeddings", ["host3"])  # not there at all


def test_steady_rate_leaves_out_the_start_and_the_tail() -> None:
    # 10 batches of 60: one per second, then a slow tail batch 10 s after the ninth
    done = [(float(t), 60) for t in range(1, 10)] + [(19.0, 60)]
    # 10 % of 600 reached at t=1 (60 done), 90 % at t=9 (540 done): 480 inputs in 8 s
    assert steady_inputs_per_s(done) == pytest.approx(60.0)
    assert steady_inputs_per_s([]) is None
    assert steady_inputs_per_s([(1.0, 60)]) is None  # one batch: no window
    assert ratio(20.0, 37.0) == 1.85
    assert ratio(0.0, 10.0) is None


def test_both_phases_get_the_same_host_settings_one_worker() -> None:
    args = parse_args(
        ["--haproxy", sys.executable, "--cores", "0,1", "--dtype", "float32", "--set", "X=1"]
    )
    settings = host_settings(args)
    assert settings["JINA_OPENAI_WORKERS"] == "1"
    assert settings["JINA_OPENAI_DTYPE"] == "float32"
    assert settings["X"] == "1"
    assert args.threads == 1  # torch threads per host
    assert len(args.cores) == 2
    with pytest.raises(SystemExit):
        parse_args(["--haproxy", sys.executable, "--cores", "0,0"])


def host(name: str, core: int, *, affinity: list[int] | None = None, dtype: str = "bfloat16"):
    affinity = [core] if affinity is None else affinity
    return {
        "name": name,
        "core": core,
        "affinity_read_back": affinity,
        "pinned": affinity == [core],
        "dtype": dtype,
        "measured_tokens_per_s": 9000.0,
        "cores_busy": 0.97,
        "log_statuses": {"200": 34},
        "proxy_sessions": 34,
        "proxy_hrsp": {"2xx": 34, "4xx": 0, "5xx": 0},
    }


def phase(name: str, hosts: list[dict[str, Any]], inputs_per_s: float, *, failed: int = 0):
    workspaces = [
        {
            "name": f"ws{n}",
            "chunks": 2000,
            "batches": 34,
            "failed_batches": failed if n == 1 else 0,
            "blocks_indexed": 2000 - 60 * (failed if n == 1 else 0),
            "would_drop_index": False,
            "finished": True,
            "elapsed_s": 4000 / inputs_per_s,
            "errors": ["Failed to process batch after 3 attempts: HTTP 429"] * failed,
            "http_requests": 34,
            "http_429": 0,
            "abandoned_499": 0,
            "sdk_retries": 0,
            "embedder_429_retries": 0,
            "scanner_retries": 0,
        }
        for n in (1, 2)
    ]
    return {
        "phase": name,
        "hosts": len(hosts),
        "cores": [h["core"] for h in hosts],
        "loadavg_before": ["0.1", "0.1", "0.1"],
        "wall_s": 4000 / inputs_per_s,
        "inputs": 4000,
        "inputs_per_s": inputs_per_s,
        "steady_inputs_per_s": inputs_per_s * 1.02,
        "failed_batches": failed,
        "http_429": 0,
        "abandoned_499": 0,
        "unfinished": [],
        "client_cpu_s": 3.0,
        "haproxy_cpu_s": 0.4,
        "haproxy_maxconn_per_server": 1024,
        "per_host": hosts,
        "per_workspace": workspaces,
    }


def report(one: dict[str, Any], two: dict[str, Any]) -> dict[str, Any]:
    return {
        "started": "then",
        "finished": "now",
        "parameters": {
            "workspaces": 2,
            "chunks_per_workspace": 2000,
            "batch_size": 60,
            "model": "minilm",
            "dtype": "auto",
            "device": "cpu",
            "torch_threads": 1,
            "cores": [0, 1],
            "client_cores": None,
            "usable_cores": 2,
            "command": "python -m bench.scale_out --haproxy haproxy",
        },
        "service_settings": {"JINA_OPENAI_WORKERS": "1"},
        "phases": [one, two],
        "ratio": ratio(one["inputs_per_s"], two["inputs_per_s"]),
        "steady_ratio": ratio(one["steady_inputs_per_s"], two["steady_inputs_per_s"]),
    }


def test_the_verdict_needs_the_ratio_and_a_clean_pinned_run() -> None:
    good = report(
        phase("one", [host("host1", 0)], 40.0),
        phase("two", [host("host1", 0), host("host2", 1)], 74.0),
    )
    assert all(met for _, _, met in verdicts(good))
    markdown = render(good)
    assert "**Two hosts / one host: 1.85x**" in markdown
    assert f"target >= {TARGET_RATIO}x" in markdown
    assert "| one | 1 | 0 |" in markdown
    assert "| two | host2 | 1 | 1 | bfloat16 |" in markdown
    assert "Smoke run" not in markdown
    assert "## How `make scale-out` measures" in markdown

    bad = report(
        phase("one", [host("host1", 0)], 40.0),
        phase(
            "two",
            [host("host1", 0, affinity=[0, 1]), host("host2", 1, dtype="float32")],
            60.0,
            failed=1,
        ),
    )
    missed = {name for name, _, met in verdicts(bad) if not met}
    assert missed == {
        f"two hosts reach >= {TARGET_RATIO}x one host's inputs/s",
        "zero failed batches, both phases",
        "every host's threads pinned to its one core (read back)",
        "every host runs the same dtype",
    }
    assert "**no**" in render(bad)
    assert "Failed to process batch after 3 attempts: HTTP 429" in render(bad)


@pytest.mark.slow
def test_scale_out_runs_end_to_end_in_miniature(tmp_path: Path) -> None:
    from tests.unit.stack_proxy.haproxy_binary import obtain

    binary, why = obtain()
    if binary is None:
        pytest.skip(why)
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("two usable cores are needed")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.scale_out",
            "--haproxy",
            str(binary.binary),
            "--workspaces",
            "1",
            "--chunks",
            "12",
            "--batch-size",
            "3",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads((tmp_path / "scale-out.json").read_text())
    one, two = data["phases"]
    assert [one["hosts"], two["hosts"]] == [1, 2]
    for run in (one, two):
        assert run["inputs"] == 12
        assert run["failed_batches"] == 0
        [workspace] = run["per_workspace"]
        assert workspace["http_statuses"] == {"200": 4}  # 12 chunks in batches of 3
        # every request went through HAProxy to a host, which logged it
        logged = sum(sum(h["log_statuses"].values()) for h in run["per_host"])
        assert logged == workspace["http_requests"] == 4
        for h in run["per_host"]:
            assert h["pinned"], h
            assert h["affinity_read_back"] == [h["core"]]
    # leastconn spread the 4 batches sent at once over both hosts
    assert all(h["log_statuses"].get("200", 0) >= 1 for h in two["per_host"])
    assert data["ratio"] is not None
    assert "Smoke run" in (tmp_path / "scale-out.md").read_text()
