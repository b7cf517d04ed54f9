#!/usr/bin/env bash
# The system packages `make demo` and `make test` need, installed when missing.
#
#   tools/prerequisites.sh           install what is missing (as root), else say what to run
#   tools/prerequisites.sh --check   only report; exit 1 when something is missing
#
# Debian 12 and Ubuntu 24.04. Run as root it installs only what is missing and says once what
# and why; without root it prints the one command to run and exits non-zero. Nothing is done
# when everything is present, so the Makefile runs it before every demo and test.
set -euo pipefail

# package: why (printed once, for the packages about to be installed)
declare -A why=(
  [make]="the entry points (Makefile)"
  [git]="the checkout itself and the wheelhouse's input hash"
  [python3-venv]="the pinned controller toolchain in .venv (make setup)"
  [ca-certificates]="https to PyPI and the Debian mirror"
  [openssh-client]="ssh keys and ssh to the test hosts (VS Code tasks run over ssh)"
  [podman]="the systemd test hosts are podman containers"
  [runc]="the OCI runtime that runs systemd as PID 1 in them"
  [debootstrap]="the test-host image is a Debian 12 root filesystem built from the mirror"
  [debian-archive-keyring]="debootstrap checks the Debian mirror's signatures with it"
  [uidmap]="podman's user namespaces"
  [slirp4netns]="podman's container networking"
  [fuse-overlayfs]="podman's storage driver"
)
packages=(make git python3-venv ca-certificates openssh-client podman runc debootstrap
  debian-archive-keyring uidmap slirp4netns fuse-overlayfs)

say() { echo "prerequisites: $*" >&2; }

supported_os() {
  local id="" version_id=""
  # shellcheck disable=SC1091
  [[ -r /etc/os-release ]] && . /etc/os-release && id=${ID:-} version_id=${VERSION_ID:-}
  case "$id:$version_id" in
    debian:12 | ubuntu:24.04) return 0 ;;
    debian:* | ubuntu:*) say "$id $version_id is untested (Debian 12 and Ubuntu 24.04 are); trying anyway"; return 0 ;;
    *) return 1 ;;
  esac
}

installed() { [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]; }

if ! command -v dpkg-query >/dev/null || ! supported_os; then
  say "not a Debian or Ubuntu system: install the equivalents of: ${packages[*]}"
  missing=()
  for tool in podman runc debootstrap ssh-keygen python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || { say "missing here: ${missing[*]}"; exit 1; }
  exit 0
fi

missing=()
for package in "${packages[@]}"; do
  installed "$package" || missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

command="apt-get install -y ${missing[*]}"
if [[ ${1:-} == --check ]]; then
  say "missing: ${missing[*]}"
  exit 1
fi
if [[ $(id -u) != 0 ]]; then
  say "missing system packages: ${missing[*]}"
  say "run as root (then make again):  sudo $command"
  exit 1
fi

say "installing ${#missing[@]} system packages with apt-get:"
for package in "${missing[@]}"; do
  printf '  %-24s %s\n' "$package" "${why[$package]}" >&2
done
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/jina-stack-prerequisites.XXXXXX.log)
if ! { apt-get update -qq && apt-get install -y -qq "${missing[@]}"; } >"$log" 2>&1; then
  tail -n 20 "$log" >&2
  say "apt-get failed (full log: $log)"
  exit 1
fi
rm -f "$log"
say "installed: ${missing[*]}"
