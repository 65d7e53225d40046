"""tinyedge metrics and GET /metrics: the Prometheus text format (0.0.4) from
a real daemon with real modules, checked by a strict parser."""
import math
import os
import re
import socket
import time

import pytest

from conftest import FAST_CONFIG, manifest, run, write_json
from test_messages import builtin
from test_store import start
from test_upstream import MOSQUITTO, Broker, free_port, mqtt_config

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
SAMPLE = re.compile(rf'({NAME})(?:\{{((?:{LABEL},?)*)\}})? (\S+)$')
UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text):
    """{(name, ((label, value), ...)): value} from the exposition text, or an
    AssertionError naming the first line that breaks the format: every line
    is a HELP, a TYPE or a sample; HELP then TYPE open a family, once; a
    sample belongs to the family opened last."""
    assert text.endswith("\n"), "no final newline"
    samples, families, help_name, family = {}, {}, None, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        if line.startswith("# HELP "):
            m = re.match(rf"# HELP ({NAME}) .*$", line)
            assert m, f"line {n}: bad HELP: {line!r}"
            help_name = m.group(1)
        elif line.startswith("# TYPE "):
            m = re.match(rf"# TYPE ({NAME}) (counter|gauge)$", line)
            assert m, f"line {n}: bad TYPE: {line!r}"
            assert m.group(1) == help_name, f"line {n}: TYPE without its HELP"
            assert m.group(1) not in families, f"line {n}: second TYPE for {m.group(1)}"
            family = m.group(1)
            families[family] = m.group(2)
        else:
            m = SAMPLE.match(line)
            assert m, f"line {n}: not a sample: {line!r}"
            assert m.group(1) == family, f"line {n}: {m.group(1)} outside its family {family}"
            labels = tuple((k, re.sub(r'\\[\\"n]', lambda e: UNESCAPE[e.group(0)], v))
                           for k, v in re.findall(LABEL, m.group(2) or ""))
            value = float(m.group(5))   # also NaN, +Inf, -Inf
            assert not math.isnan(value) or m.group(5) == "NaN", line
            key = (m.group(1), labels)
            assert key not in samples, f"line {n}: duplicate sample {line!r}"
            samples[key] = value
    return samples, families


def value(samples, name, **labels):
    """The sample of name whose labels include these; KeyError if none."""
    for (n, ls), v in samples.items():
        if n == name and all((k, labels[k]) in ls for k in labels):
            return v
    raise KeyError(f"{name} {labels}")


def metrics_cli(rt):
    r = rt.cli("metrics")
    assert r.returncode == 0, r.stderr
    return parse(r.stdout)[0]


