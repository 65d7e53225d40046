#!/bin/sh
# make demo: the daemon with the sample deployment (rootfs/etc/tinyedge),
# run from the build tree for a few seconds, then stopped with SIGTERM.
set -eu
BUILD=${BUILD:-build}
bin=$(pwd)/$BUILD/tinyedge
tmp=$(mktemp -d /tmp/tinyedge-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# The sample deployment names /usr/bin/tinyedge; point it at this build.
sed "s|/usr/bin/tinyedge|$bin|g" rootfs/etc/tinyedge/deployment.json > "$tmp/deployment.json"
cfg=rootfs/etc/tinyedge/config.json

echo "== tinyedge version"
"$bin" version
echo
echo "== tinyedge check (config, sample deployment, host)"
"$bin" check -c "$cfg" -m "$tmp/deployment.json" --state-dir "$tmp/state"
echo
echo "== tinyedge run (in the background; its log lines are interleaved)"
"$bin" run -c "$cfg" -m "$tmp/deployment.json" --state-dir "$tmp/state" &
pid=$!
sleep 3
echo
echo "== tinyedge list (sim-sensor -> filter -> \$upstream through shared-memory rings)"
"$bin" list --state-dir "$tmp/state"
echo
echo "== tinyedge stats (message counters per module and route)"
"$bin" stats --state-dir "$tmp/state"
echo
echo "== tinyedge twin filter (desired from the deployment, reported by the module)"
"$bin" twin filter --state-dir "$tmp/state"
echo
echo "== tinyedge call filter ping (a direct method)"
"$bin" call filter ping '{"hello":"tinyedge"}' --state-dir "$tmp/state"
echo
echo "== tinyedge queue (the offline store: \$upstream waits here for the uplink)"
"$bin" queue --state-dir "$tmp/state"
# shellcheck disable=SC2016 # $upstream: an endpoint name, not a variable
"$bin" queue peek '$upstream' --limit 1 --state-dir "$tmp/state"
echo
echo "== tinyedge route test: a route condition against one message"
echo "   FROM /messages/* WHERE \$body.machine.temperature > 25 INTO \$upstream"
echo '{"machine": {"temperature": 27.5}}' > "$tmp/body.json"
# shellcheck disable=SC2016 # $body, $upstream: the route language's
"$bin" route test 'FROM /messages/* WHERE $body.machine.temperature > 25 INTO $upstream' \
	--sys contentType=application/json --sys contentEncoding=utf-8 --body "$tmp/body.json"
echo
echo "== SIGTERM: modules stop in reverse startup order"
kill -TERM "$pid"
wait "$pid"
echo "== daemon exited with status $?"
