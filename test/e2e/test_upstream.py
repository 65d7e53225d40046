"""The uplink against a real mosquitto from Debian, over real TLS (a test
PKI made with openssl at test time), with paho-mqtt as the independent
subscriber."""
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import FAST_CONFIG, Runtime, manifest, run, sh_module, write_json
from test_messages import builtin
from test_store import peek, queue, start

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    r = subprocess.run(["sh", os.path.join(ROOT, "test", "pki.sh"), str(d)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return d


class Broker:
    """mosquitto on a loopback port, plain or TLS, with persistence so a
    restart keeps what it accepted. `extra`: more lines for its listener."""

    def __init__(self, tmp, pki=None, cert="server", port=None, extra=()):
        self.tmp, self.pki, self.cert, self.extra = tmp, pki, cert, list(extra)
        self.port = port or free_port()
        self.proc = None

    def start(self):
        conf = self.tmp / f"mosquitto-{self.port}.conf"
        lines = [f"listener {self.port} 127.0.0.1", "allow_anonymous true", "user root",
                 "persistence true", f"persistence_location {self.tmp}/",
                 f"persistence_file mosq-{self.port}.db", "autosave_interval 1",
                 "max_queued_messages 100000"]
        if self.pki:
            lines += [f"cafile {self.pki}/ca.pem", f"certfile {self.pki}/{self.cert}.pem",
                      f"keyfile {self.pki}/{self.cert}.key", "tls_version tlsv1.2"]
        lines += self.extra
        conf.write_text("\n".join(lines) + "\n")
        self.log = open(self.tmp / f"mosquitto-{self.port}.log", "ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


class Subscriber:
    """paho-mqtt, QoS 1, a persistent session: it misses nothing the broker
    accepted, also across a broker restart."""

    def __init__(self, broker, topic="tinyedge/+/+/+", ca=None, cert=None, key=None):
        import paho.mqtt.client as mqtt
        self.msgs = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(client_id=f"sub-{broker.port}", clean_session=False)
        if ca:
            self.c.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
        self.c.on_message = self.on_message
        self.c.on_connect = lambda c, u, f, rc: c.subscribe(topic, qos=1)
        self.subscribed = threading.Event()
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.connect("localhost", broker.port)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        # What is published before the subscription exists is not for us.
        assert self.subscribed.wait(10), "subscriber not subscribed"

    def on_message(self, c, u, m):
        with self.lock:
            self.msgs.append((m.topic, m.payload))

    def seqs(self):
        with self.lock:
            return [json.loads(p[:p.index(b"}") + 1])["seq"] for _, p in self.msgs]

    def wait(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.msgs) < n:
            time.sleep(0.05)
        return len(self.msgs)

    def _run(self):
        # paho 1.6's own loop_start() thread dies when a send raises
        # ssl.SSLEOFError (the broker went away mid-write): it catches only
        # ConnectionError. Reconnect here instead, as it would have.
        while not self.done.is_set():
            try:
                self.c.loop_forever(retry_first_connection=True)
                return
            except OSError:
                while not self.done.is_set():
                    time.sleep(0.2)
                    try:
                        self.c.reconnect()
                        break
                    except OSError:
                        pass

    def stop(self):
        self.done.set()
        self.c.disconnect()
        self.thread.join(10)


def mqtt_config(broker, pki=None, **extra):
    up = {"protocol": "mqtt", "host": "localhost", "port": broker.port, "tls": pki is not None,
          "keepAliveSecs": 5, **extra}
    if pki:
        up["caFile"] = str(pki / "ca.pem")
    return dict(FAST_CONFIG, deviceId="dev1", upstream=up)


def counter_up(count, rate=0):
    args = ["--count", str(count)] + (["--rate", str(rate)] if rate else [])
    return manifest({"counter": builtin("counter", *args, restart="never")},
                    {"up": {"route": "FROM /messages/* INTO $upstream"}})


def test_telemetry_over_tls_reaches_a_subscriber_in_order(tmp_path, daemons, pki):
    broker = Broker(tmp_path, pki).start()
    sub = Subscriber(broker, ca=str(pki / "ca.pem"))
    try:
        rt = start(tmp_path, daemons, counter_up(500), mqtt_config(broker, pki))
        assert sub.wait(500) == 500, rt.daemon.text()
        assert sub.seqs() == list(range(500))
        assert {t for t, _ in sub.msgs} == {"tinyedge/dev1/counter/output1"}
        deadline = time.monotonic() + 10
        while queue(rt)["store"]["messages"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue(rt)["store"]["messages"] == 0   # acknowledged, deleted
        assert "upstream: online" in rt.daemon.text()
    finally:
        sub.stop()
        broker.stop()


def test_offline_backlog_drains_in_order_when_the_broker_comes(tmp_path, daemons, pki):
    # The subscriber's persistent session (kept by the broker's
    # persistence) is there before the device is: nothing races.
    broker = Broker(tmp_path, pki).start()
    Subscriber(broker, ca=str(pki / "ca.pem")).stop()
    broker.stop()
    rt = start(tmp_path, daemons, counter_up(300), mqtt_config(broker, pki))
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 300, what="counter done")
    time.sleep(0.5)
    assert len(peek(rt)) == 300
    assert "connect: Connection refused" in rt.daemon.text()
    broker.start()
    sub = Subscriber(broker, ca=str(pki / "ca.pem"))
    try:
        # The daemon retries within its backoff (at most ~2 s here).
        assert sub.wait(300, timeout=40) == 300, rt.daemon.text()
        assert sub.seqs() == list(range(300))
    finally:
        sub.stop()
        broker.stop()


def test_offline_edge_agent_reports_are_merged_with_their_nulls(tmp_path, daemons, pki):
    # Offline, the $edgeAgent reported patches (a module started, another
    # removed) wait merged into one; it reaches the broker when it comes,
    # with the removed module as null (a deletion in the cloud's twin).
    topic = "tinyedge/+/$edgeAgent/twin/reported/+"
    broker = Broker(tmp_path, pki).start()
    Subscriber(broker, topic=topic, ca=str(pki / "ca.pem")).stop()
    broker.stop()
    mods = {"keep": sh_module("sleep 1000"), "gone": sh_module("sleep 1000")}
    rt = Runtime(tmp_path, daemons, mods, config=mqtt_config(broker, pki))
    rt.wait_status("keep", "running")
    rt.wait_status("gone", "running")
    time.sleep(1.5)  # the report is built once a second
    rt.redeploy({"keep": mods["keep"]})
    rt.wait(lambda m: "gone" not in m, what="gone removed")
    time.sleep(1.5)
    assert "not sent" not in rt.daemon.text()
    broker.start()
    sub = Subscriber(broker, topic=topic, ca=str(pki / "ca.pem"))
    try:
        assert sub.wait(1, timeout=40) >= 1, rt.daemon.text()
        first = json.loads(sub.msgs[0][1])
        assert first["modules"]["gone"] is None, first
        assert first["modules"]["keep"]["runtimeStatus"] == "running", first
        assert "not sent" not in rt.daemon.text()
    finally:
        sub.stop()
        broker.stop()


def test_broker_restart_mid_stream_loses_nothing(tmp_path, daemons, pki):
    broker = Broker(tmp_path, pki).start()
    sub = Subscriber(broker, ca=str(pki / "ca.pem"))
    try:
        rt = start(tmp_path, daemons, counter_up(3000, rate=1000), mqtt_config(broker, pki))
        sub.wait(500)
        broker.stop()
        time.sleep(1.5)
        broker.start()
        assert sub.wait(3000, timeout=60) >= 3000, rt.daemon.text()
        seqs = sub.seqs()
        assert set(seqs) == set(range(3000))     # at least once: duplicates allowed
        assert "again in about" in rt.daemon.text()
    finally:
        sub.stop()
        broker.stop()


@pytest.mark.parametrize("cert,why", [
    ("wrongname", "does not match"),
    ("expired", "expired"),
    ("other", "not signed by a trusted CA"),
])
def test_bad_server_certificates_are_refused_on_every_attempt(tmp_path, daemons, pki, cert, why):
    broker = Broker(tmp_path, pki, cert=cert).start()
    try:
        rt = start(tmp_path, daemons, counter_up(10), mqtt_config(broker, pki))
        assert rt.daemon.wait_for(why, count=2, timeout=30), rt.daemon.text()
        assert "upstream: online" not in rt.daemon.text()
        assert len(peek(rt)) == 10
    finally:
        broker.stop()


def fake_broker(port, reply, stop):
    """Accept connections and answer each CONNECT with `reply` bytes."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    srv.settimeout(0.2)
    conns = []
    while not stop.is_set():
        try:
            c, _ = srv.accept()
        except socket.timeout:
            continue
        conns.append(c)
        try:
            c.settimeout(2)
            c.recv(4096)
            c.sendall(reply)
        except OSError:
            pass
    for c in conns:
        c.close()
    srv.close()
    return len(conns)


@pytest.mark.parametrize("reply,what", [
    (bytes([0x20, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]), "remaining length over 4 bytes"),
    (bytes([0x20, 0x02, 0x00]), "truncated CONNACK"),
    (bytes([0x20, 0x02, 0x02, 0x00]), "CONNACK with a reserved flag"),
    (bytes([0x20, 0x02, 0x00, 0x00, 0x30, 0x05, 0x00, 0x09, 0x61, 0x62, 0x63]), "topic past the packet"),
    (bytes([0x20, 0x02, 0x00, 0x00, 0x30, 0xFF, 0xFF, 0xFF, 0x7F]), "a 256 MiB PUBLISH"),
])
def test_a_broker_sending_malformed_packets_is_survived(tmp_path, daemons, reply, what):
    port = free_port()
    stop = threading.Event()
    result = []
    t = threading.Thread(target=lambda: result.append(fake_broker(port, reply, stop)))
    t.start()
    try:
        cfg = dict(FAST_CONFIG, deviceId="dev1",
                   upstream={"protocol": "mqtt", "host": "127.0.0.1", "port": port, "tls": False})
        rt = start(tmp_path, daemons, counter_up(10), cfg)
        assert rt.daemon.wait_for("again in about", count=2, timeout=30), rt.daemon.text()
        assert rt.daemon.proc.poll() is None
        rss = int(open(f"/proc/{rt.daemon.proc.pid}/status").read().split("VmRSS:")[1].split()[0])
        assert rss < 64 * 1024, f"{what}: daemon RSS {rss} KiB"
        assert len(peek(rt)) == 10
    finally:
        stop.set()
        t.join()
    assert result and result[0] >= 2


KEY = "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw="


def read_connect(data):
    """client id, username, password of an MQTT 3.1.1 CONNECT packet."""
    i, mult, rl = 1, 1, 0
    while True:
        b = data[i]
        rl += (b & 127) * mult
        mult *= 128
        i += 1
        if not b & 128:
            break
    p = i

    def field(p):
        n = int.from_bytes(data[p:p + 2], "big")
        return data[p + 2:p + 2 + n], p + 2 + n
    name, p = field(p)
    assert name == b"MQTT" and data[p] == 4
    flags = data[p + 1]
    p += 4
    cid, p = field(p)
    user, p = field(p) if flags & 0x80 else (b"", p)
    pw, p = field(p) if flags & 0x40 else (b"", p)
    return cid.decode(), user.decode(), pw.decode()


def test_azure_sas_connect_is_what_iot_hub_checks(tmp_path, daemons):
    import hubsim
    port = free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(20)
    cs = f"HostName=myhub.azure-devices.net;DeviceId=dev1;SharedAccessKey={KEY};GatewayHostName=127.0.0.1"
    cfg = dict(FAST_CONFIG, upstream={"protocol": "azure-iot-hub", "connectionString": cs,
                                      "tls": False, "port": port})
    rt = start(tmp_path, daemons, counter_up(1), cfg)
    c, _ = srv.accept()
    c.settimeout(10)
    data = c.recv(65536)
    c.close()
    srv.close()
    cid, user, pw = read_connect(data)
    assert cid == "dev1"
    assert user == "myhub.azure-devices.net/dev1/?api-version=2021-04-12"
    fields = hubsim.validate_connect(cid, user, pw, "myhub.azure-devices.net", "dev1", KEY)
    assert int(fields["se"]) > time.time() + 600   # valid for a while, renewed before expiry
    assert rt.daemon.proc.poll() is None


def test_azure_mode_telemetry_twin_and_methods_through_a_hub_simulator(tmp_path, daemons, pki):
    import hubsim
    broker = Broker(tmp_path, pki).start()
    sim = hubsim.HubSim("localhost", broker.port, "dev1", ca=str(pki / "ca.pem"),
                        twin={"desired": {"interval": 5}}).start()
    try:
        cs = f"HostName=localhost;DeviceId=dev1;SharedAccessKey={KEY}"
        cfg = dict(FAST_CONFIG, upstream={"protocol": "azure-iot-hub", "connectionString": cs,
                                          "caFile": str(pki / "ca.pem"), "port": broker.port})
        doc = manifest({"counter": builtin("counter", "--count", "20", restart="never", order=2),
                        "echo": builtin("echo", order=1), "filter": builtin("filter", order=1)},
                       {"up": {"route": "FROM /messages/modules/counter/* INTO $upstream"}})
        doc["modulesContent"]["filter"] = {"properties.desired": {"TemperatureThreshold": 30}}
        rt = start(tmp_path, daemons, doc, cfg)
        msgs = sim.wait_telemetry(20, timeout=30)
        assert [int(m.app["seq"]) for m in msgs] == list(range(20))
        assert msgs[0].app["connectionModuleId"] == "counter"
        assert msgs[0].app["outputName"] == "output1"
        assert sim.wait_for(lambda s: s.twin_gets, timeout=10)
        assert rt.daemon.wait_for("device twin received")
        status, body = sim.invoke("ping")
        assert status == 200 and body["device"] == "dev1"
        rt.wait_status("echo", "running")
        status, body = sim.invoke("echo.ping", {"x": 1})
        assert status == 200 and body == {"module": "echo", "payload": {"x": 1}}
        status, body = sim.invoke("reboot")   # not a built-in $edgeAgent method
        assert status == 400 and "reboot" in body["message"], body
        # The filter's reported properties reach the device twin, under its name.
        assert sim.wait_for(lambda s: any(p.get("filter") == {"TemperatureThreshold": 30}
                                          for _, p in s.reported_patches), timeout=15), \
            sim.reported_patches
        sim.set_desired({"interval": 7})
        assert rt.daemon.wait_for("desired properties version 2")
        sim.set_desired({"interval": 6}, version=1)
        assert rt.daemon.wait_for("stale desired patch 1 ignored")
    finally:
        sim.stop()
        broker.stop()


def test_generic_mode_direct_methods_over_documented_topics(tmp_path, daemons, pki):
    import paho.mqtt.client as mqtt
    broker = Broker(tmp_path, pki).start()
    answers, got = {}, threading.Event()
    c = mqtt.Client(client_id="operator")
    c.tls_set(ca_certs=str(pki / "ca.pem"))

    def on_message(cl, u, m):
        answers[m.topic] = json.loads(m.payload)
        if len(answers) >= 4:
            got.set()
    c.on_message = on_message
    c.connect("localhost", broker.port)
    c.subscribe("tinyedge/dev1/+/methods/res/#", qos=1)
    c.subscribe("tinyedge/dev1/+/twin/reported/+", qos=1)
    c.loop_start()
    try:
        doc = manifest({"echo": builtin("echo"), "filter": builtin("filter")}, {})
        doc["modulesContent"]["filter"] = {"properties.desired": {"TemperatureThreshold": 30}}
        rt = start(tmp_path, daemons, doc, mqtt_config(broker, pki))
        assert rt.daemon.wait_for("upstream: online"), rt.daemon.text()
        rt.wait_status("echo", "running")
        time.sleep(0.3)
        c.publish("tinyedge/dev1/edge/methods/ping/r1", b"{}", qos=1)
        c.publish("tinyedge/dev1/echo/methods/ping/r2", b'{"x":2}', qos=1)
        c.publish("tinyedge/dev1/echo/methods/reboot/r3", b"{}", qos=1)
        assert got.wait(15), answers
        assert answers["tinyedge/dev1/edge/methods/res/r1/200"]["device"] == "dev1"
        assert answers["tinyedge/dev1/echo/methods/res/r2/200"] == {"module": "echo", "payload": {"x": 2}}
        assert "tinyedge/dev1/echo/methods/res/r3/404" in answers
        reported = [v for t, v in answers.items() if t.startswith("tinyedge/dev1/filter/twin/reported/")]
        assert reported == [{"TemperatureThreshold": 30}], answers
    finally:
        c.loop_stop()
        c.disconnect()
        broker.stop()


KEY2 = "c2Vjb25kIGtleSBmb3IgdGhlIG1vZHVsZSBpZGVudGl0eQ=="


def test_a_module_with_its_own_identity_has_its_own_connection(tmp_path, daemons, pki):
    import hubsim
    broker = Broker(tmp_path, pki).start()
    sim = hubsim.HubSim("localhost", broker.port, "dev1", module="echo",
                        ca=str(pki / "ca.pem")).start()
    try:
        cfg = dict(FAST_CONFIG, upstream={
            "protocol": "azure-iot-hub", "caFile": str(pki / "ca.pem"), "port": broker.port,
            "connectionString": f"HostName=localhost;DeviceId=dev1;SharedAccessKey={KEY}",
            "moduleIdentities": {
                "echo": f"HostName=localhost;DeviceId=dev1;ModuleId=echo;SharedAccessKey={KEY2}"}})
        doc = manifest({"echo": builtin("echo", order=1),
                        "counter": builtin("counter", "--count", "10", restart="never", order=2)},
                       {"toEcho": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/echo/inputs/in")',
                        "up": "FROM /messages/modules/echo/* INTO $upstream"})
        rt = start(tmp_path, daemons, doc, cfg)
        assert rt.daemon.wait_for("online: localhost:%d as dev1/echo" % broker.port), rt.daemon.text()
        assert rt.daemon.wait_for("online: localhost:%d as dev1 " % broker.port), rt.daemon.text()
        msgs = sim.wait_telemetry(10, timeout=30)
        assert [int(m.app["seq"]) for m in msgs] == list(range(10))
        assert "connectionModuleId" not in msgs[0].app   # its own identity: no tags
        # (Methods per identity are not checked here: on a plain broker both
        # connections see the same $iothub/methods topics; IoT Hub separates
        # them by identity.)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            q = queue(rt)
            if any(r["endpoint"] == "$upstream/echo" and r["delivered"] == 10 for r in q["queues"]):
                break
            time.sleep(0.1)
        assert any(r["endpoint"] == "$upstream/echo" and r["delivered"] == 10 for r in q["queues"]), q
    finally:
        sim.stop()
        broker.stop()


def test_module_identities_are_checked(tmp_path):
    cfg = write_json(tmp_path, "c.json", {"upstream": {
        "protocol": "azure-iot-hub",
        "connectionString": f"HostName=h.example;DeviceId=dev1;SharedAccessKey={KEY}",
        "moduleIdentities": {"echo": f"HostName=h.example;DeviceId=dev1;ModuleId=other;SharedAccessKey={KEY}"}}})
    r = run("check", "-c", str(cfg), "--state-dir", str(tmp_path / "state"))
    assert r.returncode == 2 and "moduleIdentities.echo: the connection string's ModuleId is \"other\"" in r.stderr, r.stderr


def test_the_last_good_time_is_a_floor_for_certificate_checks(tmp_path, daemons, pki):
    broker = Broker(tmp_path, pki).start()
    try:
        # A first connection records the time it saw as good.
        rt = start(tmp_path, daemons, counter_up(1), mqtt_config(broker, pki))
        assert rt.daemon.wait_for("upstream: online"), rt.daemon.text()
        good = int((rt.state / "last-good-time").read_text())
        assert abs(good - time.time()) < 60
        rt.daemon.stop()
        # A clock that "went back" 20 years behind what was seen: the floor
        # (here put 20 years ahead) is what certificates are checked at,
        # so the test server's certificate is refused as expired.
        (rt.state / "last-good-time").write_text(str(int(time.time()) + 20 * 365 * 86400))
        rt.daemon = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                            "--state-dir", str(rt.state))
        assert rt.daemon.wait_for("expired", count=1, timeout=20), rt.daemon.text()
        assert "upstream: online" not in rt.daemon.text()
    finally:
        broker.stop()