def http(port, request, timeout=10):
    """The raw answer to request (bytes), b"" if the server reset us."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk
    except ConnectionResetError:
        return b""
    finally:
        s.close()


def http_get(port, path="/metrics"):
    raw = http(port, f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
    return status, headers, body.decode()


def sensor_to_sink(port):
    config = dict(FAST_CONFIG, deviceId="dev1", metrics={"port": port, "address": "127.0.0.1"})
    doc = manifest({
        "sink": builtin("sink", order=1),
        "sensor": builtin("sim-sensor", order=2, env={"INTERVAL_MS": "10"}),
    }, {"s2k": 'FROM /messages/modules/sensor/outputs/temperature '
               'INTO BrokeredEndpoint("/modules/sink/inputs/in")'})
    return doc, config


def wait_metric(rt, pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = metrics_cli(rt)
        if pred(s):
            return s
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}\n{rt.daemon.text()}")


def test_counters_restarts_memory_over_cli_and_http(tmp_path, daemons):
    port = free_port()
    doc, config = sensor_to_sink(port)
    rt = start(tmp_path, daemons, doc, config)
    assert f"metrics: serving http://127.0.0.1:{port}/metrics" in rt.daemon.text()

    s1 = wait_metric(rt, lambda s: value(s, "edgehub_messages_sent_total", to="dev1/sink") >= 5,
                     "messages into the sink")
    assert value(s1, "edgehub_messages_received_total", id="dev1/sensor") > 0
    assert value(s1, "tinyedge_route_messages_matched_total", route="s2k") > 0
    assert value(s1, "tinyedge_route_messages_delivered_total", route="s2k") > 0
    assert value(s1, "tinyedge_route_messages_dropped_total", route="s2k", reason="no_module") == 0
    assert value(s1, "tinyedge_module_status", module="sink", status="running") == 1
    assert value(s1, "tinyedge_module_status", module="sink", status="failed") == 0
    assert value(s1, "edgeAgent_used_memory_bytes", module_name="sink") > 0
    assert value(s1, "edgeAgent_used_memory_bytes", module_name="sensor") > 0
    assert value(s1, "tinyedge_build_info") == 1
    assert value(s1, "process_resident_memory_bytes") > 0
    assert value(s1, "tinyedge_store_up") == 1
    assert value(s1, "tinyedge_module_cpu_seconds_total", module="sink") >= 0

    # Counters grow; the restarts are exactly the ones asked for.
    for _ in range(2):
        assert rt.cli("restart", "sink").returncode == 0
        rt.wait_status("sink", "running")
    s2 = wait_metric(rt, lambda s: value(s, "edgehub_messages_sent_total", to="dev1/sink")
                     > value(s1, "edgehub_messages_sent_total", to="dev1/sink") + 5,
                     "more messages")
    assert value(s2, "edgehub_messages_received_total", id="dev1/sensor") > \
        value(s1, "edgehub_messages_received_total", id="dev1/sensor")
    assert value(s2, "tinyedge_module_restarts_total", module="sink") == 2
    assert value(s2, "tinyedge_module_restarts_total", module="sensor") == 0
    assert value(s2, "tinyedge_module_cpu_seconds_total", module="sink") >= \
        value(s1, "tinyedge_module_cpu_seconds_total", module="sink")
    assert value(s2, "tinyedge_uptime_seconds") >= value(s1, "tinyedge_uptime_seconds")

    # The same figures over HTTP.
    status, headers, body = http_get(port)
    assert status == 200
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert int(headers["Content-Length"]) == len(body.encode())
    h, families = parse(body)
    assert families["edgehub_messages_received_total"] == "counter"
    assert families["edgehub_queue_length"] == "gauge"
    assert value(h, "tinyedge_module_restarts_total", module="sink") == 2
    assert value(h, "edgehub_messages_sent_total", to="dev1/sink") >= \
        value(s2, "edgehub_messages_sent_total", to="dev1/sink")


def test_http_refuses_what_is_not_a_metrics_get(tmp_path, daemons):
    port = free_port()
    doc, config = sensor_to_sink(port)
    rt = start(tmp_path, daemons, doc, config)
    status, _, body = http_get(port, "/other")
    assert status == 404 and "# TYPE" not in body
    assert http(port, b"POST /metrics HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 405 ")
    assert http(port, b"nonsense\r\n\r\n").startswith(b"HTTP/1.0 400 ")
    # A request line over 8 KiB: refused with 414 (or the connection reset).
    raw = http(port, b"GET /" + b"a" * 9000 + b" HTTP/1.0\r\n\r\n")
    assert raw == b"" or raw.startswith(b"HTTP/1.0 414 "), raw[:80]
    assert b"# TYPE" not in raw
    assert http_get(port)[0] == 200   # still serving
    assert rt.daemon.proc.poll() is None


def test_slow_clients_do_not_stall_the_daemon(tmp_path, daemons):
    port = free_port()
    doc, config = sensor_to_sink(port)
    rt = start(tmp_path, daemons, doc, config)
    # More silent connections than client slots: the loop must go on.
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
    try:
        t0 = time.monotonic()
        assert rt.cli("list", timeout=10).returncode == 0
        assert "sink" in rt.modules()
        assert metrics_cli(rt)  # the control socket's metrics answer too
        # A real scrape waits for a slot (the silent ones time out) and is served.
        status, _, body = http_get(port)
        assert status == 200 and parse(body)[0]
        # The silent clients that held slots were closed by the server.
        closed = 0
        for s in idle[:8]:
            s.settimeout(max(1.0, 15 - (time.monotonic() - t0)))
            try:
                closed += s.recv(1) == b""
            except (socket.timeout, ConnectionResetError):
                pass
        assert closed == 8
    finally:
        for s in idle:
            s.close()


def test_without_the_endpoint_only_the_cli(tmp_path, daemons):
    rt = start(tmp_path, daemons, manifest({"sink": builtin("sink")}), FAST_CONFIG)
    assert "metrics: serving" not in rt.daemon.text()
    s = metrics_cli(rt)
    assert value(s, "tinyedge_module_restarts_total", module="sink") == 0
    assert rt.cli("metrics", "extra").returncode == 2


def test_a_port_in_use_is_reported_and_the_daemon_runs_on(tmp_path, daemons):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        doc, config = sensor_to_sink(port)
        rt = start(tmp_path, daemons, doc, config)
        assert f"ERROR metrics: http://127.0.0.1:{port}/metrics: " in rt.daemon.text()
        assert metrics_cli(rt)
    finally:
        taken.close()


@pytest.mark.parametrize("metrics,message", [
    ({"port": 0}, "metrics.port must be an integer from 1 to 65535"),
    ({"port": 70000}, "metrics.port must be an integer from 1 to 65535"),
    ({"port": "9600"}, "metrics.port must be a number"),
    ({}, 'metrics: missing required key "port"'),
    ({"port": 9600, "address": "example.com"}, "metrics.address must be an IPv4 address"),
    ({"port": 9600, "bind": "127.0.0.1"}, 'unknown key "bind" in metrics'),
])
def test_bad_metrics_config_exits_2_naming_the_field(tmp_path, metrics, message):
    c = write_json(tmp_path, "config.json", {"metrics": metrics})
    r = run("check", "-c", str(c), "--state-dir", str(tmp_path / "state"), "--module", "x=/bin/true")
    assert r.returncode == 2, r.stdout
    assert f"{c}:" in r.stderr and message in r.stderr, r.stderr
    r = run("run", "-c", str(c), "--state-dir", str(tmp_path / "state"), "--module", "x=/bin/true")
    assert r.returncode == 2 and message in r.stderr, r.stderr


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")
def test_uplink_session_figures(tmp_path, daemons):
    broker = Broker(tmp_path).start()
    try:
        doc = manifest({"counter": builtin("counter", "--count", "200", restart="never")},
                       {"up": {"route": "FROM /messages/* INTO $upstream"}})
        rt = start(tmp_path, daemons, doc, mqtt_config(broker))
        s = wait_metric(rt, lambda s: value(s, "tinyedge_upstream_messages_acknowledged_total",
                                            id="dev1") == 200, "200 acknowledged")
        assert value(s, "tinyedge_upstream_connected", id="dev1") == 1
        assert value(s, "tinyedge_upstream_connects_total", id="dev1") == 1
        assert value(s, "tinyedge_upstream_messages_published_total", id="dev1") >= 200
        assert value(s, "edgehub_messages_sent_total", to="upstream") == 200
        assert value(s, "tinyedge_upstream_queue_accepted_total") == 200
        assert value(s, "tinyedge_store_bytes_written_total") > 0
        s = wait_metric(rt, lambda s: value(s, "edgehub_queue_length", endpoint="$upstream",
                                            priority="0") == 0, "the queue drained")
        assert value(s, "tinyedge_queue_messages_delivered_total", endpoint="$upstream",
                     priority="0") == 200
        online = value(s, "tinyedge_upstream_connected_seconds_total", id="dev1")
        broker.stop()
        s = wait_metric(rt, lambda s: value(s, "tinyedge_upstream_connected", id="dev1") == 0,
                        "offline")
        assert value(s, "tinyedge_upstream_failures_total", id="dev1") >= 1
        later = wait_metric(rt, lambda x: value(x, "tinyedge_upstream_offline_seconds_total",
                                                id="dev1")
                            > value(s, "tinyedge_upstream_offline_seconds_total", id="dev1"),
                            "offline time grows")
        assert value(later, "tinyedge_upstream_connected_seconds_total", id="dev1") >= online
    finally:
        broker.stop()
