#!/bin/sh
# Make sure the build (or test) prerequisites are installed.
#   scripts/prereqs.sh build|test
# As root on Debian, installs what is missing with apt-get; otherwise prints
# exactly what to install and fails.
set -eu

build_pkgs="make gcc musl-tools xz-utils ca-certificates"
test_pkgs="$build_pkgs python3 python3-pytest binutils file procps util-linux openssl mosquitto mosquitto-clients python3-paho-mqtt busybox-static shellcheck"

case "${1:-}" in
build) pkgs=$build_pkgs ;;
test) pkgs=$test_pkgs ;;
*) echo "usage: $0 build|test" >&2; exit 2 ;;
esac

# A cross or custom compiler is the user's business; only musl-gcc is ours.
case "${CC:-musl-gcc}" in
musl-gcc) ;;
*) pkgs=$(echo "$pkgs" | sed 's/musl-tools//') ;;
esac

missing=
if command -v dpkg-query >/dev/null 2>&1; then
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' ||
			missing="$missing $p"
	done
else
	for c in make gcc xz; do
		command -v $c >/dev/null 2>&1 || missing="$missing $c"
	done
	[ "${CC:-musl-gcc}" != musl-gcc ] || command -v musl-gcc >/dev/null 2>&1 ||
		missing="$missing musl-gcc"
	if [ -n "$missing" ]; then
		echo "prereqs: missing:$missing (install them with your package manager)" >&2
		exit 1
	fi
	exit 0
fi
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "prereqs: missing packages:$missing" >&2
	echo "prereqs: run as root: apt-get install -y$missing" >&2
	exit 1
fi
echo "prereqs: installing$missing"
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086 # $missing is a list of package names
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	apt-get install -y -q --no-install-recommends $missing >/dev/null
}
