#!/usr/bin/env bash
# Unpack a Debian package's files under a directory, without installing anything.
#
#   tools/debian-binary.sh PACKAGE VERSION DEST   e.g. prometheus 2.42.0+ds-5+deb12u1 build/prometheus
#
# `apt-get download` of PACKAGE=VERSION (VERSION "" or gone from the mirror: the current one,
# with a message), then `dpkg-deb -x` into DEST. Runs `apt-get update` first when the package
# lists are empty (a fresh container). Prints the unpacked version on stdout; messages go to stderr.
set -euo pipefail

if [ $# -ne 3 ]; then
  echo "usage: $0 PACKAGE VERSION DEST" >&2
  exit 2
fi
package=$1
version=$2
dest=$(realpath -m "$3")
for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "debian-binary: $tool is needed" >&2; exit 2; }
done
if ! compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null; then
  echo "debian-binary: the apt package lists are empty: running apt-get update" >&2
  apt-get update -qq >&2
fi
work=$(mktemp -d)
chmod 755 "$work"  # apt downloads as the _apt user where it can
trap 'rm -rf "$work"' EXIT
cd "$work"
if [ -n "$version" ] && ! apt-get download -qq "$package=$version" >/dev/null 2>&1; then
  echo "debian-binary: $package $version is gone from the mirror: using the current one" >&2
  version=""
fi
if [ -z "$version" ]; then
  apt-get download -qq "$package" >&2
fi
debs=("$work/${package}"_*.deb)
mkdir -p "$dest"
dpkg-deb -x "${debs[0]}" "$dest"
dpkg-deb -f "${debs[0]}" Version
