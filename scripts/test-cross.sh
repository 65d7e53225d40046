#!/bin/sh
# Smoke test of the cross-built binaries under qemu-user (qemu-user-static):
# version and ELF header, `check` of the sample files, a run of two built-in
# modules exchanging messages, and the store across a restart.
#   scripts/test-cross.sh [ARCH...]      aarch64 armhf mipsel (default: all)
# Binaries: $CROSS_BUILD/ARCH/tinyedge (CROSS_BUILD defaults to build, where
# `make CROSS=ARCH` puts them). Prints TAP lines ("ok N - ARCH: what") and a
# closing "# N passed, M failed" comment; exit 1 on any failure.
#
# Under qemu-user the daemon cannot clone into namespaces (qemu refuses the
# namespace flags on a fork-like clone) and no binfmt_misc handler is assumed,
# so the modules run as the host's qemu binary with the foreign binary as
# argument, and with "namespaces": [] (docs/cross.md).
set -u
CROSS_BUILD=${CROSS_BUILD:-build}
case $CROSS_BUILD in /*) ;; *) CROSS_BUILD=$(pwd)/$CROSS_BUILD ;; esac
WAIT=${TEST_CROSS_WAIT:-120} # seconds for anything to happen (slow, loaded machines)
# TEST_CROSS_KEEP=1 keeps the temporary files (logs, JSON answers) for a look.
[ $# -gt 0 ] || set -- aarch64 armhf mipsel

# shellcheck disable=SC2016 # a regular expression for the literal "$upstream"
UP='\$upstream'
version=$(sed -n 's/^VERSION := //p' Makefile)
n=0
pass=0
fail=0
top=$(mktemp -d "${TMPDIR:-/tmp}/tinyedge-cross.XXXXXX") || exit 1
chmod 0755 "$top"
dpid=
mpids=

# Every daemon and module this script started, then the files.
cleanup() {
	for p in $dpid $mpids; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -z "$dpid" ] || wait "$dpid" 2>/dev/null
	if [ -n "${TEST_CROSS_KEEP:-}" ]; then
		echo "# kept $top"
	else
		rm -rf "$top"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

ok() {
	n=$((n + 1))
	pass=$((pass + 1))
	echo "ok $n - $arch: $1"
}

# not_ok WHAT [DIAGNOSTIC-FILE]
not_ok() {
	n=$((n + 1))
	fail=$((fail + 1))
	echo "not ok $n - $arch: $1"
	[ -z "${2:-}" ] || [ ! -f "$2" ] || tail -n 30 "$2" | sed 's/^/# /'
}

# te ARGS...: the binary under test, emulated.
te() {
	"$qemu" "$bin" "$@"
}

# poll CMD...: until CMD succeeds, at most $WAIT seconds; CMD's status 2
# means it never will.
poll() {
	end=$(($(date +%s) + WAIT))
	while :; do
		"$@"
		case $? in
		0) return 0 ;;
		2) return 1 ;;
		esac
		[ "$(date +%s)" -lt "$end" ] || return 1
		sleep 0.2
	done
}

# num NAME KEY: KEY's number in the JSON object on stdin whose "name" (or
# "endpoint") is NAME; the sum when several match, 0 when none.
num() {
	grep -oE "\"(name|endpoint)\":\"$1\"[^}]*" |
		sed -n "s/.*\"$2\":\([0-9][0-9]*\).*/\1/p" | awk '{ s += $1 } END { print s + 0 }'
}

# start_daemon MANIFEST LOG: run the daemon until it logs "ready".
start_daemon() {
	# Not through te(): $! must be the daemon, not a subshell. The log
	# exists before the first poll (grep's exit 2 would end it).
	: >"$2"
	"$qemu" "$bin" run -c "$dir/config.json" -m "$1" --state-dir "$dir/state" 2>"$2" &
	dpid=$!
	poll daemon_ready "$2"
}

daemon_ready() {
	kill -0 "$dpid" 2>/dev/null || return 2
	grep -q 'agent: ready' "$1"
}

# stop_daemon: SIGTERM, then its exit status (137 after a forced kill).
stop_daemon() {
	kill -TERM "$dpid" 2>/dev/null
	poll daemon_gone || kill -KILL "$dpid" 2>/dev/null
	wait "$dpid"
	rc=$?
	dpid=
	return $rc
}

