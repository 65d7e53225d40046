#!/bin/sh
# Run the unit tests (TAP programs), the cross binaries under qemu-user
# (scripts/test-cross.sh, TAP too) and/or the end-to-end tests (pytest),
# then print one closing line: "N passed, M failed". Exit 1 on any failure.
#   scripts/test.sh [all|unit|cross|e2e]
#   scripts/test.sh suite NAME...   test/e2e/test_NAME.py each (TE_LONG=1: long)
set -u
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
what=${1:-all}
pass=0
fail=0

run_unit() {
	for t in "$BUILD"/test/test_*; do
		[ -x "$t" ] || continue
		# A hung program is a failure, not a stalled CI run.
		out=$(timeout -k 5 300 "$t" 2>&1)
		rc=$?
		[ $rc -eq 124 ] && out="$out
not ok - $(basename "$t") timed out after 300 s"
		ok=$(printf '%s\n' "$out" | grep -c '^ok ')
		bad=$(printf '%s\n' "$out" | grep -c '^not ok ')
		# A crash or sanitizer report after the last test point is a failure too.
		[ $rc -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
		pass=$((pass + ok))
		fail=$((fail + bad))
		echo "unit $(basename "$t"): $ok passed, $bad failed"
		[ $rc -ne 0 ] && printf '%s\n' "$out" | grep -v '^ok ' | tail -n 40
	done
}

# build/<arch>/tinyedge (make cross) under qemu-user-static, one program
# per architecture so a hang costs one of them.
run_cross() {
	for a in aarch64 armhf mipsel; do
		out=$(timeout -k 10 900 scripts/test-cross.sh "$a" 2>&1)
		rc=$?
		[ $rc -eq 124 ] && out="$out
not ok - $a timed out after 900 s"
		ok=$(printf '%s\n' "$out" | grep -c '^ok ')
		bad=$(printf '%s\n' "$out" | grep -c '^not ok ')
		[ $rc -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
		pass=$((pass + ok))
		fail=$((fail + bad))
		echo "cross $a: $ok passed, $bad failed"
		[ $rc -ne 0 ] && printf '%s\n' "$out" | grep -v '^ok ' | tail -n 40
	done
}

# $1: what to run (default: every e2e file); $2: timeout in seconds
run_e2e() {
	# shellcheck disable=SC2086 # $1 may name several files
	out=$(TINYEDGE_BIN=$(pwd)/$BUILD/tinyedge timeout -k 10 "${2:-1200}" "$PYTHON" -m pytest -q -p no:cacheprovider --durations=12 ${1:-test/e2e} 2>&1)
	rc=$?
	printf '%s\n' "$out" | tail -n 75
	summary=$(printf '%s\n' "$out" | tail -n 1)
	ok=$(printf '%s\n' "$summary" | sed -n 's/.*[^0-9]\([0-9][0-9]*\) passed.*/\1/p; s/^\([0-9][0-9]*\) passed.*/\1/p' | head -n 1)
	bad=$(printf '%s\n' "$summary" | grep -o '[0-9]* \(failed\|error\|errors\)' | awk '{s += $1} END {print s + 0}')
	ok=${ok:-0}
	[ $rc -ne 0 ] && [ "$bad" -eq 0 ] && bad=1
	pass=$((pass + ok))
	fail=$((fail + bad))
}

case $what in
unit) run_unit ;;
cross) run_cross ;;
e2e) run_e2e ;;
all) run_unit; run_cross; run_e2e ;;
suite)
	shift
	files=
	for s in "$@"; do files="$files test/e2e/test_$s.py"; done
	# long suites: the 30-minute soak and 200 kills need their time
	run_e2e "$files" "$([ "${TE_LONG:-0}" = 1 ] && echo 7200 || echo 1200)" ;;
*) echo "usage: $0 [all|unit|cross|e2e|suite NAME...]" >&2; exit 2 ;;
esac
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
