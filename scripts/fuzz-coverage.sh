#!/bin/sh
# Source line coverage that the fuzz corpora reach, per fuzz mode: each
# mode's corpus directories run once through a clang coverage build of the
# fuzz targets (no fuzzing), then llvm-cov reports the lines of the sources
# that mode is for. `make fuzz-coverage`; the corpora are the kept ones
# (test/fuzz/corpus/MODE) plus what `make fuzz` found ($BUILD/fuzz/corpus-MODE).
#   BUILD=build COV_BIN=... scripts/fuzz-coverage.sh [MODE...]
set -eu
BUILD=${BUILD:-build}
COV_BIN=${COV_BIN:-$BUILD/fuzz/tinyedge-fuzz-cov}
OUT=$BUILD/fuzz/coverage
LLVM_PROFDATA=${LLVM_PROFDATA:-llvm-profdata-14}
LLVM_COV=${LLVM_COV:-llvm-cov-14}
modes=${*:-json config manifest patch record ctl ring route stdio mqtt azure twin methods http request}

# The sources each mode exists to exercise.
sources() {
	case $1 in
	json) echo src/core/json.c src/core/json_access.c src/core/json_write.c ;;
	config) echo src/core/config.c src/core/jvalue.c ;;
	manifest) echo src/agent/manifest.c src/agent/createopts.c ;;
	patch) echo src/core/json_patch.c ;;
	record) echo src/hub/wire.c src/hub/msg.c ;;
	ctl) echo src/hub/wire.c ;;
	ring) echo src/hub/ring.c ;;
	route) echo src/hub/route_parse.c src/hub/route_eval.c ;;
	stdio) echo src/hub/stdio_line.c ;;
	mqtt) echo src/upstream/mqtt.c ;;
	azure) echo src/upstream/azure.c ;;
	twin) echo src/hub/twin.c ;;
	methods) echo src/agent/methods.c ;;
	http) echo src/images/imghttp.c src/images/imgref.c src/images/imgkey.c ;;
	request) echo src/control/server.c ;;
	*) echo "fuzz-coverage: unknown mode $1" >&2; exit 2 ;;
	esac
}

rm -rf "$OUT"
mkdir -p "$OUT"
printf '%-9s %8s %8s %7s  %s\n' mode lines covered percent files
for m in $modes; do
	dirs=
	for d in "$BUILD/fuzz/corpus-$m" "test/fuzz/corpus/$m"; do
		[ -d "$d" ] && dirs="$dirs $d"
	done
	[ -n "$dirs" ] || { echo "fuzz-coverage: no corpus for $m" >&2; exit 1; }
	# -runs=0: execute each input once, no mutation.
	# shellcheck disable=SC2086
	LLVM_PROFILE_FILE="$OUT/$m.profraw" TE_FUZZ=$m "$COV_BIN" -runs=0 $dirs \
		>"$OUT/$m.log" 2>&1 || { tail -n 20 "$OUT/$m.log" >&2; exit 1; }
	"$LLVM_PROFDATA" merge -sparse "$OUT/$m.profraw" -o "$OUT/$m.profdata"
	files=$(sources "$m")
	# shellcheck disable=SC2086
	"$LLVM_COV" report "$COV_BIN" -instr-profile="$OUT/$m.profdata" $files >"$OUT/$m.txt"
	# TOTAL line: regions missed cover% functions missed exec% lines missed cover% ...
	awk -v m="$m" -v f="$files" '/^TOTAL/ { printf "%-9s %8d %8d %6s  %s\n", m, $8, $8 - $9, $10, f }' "$OUT/$m.txt"
done