daemon_gone() {
	! kill -0 "$dpid" 2>/dev/null || grep -q ' Z ' "/proc/$dpid/stat" 2>/dev/null
}

routed() {
	te stats --json --state-dir "$dir/state" > "$dir/stats.json" 2>&1 || return 1
	[ "$(num s2f delivered < "$dir/stats.json")" -gt 0 ] &&
		[ "$(num filter messagesIn < "$dir/stats.json")" -gt 0 ] &&
		[ "$(num filter messagesOut < "$dir/stats.json")" -gt 0 ]
}

queued() {
	te queue --json --state-dir "$dir/state" > "$dir/queue.json" 2>&1 || return 1
	q=$(num "$UP" messages < "$dir/queue.json")
	[ "$q" -gt 0 ]
}

# The $upstream queue (not the store: the filter's input backlog may be
# there too, when the filter stopped first).
upstream_empty() {
	te queue --json --state-dir "$dir/state" > "$dir/queue.json" 2>&1 || return 1
	grep -q "\"endpoint\":\"$UP\"" "$dir/queue.json" &&
		[ "$(num "$UP" messages < "$dir/queue.json")" -eq 0 ] &&
		[ "$(num "$UP" purged < "$dir/queue.json")" -gt 0 ]
}

module_pids() {
	te list --json --state-dir "$dir/state" > "$dir/list.json" 2>&1 || return 1
	mpids=$(grep -o '"pid":[0-9]*' "$dir/list.json" | cut -d: -f2 | tr '\n' ' ')
	[ "$(echo "$mpids" | wc -w)" -eq 2 ]
}

# Nothing left behind: the daemon is gone, and so are its modules.
none_left() {
	for p in $mpids; do
		kill -0 "$p" 2>/dev/null && return 1
	done
	mpids=
	return 0
}

test_arch() {
	case $arch in
	aarch64) qemu=qemu-aarch64-static cc=aarch64-linux-gnu-gcc machine=aarch64 elf='ELF 64-bit LSB executable, ARM aarch64,' ;;
	armhf) qemu=qemu-arm-static cc=arm-linux-gnueabihf-gcc machine=arm elf='ELF 32-bit LSB executable, ARM, EABI5' ;;
	mipsel) qemu=qemu-mipsel-static cc=mipsel-linux-gnu-gcc machine=mipsel elf='ELF 32-bit LSB executable, MIPS, MIPS32' ;;
	*) not_ok "unknown architecture (known: aarch64 armhf mipsel)"; return ;;
	esac
	bin=$CROSS_BUILD/$arch/tinyedge
	dir=$top/$arch
	mkdir -p "$dir/bin"
	if [ ! -f "$bin" ]; then
		not_ok "$bin missing (make CROSS=$arch)"
		return
	fi
	qemu=$(command -v "$qemu") || {
		not_ok "$qemu missing (apt-get install qemu-user-static)"
		return
	}

	# (a) version and ELF header
	te version > "$dir/version.txt" 2>&1
	if [ "$(head -n 1 "$dir/version.txt")" = "tinyedge $version" ] &&
		grep -q "^build: $cc .*static, musl, $machine$" "$dir/version.txt"; then
		ok "version"
	else
		not_ok "version (want tinyedge $version, build: $cc ... static, musl, $machine)" "$dir/version.txt"
	fi
	file -b "$bin" > "$dir/file.txt"
	if grep -q "^$elf" "$dir/file.txt" && grep -q 'statically linked' "$dir/file.txt" &&
		grep -q ', stripped$' "$dir/file.txt"; then
		ok "file: static, stripped, $elf"
	else
		not_ok "file: want static, stripped, $elf" "$dir/file.txt"
	fi

	# (b) check of the sample config and deployment, and of a bad manifest
	sed "s|/usr/bin/tinyedge|$bin|g" rootfs/etc/tinyedge/deployment.json > "$dir/deployment.json"
	if te check -c rootfs/etc/tinyedge/config.json -m "$dir/deployment.json" \
		--state-dir "$dir/state" > "$dir/check.txt" 2>&1; then
		ok "check of the sample config and deployment"
	else
		not_ok "check of the sample config and deployment: exit $?" "$dir/check.txt"
	fi
	sed 's/"type": "native"/"type": "docker"/' "$dir/deployment.json" > "$dir/bad.json"
	te check -c rootfs/etc/tinyedge/config.json -m "$dir/bad.json" \
		--state-dir "$dir/state" > "$dir/bad.txt" 2>&1
	rc=$?
	if [ $rc -eq 2 ] && grep -q 'bad.json:[0-9]*:[0-9]*: .*type' "$dir/bad.txt"; then
		ok "check of a bad manifest: exit 2"
	else
		not_ok "check of a bad manifest: exit $rc, want 2 and the place" "$dir/bad.txt"
	fi

	# (c) sim-sensor -> filter -> $upstream. The modules are the host's qemu
	# running a copy of the binary in a world-readable place (they run as an
	# unprivileged user, and the build tree may be under a 0700 home).
	cp "$bin" "$dir/bin/tinyedge"
	chmod 0755 "$dir" "$dir/bin"
	echo '{"upstream": {"protocol": "none"}}' > "$dir/config.json"
	cat > "$dir/run.json" <<JSON
{"modulesContent": {
 "\$edgeAgent": {"properties.desired": {"modules": {
  "sim-sensor": {"type": "native", "startupOrder": 1, "env": {"INTERVAL_MS": {"value": "100"}},
   "settings": {"image": "$qemu", "createOptions": {"args": ["$dir/bin/tinyedge", "module", "sim-sensor"], "namespaces": [], "seccomp": "unconfined"}}},
  "filter": {"type": "native", "startupOrder": 2, "env": {"THRESHOLD": {"value": "-273"}},
   "settings": {"image": "$qemu", "createOptions": {"args": ["$dir/bin/tinyedge", "module", "filter"], "namespaces": [], "seccomp": "unconfined"}}}}}},
 "\$edgeHub": {"properties.desired": {"routes": {
  "s2f": "FROM /messages/modules/sim-sensor/outputs/temperature INTO BrokeredEndpoint(\"/modules/filter/inputs/input1\")",
  "up": "FROM /messages/modules/filter/outputs/* INTO \$upstream"}}}}}
