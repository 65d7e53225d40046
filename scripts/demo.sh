#!/bin/sh
# make demo: the whole product in under a minute, from the build tree.
#
# The sample deployment (rootfs/etc/tinyedge) runs with a local mosquitto
# as the cloud, over TLS with a throwaway CA. The daemon starts while the
# broker is down: sim-sensor -> filter -> $upstream messages wait in the
# offline store; the broker comes up and the queue drains to a subscriber.
# Then a twin patch, a direct method, a route test, and a clean stop.
# Nothing outside a temporary directory is touched.
set -eu
BUILD=${BUILD:-build}
bin=$(pwd)/$BUILD/tinyedge
tmp=$(mktemp -d /tmp/tinyedge-demo.XXXXXX)
state=$tmp/state
pid=
broker=
sub=

cleanup() {
	for p in $sub $pid $broker; do
		kill "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '\n== %s\n' "$*"; }
te() { "$bin" "$@" --state-dir "$state"; }

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
	n=$(($1 * 10))
	shift
	while ! "$@" >/dev/null 2>&1; do
		n=$((n - 1))
		[ $n -gt 0 ] || return 1
		sleep 0.1
	done
}

queued() { te queue --json | sed -n 's/.*"messages": *\([0-9]*\).*/\1/p' | head -n 1; }
has_queued() { [ "$(queued)" -gt 0 ]; }
drained() { [ "$(queued)" -eq 0 ]; }

# A free loopback port for the broker (the kernel picks it).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + $$ % 20000)))

say "a throwaway CA and a server certificate for localhost (openssl, EC P-256)"
(
	cd "$tmp"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=tinyedge demo CA" -keyout ca.key -out ca.pem \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost \
		-keyout server.key -out server.csr
	printf 'subjectAltName = DNS:localhost,IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' >server.ext
	openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
		-extfile server.ext -out server.pem
) >"$tmp/openssl.log" 2>&1 || { cat "$tmp/openssl.log"; exit 1; }
echo "ca.pem, server.pem (CN=localhost) in $tmp"

cat >"$tmp/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
user root
cafile $tmp/ca.pem
certfile $tmp/server.pem
keyfile $tmp/server.key
tls_version tlsv1.2
EOF

# The sample config and deployment with this build's binary, this state
# dir and the demo broker as the upstream (generic MQTT over TLS).
sed "s|/usr/bin/tinyedge|$bin|g" rootfs/etc/tinyedge/deployment.json >"$tmp/deployment.json"
cat >"$tmp/config.json" <<EOF
{
  "deviceId": "demo-gw",
  "stateDir": "$state",
  "upstream": {"protocol": "mqtt", "host": "localhost", "port": $port, "tls": true,
               "caFile": "$tmp/ca.pem", "keepAliveSecs": 30},
  "storeAndForward": {"timeToLiveSecs": 7200}
}
EOF

say "tinyedge version"
"$bin" version

say "tinyedge check (config, sample deployment, TLS files, host)"
"$bin" check -c "$tmp/config.json" -m "$tmp/deployment.json"

say "tinyedge run, while the broker is down (log lines are interleaved)"
"$bin" run -c "$tmp/config.json" -m "$tmp/deployment.json" 2>"$tmp/daemon.log" &
pid=$!
wait_for 20 has_queued || { cat "$tmp/daemon.log"; exit 1; }
sleep 3
grep -E 'starting|ready|upstream' "$tmp/daemon.log" | head -n 6

say "tinyedge list: sim-sensor -> filter -> \$upstream through shared-memory rings"
te list

say "tinyedge queue: offline, \$upstream messages wait in the LMDB store"
te queue

say "mosquitto comes up (TLS on 127.0.0.1:$port); a subscriber plays the cloud"
mosquitto -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
broker=$!
# A persistent session (-c) subscribed first, so nothing is missed
# whenever the daemon's next reconnect comes.
cloud() {
	mosquitto_sub -h localhost -p "$port" --cafile "$tmp/ca.pem" -q 1 -c -i demo-cloud \
		-t tinyedge/demo-gw/filter/+ "$@"
}
wait_for 10 cloud -E || { cat "$tmp/mosquitto.log"; exit 1; }
cloud -v -C 3 -W 60 >"$tmp/cloud.txt" 2>"$tmp/sub.log" &
sub=$!
wait_for 60 drained || { echo "the queue did not drain"; tail -n 20 "$tmp/daemon.log"; exit 1; }
wait "$sub" || true
sub=
grep -m 1 'upstream: online' "$tmp/daemon.log" || true
echo "queue drained; what the subscriber received first:"
cut -c 1-160 "$tmp/cloud.txt"
te queue

say "tinyedge stats: counters per module and route"
te stats

say "tinyedge twin filter --desired: raise the threshold to 30 (the module reports it back)"
te twin filter --desired '{"TemperatureThreshold": 30}' >/dev/null
sleep 1
te twin filter

say "tinyedge call filter ping: a direct method"
te call filter ping '{"hello":"tinyedge"}'

say "tinyedge route test: a route condition against one message"
echo "   FROM /messages/* WHERE \$body.machine.temperature > 25 INTO \$upstream"
echo '{"machine": {"temperature": 27.5}}' >"$tmp/body.json"
# shellcheck disable=SC2016 # $body and $upstream are route syntax
"$bin" route test 'FROM /messages/* WHERE $body.machine.temperature > 25 INTO $upstream' \
	--sys contentType=application/json --sys contentEncoding=utf-8 --body "$tmp/body.json"

say "SIGTERM: modules stop in reverse startup order, the daemon exits 0"
kill -TERM "$pid"
st=0
wait "$pid" || st=$?
pid=
tail -n 4 "$tmp/daemon.log"
echo "daemon exited with status $st"
[ "$st" -eq 0 ]
