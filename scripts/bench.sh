#!/bin/sh
# make bench: one "name value unit" line per figure.
# CROSS_BUILD (default build): where the cross binaries are, ARCH/tinyedge.
set -eu
BUILD=${BUILD:-build}
case $BUILD in /*) bin=$BUILD/tinyedge ;; *) bin=$(pwd)/$BUILD/tinyedge ;; esac
# On the build's disk, not /tmp: a tmpfs would make the store's fsync free.
mkdir -p "$(dirname "$bin")/bench"
tmp=$(mktemp -d "$(dirname "$bin")/bench/run.XXXXXX")
pid=
store_dir=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp" ${store_dir:+"$store_dir"}' EXIT

# start_daemon LOG ARGS...: run the daemon until it logs "ready".
start_daemon() {
	log=$1
	shift
	"$bin" run --state-dir "$tmp/state" "$@" 2>"$log" &
	pid=$!
	i=0
	until grep -q 'agent: ready' "$log"; do
		i=$((i + 1))
		[ $i -gt 100 ] && { echo "bench: daemon did not become ready" >&2; cat "$log" >&2; exit 1; }
		sleep 0.1
	done
}

stop_daemon() {
	kill -TERM "$pid"
	wait "$pid" || true
	pid=
}

# private_rss NAME: the daemon's private resident memory.
private_rss() {
	awk -v n="$1" '/^Private_(Clean|Dirty):/ { p += $2 } END { print n " " p " KiB" }' \
		"/proc/$pid/smaps_rollup"
}

# cpu_ticks: the daemon's user + system time so far, in clock ticks.
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$pid/stat"
}

# percentile P: of the numbers on stdin.
percentile() {
	sort -n | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.3f", v[i] }'
}

echo "binary_size_stripped $(stat -c %s "$bin") bytes"
# The cross binaries (make cross; make bench builds those it has compilers for).
for arch in aarch64 armhf mipsel; do
	f=${CROSS_BUILD:-build}/$arch/tinyedge
	if [ -f "$f" ]; then
		echo "binary_size_stripped_$arch $(stat -c %s "$f") bytes"
	else
		echo "bench: no $f: binary_size_stripped_$arch skipped" >&2
	fi
done

# Idle daemon: the sample deployment (its modules exist from the module issue on).
sed "s|/usr/bin/tinyedge|$bin|g" rootfs/etc/tinyedge/deployment.json > "$tmp/deployment.json"
echo '{}' > "$tmp/config.json"
start_daemon "$tmp/idle.log" -c "$tmp/config.json" -m "$tmp/deployment.json"
sleep 1
private_rss idle_rss_private
stop_daemon

# Spawn latency and crash-to-restart: /bin/true restarted with zero backoff.
echo '{"restartBackoff": {"initialMs": 0, "maxMs": 0}}' > "$tmp/zero.json"
start_daemon "$tmp/spawn.log" -c "$tmp/zero.json" --log-level debug --module "quick=/bin/true"
sleep 3
stop_daemon
sed -n 's/.*started in \([0-9.]*\) ms.*/\1/p' "$tmp/spawn.log" > "$tmp/spawn.txt"
sed -n 's/.*running again \([0-9.]*\) ms after its exit.*/\1/p' "$tmp/spawn.log" > "$tmp/restart.txt"
echo "module_spawn_samples $(wc -l < "$tmp/spawn.txt") count"
echo "module_spawn_ms_p50 $(percentile 50 < "$tmp/spawn.txt") ms"
echo "module_spawn_ms_p99 $(percentile 99 < "$tmp/spawn.txt") ms"
echo "crash_to_restart_ms_p50 $(percentile 50 < "$tmp/restart.txt") ms"
echo "crash_to_restart_ms_p99 $(percentile 99 < "$tmp/restart.txt") ms"

# Daemon memory with 10 running modules.
set --
for i in 0 1 2 3 4 5 6 7 8 9; do set -- "$@" --module "m$i=/bin/sleep:1000"; done
echo '{"logs": {"ringBytes": 65536}}' > "$tmp/ten.json"
start_daemon "$tmp/ten.log" -c "$tmp/ten.json" "$@"
sleep 1
private_rss daemon_rss_private_10_modules
stop_daemon

# The shared-memory ring alone: one producer, one consumer process, 64 B records.
"$(dirname "$bin")/bench/ring_bench"

