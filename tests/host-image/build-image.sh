#!/usr/bin/env bash
# Build the local Debian 12 test-host image with systemd as PID 1 (for molecule).
#
#   tests/host-image/build-image.sh              build if missing; print the image name
#   tests/host-image/build-image.sh --name       print the image name only
#   tests/host-image/build-image.sh --rebuild    build even when the image exists
#
# No registry is reachable here, so the root filesystem comes from debootstrap against a Debian
# mirror and goes into podman with `podman import`. The image tag is a hash of everything that
# shapes the image (this script, the package list, the suite and the mirror): change any of them
# and a new image is built; otherwise the existing one is reused.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

suite=${HOST_IMAGE_SUITE:-bookworm}
mirror=${HOST_IMAGE_MIRROR:-http://deb.debian.org/debian}
# A real Debian 12 host has the security suite too (roles pin its versions, e.g. HAProxy).
security_mirror=${HOST_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
repository=${HOST_IMAGE_REPOSITORY:-localhost/jina-stack-testhost}
# What a real Debian 12 host of ours has before Ansible touches it, plus what testinfra needs.
packages=(
  systemd systemd-sysv dbus
  python3 python3-venv python3-apt
  sudo openssh-server
  ca-certificates iproute2 procps
  rsync
)

export CONTAINERS_CONF=${CONTAINERS_CONF:-$here/containers.conf}

die() { echo "build-image: $*" >&2; exit 1; }

image_name() {
  local key
  key=$( { cat "${BASH_SOURCE[0]}"; echo "$suite $mirror $security_mirror ${packages[*]}"; } | sha256sum | cut -c1-12)
  echo "$repository:$suite-$key"
}

require_tools() {
  local missing=()
  command -v podman >/dev/null || missing+=(podman)
  command -v runc >/dev/null || missing+=(runc)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  if ((${#missing[@]})); then
    die "missing ${missing[*]}; as root, tools/prerequisites.sh installs them (make image runs it)"
  fi
  [[ $(id -u) == 0 ]] || die "debootstrap and rootful podman need root"
}

configure_rootfs() {
  local root=$1
  # A fresh machine-id per container: systemd creates one at boot when the file is empty.
  : >"$root/etc/machine-id"
  rm -f "$root/var/lib/dbus/machine-id"
  echo "jina-stack-testhost" >"$root/etc/hostname"
  cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb $security_mirror $suite-security main
SOURCES
  # Units that make no sense in a container and only slow the boot down.
  local unit
  for unit in getty.target systemd-remount-fs.service dev-hugepages.mount \
    sys-fs-fuse-connections.mount console-getty.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  # sshd is wanted by later test scenarios, but host keys are made per container at first boot.
  rm -f "$root"/etc/ssh/ssh_host_*
  mkdir -p "$root/etc/systemd/system/ssh.service.d"
  cat >"$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<UNIT
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
  # A stalled mirror connection fails and is retried instead of hanging a test run for good.
  cat >"$root/etc/apt/apt.conf.d/80-test-host-network" <<APT
Acquire::Retries "3";
Acquire::http::Timeout "30";
APT
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
  # No package lists, so they must look old: Ansible's apt `cache_valid_time` judges their age
  # by this directory's mtime, and a freshly built image would otherwise pass for up to date.
  rm -f "$root"/var/lib/apt/periodic/update-success-stamp
  touch -d @0 "$root"/var/lib/apt/lists
}

build() {
  local name=$1 work
  work=$(mktemp -d /var/tmp/jina-testhost.XXXXXX)
  # shellcheck disable=SC2064 # expand now: $work is local to this function
  trap "rm -rf '$work'" EXIT
  echo "build-image: debootstrap $suite from $mirror into $work" >&2
  local include
  include=$(IFS=,; echo "${packages[*]}")
  if ! debootstrap --variant=minbase --include="$include" "$suite" "$work/rootfs" "$mirror" \
    >"$work/debootstrap.log" 2>&1; then
    tail -n 20 "$work/debootstrap.log" >&2
    die "debootstrap failed (is $mirror reachable?)"
  fi
  configure_rootfs "$work/rootfs"
  echo "build-image: importing as $name" >&2
  tar -C "$work/rootfs" --numeric-owner -c . \
    | podman import \
      --change 'CMD ["/sbin/init"]' \
      --change 'ENV container=podman' \
      --change 'STOPSIGNAL SIGRTMIN+3' \
      - "$name" >/dev/null
}

main() {
  local mode=${1:-build}
  local name
  name=$(image_name)
  case $mode in
    --name) echo "$name"; return ;;
    build | --rebuild) ;;
    *) die "usage: $0 [--name|--rebuild]" ;;
  esac
  require_tools
  if [[ $mode != --rebuild ]] && podman image exists "$name"; then
    echo "build-image: reusing $name" >&2
  else
    build "$name"
  fi
  echo "$name"
}

main "$@"
