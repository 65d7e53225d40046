#!/bin/sh
# make bench: one "name value unit" line per figure.
set -eu
BUILD=${BUILD:-build}
bin=$(pwd)/$BUILD/tinyedge
tmp=$(mktemp -d /tmp/tinyedge-bench.XXXXXX)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

echo "binary_size_stripped $(stat -c %s "$bin") bytes"

# Idle daemon: the sample deployment, until it logs "ready".
sed "s|/usr/bin/tinyedge|$bin|g" rootfs/etc/tinyedge/deployment.json > "$tmp/deployment.json"
"$bin" run -c rootfs/etc/tinyedge/config.json -m "$tmp/deployment.json" \
	--state-dir "$tmp/state" 2>"$tmp/log" &
pid=$!
i=0
until grep -q 'agent: ready' "$tmp/log"; do
	i=$((i + 1))
	[ $i -gt 100 ] && { echo "bench: daemon did not become ready" >&2; cat "$tmp/log" >&2; exit 1; }
	sleep 0.1
done
sleep 1
awk '/^Rss:/ { rss = $2 } /^Private_(Clean|Dirty):/ { priv += $2 }
     END { print "idle_rss_private " priv " KiB"; print "idle_rss " rss " KiB" }' \
	"/proc/$pid/smaps_rollup"
kill -TERM "$pid"
wait "$pid" || true
pid=
