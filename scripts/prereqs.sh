#!/bin/sh
# Make sure the build (or test) prerequisites are installed.
#   scripts/prereqs.sh build|test|demo|cross [ARCH...]
# demo: the build set plus openssl and mosquitto (make demo's local broker).
# cross: Debian's cross compilers, musl-dev of each foreign architecture and
# qemu-user-static, for ARCH (aarch64 armhf mipsel; default all three); test
# includes all of them (make test runs the cross binaries under qemu).
# As root on Debian, installs what is missing with apt-get (adding the
# foreign dpkg architectures first); otherwise prints exactly what to
# install and fails.
set -eu

build_pkgs="make gcc musl-tools xz-utils ca-certificates"
test_pkgs="$build_pkgs python3 python3-pytest binutils file procps util-linux openssl mosquitto mosquitto-clients python3-paho-mqtt busybox-static shellcheck squashfs-tools fuse3 libfuse3-dev valgrind"

# cross_pkgs ARCH...: the packages in $cross, the dpkg architectures in $archs.
cross=
archs=
cross_pkgs() {
	[ $# -gt 0 ] || set -- aarch64 armhf mipsel
	for a in "$@"; do
		case $a in
		aarch64) cross="$cross gcc-aarch64-linux-gnu musl-dev:arm64" archs="$archs arm64" ;;
		armhf) cross="$cross gcc-arm-linux-gnueabihf musl-dev:armhf" archs="$archs armhf" ;;
		mipsel) cross="$cross gcc-mipsel-linux-gnu musl-dev:mipsel" archs="$archs mipsel" ;;
		*) echo "prereqs: unknown architecture $a (aarch64 armhf mipsel)" >&2; exit 2 ;;
		esac
	done
	cross="$cross qemu-user-static"
}

what=${1:-}
[ $# -eq 0 ] || shift
case $what in
build) pkgs=$build_pkgs ;;
test) cross_pkgs; pkgs="$test_pkgs$cross" ;;
demo) pkgs="$build_pkgs openssl mosquitto mosquitto-clients" ;;
cross) cross_pkgs "$@"; pkgs="make xz-utils ca-certificates$cross" ;;
*) echo "usage: $0 build|test|demo|cross [ARCH...]" >&2; exit 2 ;;
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

# The foreign architectures the missing packages need and dpkg lacks.
add_archs=
for a in $archs; do
	case $missing in *":$a"*) ;; *) continue ;; esac
	dpkg --print-foreign-architectures | grep -qx "$a" || add_archs="$add_archs $a"
done

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "prereqs: missing packages:$missing" >&2
	[ -z "$add_archs" ] || echo "prereqs: run as root: for a in$add_archs; do dpkg --add-architecture \$a; done; apt-get update" >&2
	echo "prereqs: run as root: apt-get install -y$missing" >&2
	exit 1
fi

# One failing index (a mirror hiccup) must not stop the install: what is
# needed may well be in the others; apt-get install says if it is not.
update() {
	apt-get update -q >/dev/null 2>&1 ||
		echo "prereqs: apt-get update reported an error; installing anyway" >&2
}

echo "prereqs: installing$missing"
export DEBIAN_FRONTEND=noninteractive
if [ -n "$add_archs" ]; then
	for a in $add_archs; do
		dpkg --add-architecture "$a"
	done
	update
fi
# shellcheck disable=SC2086 # $missing is a list of names
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
	update
	apt-get install -y -q --no-install-recommends $missing >/dev/null
}