JSON
	# shellcheck disable=SC2016 # JSON, not shell
	echo '{"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {}}}}}' > "$dir/empty.json"
	if ! start_daemon "$dir/run.json" "$dir/run.log"; then
		not_ok "daemon ready" "$dir/run.log"
		return
	fi
	if poll module_pids && poll routed; then
		ok "messages routed sim-sensor -> filter -> \$upstream"
	else
		not_ok "messages routed sim-sensor -> filter -> \$upstream" "$dir/stats.json"
	fi
	q=0
	if poll queued; then
		ok "$q messages queued for \$upstream"
	else
		not_ok "messages queued for \$upstream" "$dir/queue.json"
	fi
	before=$q
	stop_daemon
	rc=$?
	if [ $rc -eq 0 ] && poll none_left; then
		ok "SIGTERM: exit 0, no process left"
	else
		not_ok "SIGTERM: exit $rc (want 0), left: ${mpids:-none}" "$dir/run.log"
	fi

	# (d) the store: the queue survives the restart; purge empties it
	if ! start_daemon "$dir/empty.json" "$dir/store.log"; then
		not_ok "daemon ready again" "$dir/store.log"
		return
	fi
	queued
	if [ "$q" -ge "$before" ] && [ "$q" -gt 0 ]; then
		ok "store: $q messages still queued after the restart (>= $before)"
	else
		not_ok "store: $q messages queued after the restart, want >= $before" "$dir/queue.json"
	fi
	# shellcheck disable=SC2016 # the endpoint's name
	if te queue purge '$upstream' --state-dir "$dir/state" > "$dir/purge.txt" 2>&1 &&
		poll upstream_empty; then
		ok "store: queue purge \$upstream empties it"
	else
		not_ok "store: queue purge \$upstream empties it" "$dir/purge.txt"
	fi
	stop_daemon
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "SIGTERM again: exit 0"
	else
		not_ok "SIGTERM again: exit $rc" "$dir/store.log"
	fi
}

for arch in "$@"; do
	test_arch
	# A failed step may leave a daemon (and its modules) running.
	[ -z "$dpid" ] || stop_daemon >/dev/null 2>&1
	for p in $mpids; do kill -KILL "$p" 2>/dev/null; done
	mpids=
done
echo "# $pass passed, $fail failed"
[ "$fail" -eq 0 ]
