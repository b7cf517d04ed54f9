# Entry points for people and CI alike (.ci/run calls `make setup` and `make test`).
#
#   make demo        the whole stack on a local systemd test host: site.yml, verify.yml, Roo Code settings
#   make demo-down   remove the demo host
#   make prerequisites  the system packages (apt, as root; tools/prerequisites.sh): run by the others
#   make setup       controller toolchain in .venv (pinned: requirements/)
#   make lint        ruff, yamllint, ansible-lint (production profile), make rules
#   make rules       promtool check + unit tests of the alert rules (tests/rules/)
#   make unit        pytest: the embeddings service, the native jina model, the Qdrant stand-in
#   make molecule    every molecule scenario on a local systemd test host (SCENARIO=name for one)
#   make test        lint + unit + molecule
#   make image       build (or reuse) the Debian 12 systemd test-host image
#   make wheelhouse  the embeddings service and its pinned dependencies as wheels, in build/wheelhouse
#   make bench       in-process limit vs our service vs the naive baseline; writes docs/benchmarks.md
#                    (~20 min on 2 cores; BENCH_ARGS="--model DIR --device cuda" for the jina model)
#   make bench-speed the CPU-speed phases: full-size JinaBERT float32 vs bfloat16, MiniLM quality,
#                    re-index cache cold/warm/restart, queries while indexing; writes
#                    docs/benchmarks-speed.md (~10 min on 2 cores; BENCH_SPEED_ARGS=--quick: 1-6 min)
#   make soak        long mixed load (20k requests); fails when RSS grows (SOAK_ARGS to change it)
#   make torture     adversarial cases against the service under queries; writes docs/torture.md
#                    (~10 min on 2 cores; TORTURE_ARGS="--cases big,xff" for some, "--quick")
#   make dashboard   the Grafana dashboard's queries against a throwaway Prometheus fed by a short
#                    load (~2 min, loopback); writes docs/dashboard.png (DASHBOARD_ARGS to change it)
#   make roo-load    K Roo Code workspaces indexing at once (Roo's retries, 10 % rule) + searches;
#                    writes docs/roo-load.md (ROO_LOAD_ARGS="--workspaces 1,2 --chunks 200 --model full-size")
#   make scale-out   one embedding host vs two behind HAProxy (Debian's), each pinned to one core
#                    (taskset), the same Roo index load through the proxy; writes docs/scale-out.md
#                    (~6 min on 2 cores; SCALE_OUT_ARGS="--chunks 120 --out build/scale-out": ~1 min)

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
PYTHON ?= python3
SCENARIO ?=

export CONTAINERS_CONF := $(CURDIR)/tests/host-image/containers.conf
export HF_HUB_OFFLINE := 1

# $(call timed,NAME,COMMAND): run COMMAND, then print how long it took and its exit status.
timed = @start=$$(date +%s); ( $(2) ); rc=$$?; echo "== $(1): $$(( $$(date +%s) - start ))s (exit $$rc)"; exit $$rc

.PHONY: help prerequisites setup lint rules unit molecule test image wheelhouse demo demo-down bench bench-speed soak torture roo-load scale-out dashboard clean

help:
	@sed -n 's/^#   //p' $(firstword $(MAKEFILE_LIST))

prerequisites:
	@tools/prerequisites.sh

setup: prerequisites $(VENV)/.installed