# The offline store: durable group commits, drain, put-call latency while
# the writer commits, file size after 1 M in and out. Its files go next to
# the build (a real disk; a tmpfs /tmp would make fsync free).
store_dir="$(dirname "$bin")/bench/store-data.$$"
mkdir -p "$store_dir"
# store_ingest_msgs_per_s is the issue's name for the 256 B figure.
"$(dirname "$bin")/bench/store_bench" "$store_dir" |
	awk '{ print } $1 == "store_put_commit_256b_msgs_per_s" { print "store_ingest_msgs_per_s", $2, $3 }'

# Module -> router -> module: counter sends COUNT messages of SIZE bytes to
# sink through one route with the block policy (nothing dropped: the
# counter waits when the sink lags); the figure is messages / time until the
# sink has them all (polled every 20 ms, so it errs low).
m2m() {
	name=$1 count=$2 size=$3 where=$4 rate=${5:-0} flood=${6:-}
	# flood: another module sends 256 B messages to $upstream as fast as
	# the store takes them (durable group commits on this disk).
	flood_mod='' flood_route=''
	if [ -n "$flood" ]; then
		flood_mod=',"flood": {"type": "native", "startupOrder": 2, "settings": {"image": "'"$bin"'", "createOptions": {"args": ["module", "counter", "--size", "256"]}}}'
		# shellcheck disable=SC2016 # $upstream is the route language's, not sh's
		flood_route=',"up": "FROM /messages/modules/flood/* INTO $upstream"'
	fi
	cat > "$tmp/m2m.json" <<JSON
{"modulesContent": {
 "\$edgeAgent": {"properties.desired": {"modules": {
  "sink": {"type": "native", "startupOrder": 1, "settings": {"image": "$bin", "createOptions": {"args": ["module", "sink"], "ringBytes": 4194304}}},
  "counter": {"type": "native", "startupOrder": 2, "restartPolicy": "never", "settings": {"image": "$bin", "createOptions": {"args": ["module", "counter", "--count", "$count", "--size", "$size", "--rate", "$rate"], "ringBytes": 4194304}}}$flood_mod}}},
 "\$edgeHub": {"properties.desired": {"routes": {
  "r": {"route": "FROM /messages/modules/counter/outputs/output1 $where INTO BrokeredEndpoint(\"/modules/sink/inputs/in\")", "overflow": "block"}$flood_route}}}}}
JSON
	start_daemon "$tmp/m2m.log" -c "$tmp/config.json" -m "$tmp/m2m.json"
	cpu0=$(cpu_ticks)
	t0=$(date +%s%N)
	last=-1 t1=$t0
	while :; do
		got=$("$bin" list --json --state-dir "$tmp/state" | sed -n 's/.*"name":"sink"[^}]*"messagesIn":\([0-9]*\).*/\1/p')
		got=${got:-0}
		now=$(date +%s%N)
		[ "$got" -ge "$count" ] && { t1=$now; break; }
		if [ "$got" != "$last" ]; then
			last=$got t1=$now
		elif [ $(( now - t1 )) -gt 1000000000 ]; then
			break # no progress for 1 s: the rest was dropped (counted below)
		fi
		sleep 0.02
	done
	cpu1=$(cpu_ticks)
	echo "$name $(( got * 1000000000 / (t1 - t0) )) msgs/s"
	[ "$rate" -ge 100000 ] && echo "daemon_cpu_ns_per_msg_at_${rate}_per_s $(( (cpu1 - cpu0) * (1000000000 / $(getconf CLK_TCK)) / got )) ns"
	[ "$got" -lt "$count" ] && echo "${name%_msgs_per_s}_dropped $(( count - got )) msgs"
	"$bin" stop sink --state-dir "$tmp/state" >/dev/null
	sleep 0.3
	"$bin" logs sink --state-dir "$tmp/state" |
		sed -n 's/.*final.*latency_avg_us \([0-9.]*\) latency_max_us \([0-9.]*\) latency_p50_us \([0-9.]*\) latency_p99_us \([0-9.]*\).*/\1 \2 \3 \4/p' > "$tmp/lat.txt"
	if [ -n "$flood" ]; then
		committed=$("$bin" queue --json --state-dir "$tmp/state" | sed -n 's/.*"committed":\([0-9]*\).*/\1/p')
		echo "store_ingest_256b_msgs_per_s_during_m2m $(( committed * 1000000000 / ($(date +%s%N) - t0) )) msgs/s"
	fi
	stop_daemon
	rm -rf "$tmp/state/store"
}

