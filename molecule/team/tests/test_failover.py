"""Failover and recovery of the embeddings backend behind roles/stack_proxy.

Requests go from the workstation through the proxy (TLS, the generated CA); HAProxy's view is
read on the proxy from its stats socket (`show stat`: status, sessions per server) and from its
Prometheus endpoint (:8404/metrics, haproxy_server_status). The tests run in file order:

1. both embedding hosts UP, and both take part of a short sequential load (leastconn);
2. jina-embeddings stopped on the first host: every request still succeeds (HAProxy retries a
   refused connection on the other server before its checks notice), the server is DOWN
   within (fall + 1) x inter of the stop (both clocks are the same kernel's CLOCK_MONOTONIC),
   and while DOWN it gets no request;
3. started again: it comes back UP and takes requests again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from teamhosts import CA_FILE, MODEL_ID, Team, host, run_probe

UNIT = "jina-embeddings.service"


def stats(team: Team, addresses: dict, wait_for: dict | None = None, timeout: float = 0) -> dict:
    return run_probe(
        team.proxy,
        "haproxy_stats",
        {
            "metrics_url": f"http://{addresses[team.proxy]}:8404/metrics",
            "wait_for": wait_for,
            "timeout": timeout,
        },
    )


def load(team: Team, key: str, count: int) -> list:
    return run_probe(
        team.workstation,
        "embeddings_load",
        {
            "ca": CA_FILE,
            "url": f"https://{team.proxy}:443/v1/embeddings",
            "key": key,
            "model": MODEL_ID,
            "count": count,
        },
    )


def prometheus_state(snapshot: dict, server: str) -> str:
    """The state label whose haproxy_server_status sample is 1 for SERVER."""
    states = [
        line.split('state="', 1)[1].split('"', 1)[0]
        for line in snapshot["metrics"]
        if f'server="{server}"' in line and line.rstrip().endswith(" 1")
    ]
    assert len(states) == 1, snapshot["metrics"]
    return states[0]


def sessions(snapshot: dict, server: str) -> int:
    return snapshot["servers"][server]["stot"]


@pytest.fixture(scope="module", autouse=True)
def first_host_running_at_the_end(team: Team) -> Iterator[None]:
    """Whatever fails here, the first embedding host's service is started again at the end."""
    yield
    host(team.embeddings[0]).run(f"systemctl start {UNIT}")


def test_two_embedding_hosts_behind_the_proxy(team: Team):
    assert len(team.embeddings) == 2


def test_both_hosts_are_up_and_share_the_load(team: Team, addresses, embeddings_key):
    first, second = team.embeddings
    before = stats(team, addresses, {"server": first, "status": "UP"}, timeout=60)
    assert {s["status"] for s in before["servers"].values()} == {"UP"}, before["servers"]
    assert set(before["servers"]) == {first, second}
    assert prometheus_state(before, first) == prometheus_state(before, second) == "UP"

    assert load(team, embeddings_key, 10) == [200] * 10
    after = stats(team, addresses)
    for server in (first, second):
        assert sessions(after, server) > sessions(before, server), (before, after)


def test_stopped_host_is_marked_down_and_requests_keep_succeeding(
    team: Team, addresses, embeddings_key, check_timing
):
    first, second = team.embeddings
    stopper = host(first)
    stopper.run_expect([0], f"systemctl stop {UNIT}")
    stopped_us = stopper.check_output(
        f"systemctl show --property InactiveEnterTimestampMonotonic --value {UNIT}"
    )
    stopped_at = int(stopped_us) / 1e6

    # Right after the stop, before the checks have noticed: HAProxy retries on the other server.
    assert load(team, embeddings_key, 12) == [200] * 12

    budget = (check_timing["fall"] + 1) * check_timing["inter"]
    down = stats(team, addresses, {"server": first, "status": "DOWN"}, timeout=budget + 30)
    assert down["servers"][first]["status"] == "DOWN", down["servers"]
    assert down["servers"][second]["status"] == "UP", down["servers"]
    took = down["seen_at"] - stopped_at
    assert took <= budget, f"marked DOWN {took:.1f} s after the stop (budget {budget} s)"
    assert prometheus_state(down, first) == "DOWN"
    assert prometheus_state(down, second) == "UP"

    assert load(team, embeddings_key, 8) == [200] * 8
    after = stats(team, addresses)
    assert sessions(after, first) == sessions(down, first), "a DOWN server got requests"
    assert sessions(after, second) >= sessions(down, second) + 8


def test_restarted_host_is_marked_up_and_takes_traffic_again(
    team: Team, addresses, embeddings_key, check_timing
):
    first, second = team.embeddings
    host(first).run_expect([0], f"systemctl start {UNIT}")
    started = time.monotonic()
    # The service loads and warms its model before /ready says 200; then rise x inter.
    up = stats(team, addresses, {"server": first, "status": "UP"}, timeout=180)
    assert up["servers"][first]["status"] == "UP", (
        f"{first} not UP {time.monotonic() - started:.0f} s after its start: {up['servers']}"
    )
    assert prometheus_state(up, first) == "UP"

    assert load(team, embeddings_key, 10) == [200] * 10
    after = stats(team, addresses)
    # leastconn with one request at a time: servers of equal load take turns.
    assert sessions(after, first) - sessions(up, first) >= 3, (up["servers"], after["servers"])
    assert sessions(after, second) - sessions(up, second) >= 3, (up["servers"], after["servers"])