$(VENV)/.installed: requirements/dev.txt requirements/service.txt requirements/constraints.txt service/pyproject.toml
	$(call timed,setup,\
	  { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
	  $(BIN)/pip install --quiet --upgrade pip && \
	  $(BIN)/pip install --quiet -c requirements/constraints.txt -r requirements/dev.txt && \
	  $(BIN)/pip install --quiet --no-deps --editable ./service && \
	  touch $@)

lint: setup
	$(call timed,lint,\
	  $(BIN)/ruff check . && \
	  $(BIN)/ruff format --check . && \
	  $(BIN)/yamllint --strict . && \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production)
	@$(MAKE) --no-print-directory rules

# promtool from Debian 12's prometheus package, unpacked under build/ (no daemon is installed).
PROMETHEUS_DEB_VERSION := 2.42.0+ds-5+deb12u1
PROMTOOL := build/prometheus/usr/bin/promtool
RULES := roles/monitoring/files/rules/jina-stack.rules.yml

$(PROMTOOL):
	tools/debian-binary.sh prometheus $(PROMETHEUS_DEB_VERSION) build/prometheus >/dev/null
	test -x $@

# prometheus (the daemon) comes in the same package and tree as promtool.
PROMETHEUS := build/prometheus/usr/bin/prometheus
# Debian 12's node exporter, pinned like roles/host_exporter's host_exporter_package_version.
NODE_EXPORTER_DEB_VERSION := 1.5.0-1+b6
NODE_EXPORTER := build/node-exporter/usr/bin/prometheus-node-exporter

$(NODE_EXPORTER):
	tools/debian-binary.sh prometheus-node-exporter $(NODE_EXPORTER_DEB_VERSION) build/node-exporter >/dev/null
	test -x $@

rules: $(PROMTOOL)
	$(call timed,rules,$(PROMTOOL) check rules $(RULES) && $(PROMTOOL) test rules tests/rules/*.test.yml)

# pytest exits 5 when it collects nothing: for us that means the suite went missing, a failure.
unit: setup
	$(call timed,unit,\
	  $(BIN)/pytest; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: the unit suite is missing" >&2; fi; \
	  exit $$rc)

image: prerequisites
	$(call timed,image,tests/host-image/build-image.sh >/dev/null)

# What roles/jina_embeddings installs offline (jina_embeddings_wheelhouse_src). Rebuilt only
# when service/, requirements/ or the script change: the script keeps a hash of its inputs.
wheelhouse: setup
	$(call timed,wheelhouse,$(BIN)/python tools/build-wheelhouse.py)

# The scenarios CI runs, one after the other (two cores: in parallel they only slow each other
# down); each one's time is printed as "== molecule NAME: Ns".
MOLECULE_SCENARIOS := default qdrant-upgrade team
molecule: setup image wheelhouse
	$(call timed,molecule,\
	  export MOLECULE_TEST_IMAGE=$$(tests/host-image/build-image.sh --name) && \
	  export PATH=$(CURDIR)/$(BIN):$$PATH && \
	  for scenario in $(or $(SCENARIO),$(MOLECULE_SCENARIOS)); do \
	    start=$$(date +%s); molecule test -s $$scenario; rc=$$?; \
	    echo "== molecule $$scenario: $$(( $$(date +%s) - start ))s (exit $$rc)"; \
	    [ $$rc -eq 0 ] || exit $$rc; done)

test: lint unit molecule

# The README's first command. Tries Hugging Face for the jina model (so HF_HUB_OFFLINE is lifted
# here) and falls back to the packaged all-MiniLM-L6-v2 with a banner; see demo/demo.sh.
demo: setup image wheelhouse
	$(call timed,demo,env -u HF_HUB_OFFLINE demo/demo.sh)

demo-down:
	demo/demo.sh down

# Loopback only; every load is bounded in time and requests (bench/README.md).
BENCH_ARGS ?=
BENCH_SPEED_ARGS ?=
SOAK_ARGS ?=
TORTURE_ARGS ?=
ROO_LOAD_ARGS ?=
bench: setup
	$(call timed,bench,$(BIN)/python -m bench.run $(BENCH_ARGS))

bench-speed: setup
	$(call timed,bench-speed,$(BIN)/python -m bench.speed $(BENCH_SPEED_ARGS))

soak: setup
	$(call timed,soak,$(BIN)/python -m bench.soak $(SOAK_ARGS))

torture: setup
	$(call timed,torture,$(BIN)/python -m bench.torture $(TORTURE_ARGS))

# Loopback only, bounded (tools/dashboard_demo.py). HAProxy (Debian's, unpacked under build/haproxy
# by the stack_proxy tests' helper) sits in front when it can be had; the demo runs without it.
DASHBOARD_ARGS ?=
dashboard: setup $(PROMTOOL) $(NODE_EXPORTER)
	$(call timed,dashboard,\
	  haproxy=$$($(BIN)/python -c 'from tests.unit.stack_proxy.haproxy_binary import obtain; h = obtain()[0]; print(h.binary if h else "")'); \
	  if [ -z "$$haproxy" ]; then echo "no haproxy here: the proxy panels stay empty"; fi; \
	  $(BIN)/python -m tools.dashboard_demo --prometheus $(PROMETHEUS) --node-exporter $(NODE_EXPORTER) \
	    $${haproxy:+--haproxy $$haproxy} $(DASHBOARD_ARGS))

roo-load: setup
	$(call timed,roo-load,$(BIN)/python -m bench.roo_load $(ROO_LOAD_ARGS))

# Loopback only, bounded (bench/scale_out.py). HAProxy as for `make dashboard`, but required here.
SCALE_OUT_ARGS ?=
scale-out: setup
	$(call timed,scale-out,\
	  haproxy=$$($(BIN)/python -c 'import sys; from tests.unit.stack_proxy.haproxy_binary import obtain; h = obtain(); print(h[0].binary if h[0] else ""); h[0] or sys.stderr.write(h[1] + "\n")'); \
	  if [ -z "$$haproxy" ]; then echo "scale-out needs Debian's haproxy (tools/debian-binary.sh)" >&2; exit 1; fi; \
	  $(BIN)/python -m bench.scale_out --haproxy $$haproxy $(SCALE_OUT_ARGS))

clean:
	rm -rf build .pytest_cache .ruff_cache