m2m m2m_throughput_64b_msgs_per_s 2000000 64 ""
m2m m2m_throughput_1k_msgs_per_s 500000 1024 ""
m2m m2m_throughput_64b_where_msgs_per_s 1000000 64 "WHERE as_number(seq) >= 0"
m2m m2m_100k_per_s_run 400000 64 "" 100000
m2m m2m_low_rate_run 2000 64 "" 1000
read -r avg max p50 p99 < "$tmp/lat.txt"
echo "m2m_latency_p50_us_at_1000_per_s $p50 us"
echo "m2m_latency_p99_us_at_1000_per_s $p99 us"
echo "m2m_latency_avg_us_at_1000_per_s $avg us"
echo "m2m_latency_max_us_at_1000_per_s $max us"
m2m m2m_low_rate_with_store_run 2000 64 "" 1000 flood
read -r avg max p50 p99 < "$tmp/lat.txt"
echo "m2m_latency_p50_us_at_1000_per_s_store_ingesting $p50 us"
echo "m2m_latency_p99_us_at_1000_per_s_store_ingesting $p99 us"

# The uplink: QoS 1 over TLS to a local mosquitto (Debian's), test PKI from
# test/pki.sh; window = the default 16 in flight.
if command -v mosquitto >/dev/null 2>&1; then
	pki="$tmp/pki"
	sh test/pki.sh "$pki" >/dev/null
	mport=28883
	cat > "$tmp/mosq.conf" <<CONF
listener $mport 127.0.0.1
allow_anonymous true
user root
cafile $pki/ca.pem
certfile $pki/server.pem
keyfile $pki/server.key
CONF
	mosq_start() { mosquitto -c "$tmp/mosq.conf" >/dev/null 2>&1 & mpid=$!; sleep 0.3; }
	mosq_stop() { kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null || true; }
	store_msgs() { "$bin" queue --json --state-dir "$tmp/state" | sed -n 's/^{"store":{"ok":true,"messages":\([0-9]*\).*/\1/p'; }
	acked() { "$bin" list --json --state-dir "$tmp/state" | sed -n 's/.*"acknowledged":\([0-9]*\).*/\1/p'; }
	cat > "$tmp/up.json" <<JSON
{"deviceId": "bench", "upstream": {"protocol": "mqtt", "host": "localhost", "port": $mport, "caFile": "$pki/ca.pem"}}
JSON
	cat > "$tmp/up-m.json" <<JSON
{"modulesContent": {
 "\$edgeAgent": {"properties.desired": {"modules": {
  "counter": {"type": "native", "restartPolicy": "never", "settings": {"image": "$bin", "createOptions": {"args": ["module", "counter", "--count", "100000"], "ringBytes": 4194304}}}}}},
 "\$edgeHub": {"properties.desired": {"routes": {"up": "FROM /messages/* INTO \$upstream"}}}}}
JSON
	# Live: produced, stored and sent at once.
	rm -rf "$tmp/state"
	mosq_start
	t0=$(date +%s%N)
	start_daemon "$tmp/up.log" -c "$tmp/up.json" -m "$tmp/up-m.json"
	i=0
	while [ "$(acked)" != 100000 ] && [ $i -lt 1200 ]; do i=$((i + 1)); sleep 0.05; done
	t1=$(date +%s%N)
	echo "upstream_msgs_per_s $(( 100000 * 1000000000 / (t1 - t0) )) msgs/s"
	sed -n 's/.*TLS handshake \([0-9.]*\) ms.*/upstream_tls_handshake_ms \1 ms/p' "$tmp/up.log" | head -1
	stop_daemon
	mosq_stop
	# Backlog: 100 k stored while the broker is down, then drained.
	rm -rf "$tmp/state"
	start_daemon "$tmp/up2.log" -c "$tmp/up.json" -m "$tmp/up-m.json"
	i=0
	while [ "$(store_msgs)" != 100000 ] && [ $i -lt 600 ]; do i=$((i + 1)); sleep 0.1; done
	mosq_start
	# From the first acknowledgement (the reconnect backoff is not the
	# drain's cost) to an empty queue.
	i=0 n0=100000
	while [ "$n0" = 100000 ] && [ $i -lt 1200 ]; do n0=$(store_msgs); i=$((i + 1)); sleep 0.01; done
	t0=$(date +%s%N)
	while [ "$(store_msgs)" != 0 ] && [ $i -lt 2400 ]; do i=$((i + 1)); sleep 0.05; done
	t1=$(date +%s%N)
	echo "upstream_drain_msgs_per_s $(( n0 * 1000000000 / (t1 - t0) )) msgs/s"
	stop_daemon
	mosq_stop
fi
