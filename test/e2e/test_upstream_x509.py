"""Client-certificate authentication of the uplink against a real mosquitto
that requires one (`require_certificate true`) and takes the certificate's
CN as the user name (`use_identity_as_username true`), with the test PKI of
test/pki.sh; plus `tinyedge check` on a key that does not match its
certificate."""
import os
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import FAST_CONFIG, run, write_json
from test_store import peek, start
from test_upstream import (MOSQUITTO, Broker, Subscriber, counter_up, free_port, mqtt_config,
                           pki, read_connect)  # noqa: F401 (pki: the fixture)

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")

CERT_BROKER = ["require_certificate true", "use_identity_as_username true",
               "log_type all", "connection_messages true"]


@pytest.fixture(scope="module")
def client_other(pki):
    """client-other.pem/.key: CN=tinyedge-client, EC, signed by ca2 (same
    subject as the CA, another key)."""
    key, csr, cert, ext = (pki / n for n in ("client-other.key", "client-other.csr",
                                             "client-other.pem", "client-other.cnf"))
    if not cert.exists():
        ext.write_text("basicConstraints = critical,CA:FALSE\n"
                       "keyUsage = critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage = clientAuth\n")
        for cmd in (["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", key],
                    ["req", "-new", "-key", key, "-out", csr, "-subj", "/CN=tinyedge-client"],
                    ["x509", "-req", "-in", csr, "-CA", pki / "ca2.pem", "-CAkey", pki / "ca2.key",
                     "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", ext, "-out", cert]):
            r = subprocess.run(["openssl", *map(str, cmd)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
    return cert, key


def cert_broker(tmp_path, pki):
    return Broker(tmp_path, pki, extra=CERT_BROKER).start()


def broker_log(broker):
    broker.log.flush()
    return (broker.tmp / f"mosquitto-{broker.port}.log").read_text(errors="replace")


def cert_subscriber(broker, pki, topic="tinyedge/+/+/+"):
    """paho, with the RSA client certificate (the broker requires one)."""
    return Subscriber(broker, topic=topic, ca=str(pki / "ca.pem"),
                      cert=str(pki / "client-rsa.pem"), key=str(pki / "client-rsa.key"))


def client_files(pki, name):
    return {"certFile": str(pki / f"{name}.pem"), "keyFile": str(pki / f"{name}.key")}


def wait_broker_log(broker, needle, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in broker_log(broker):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("name,cn", [("client", "tinyedge-client"),
                                     ("client-rsa", "tinyedge-client-rsa")])
def test_telemetry_with_a_client_certificate(tmp_path, daemons, pki, name, cn):
    broker = cert_broker(tmp_path, pki)
    sub = None
    try:
        sub = cert_subscriber(broker, pki)
        rt = start(tmp_path, daemons, counter_up(50),
                   mqtt_config(broker, pki, **client_files(pki, name)))
        assert sub.wait(50) == 50, rt.daemon.text() + broker_log(broker)
        assert sub.seqs() == list(range(50))
        assert {t for t, _ in sub.msgs} == {"tinyedge/dev1/counter/output1"}
        # The broker took the daemon's identity from its certificate.
        assert wait_broker_log(broker, f"as dev1 (p2, c0, k5, u'{cn}')"), broker_log(broker)
        assert "upstream: online" in rt.daemon.text()
    finally:
        if sub:
            sub.stop()
        broker.stop()


def assert_refused(rt, broker, broker_says):
    """The daemon fails in the TLS handshake on at least two attempts, each
    time naming the broker's alert (also when the broker's reset comes
    before the daemon's last handshake records are out), keeps every
    message, stays up; the broker logs why it refused."""
    assert rt.daemon.wait_for("again in about", count=2, timeout=30), rt.daemon.text()
    text = rt.daemon.text()
    fails = [l for l in text.splitlines() if "again in about" in l]
    assert len(fails) >= 2, text
    assert all(re.search(r"WARN upstream: localhost:\d+: TLS: server sent alert ", l)
               for l in fails), text
    assert "upstream: online" not in text
    assert len(peek(rt)) == 10
    assert rt.daemon.proc.poll() is None
    log = broker_log(broker)
    assert broker_says in log, log
    assert "as dev1" not in log


def test_no_client_certificate_is_refused(tmp_path, daemons, pki):
    broker = cert_broker(tmp_path, pki)
    try:
        rt = start(tmp_path, daemons, counter_up(10), mqtt_config(broker, pki))
        assert_refused(rt, broker, "peer did not return a certificate")
    finally:
        broker.stop()


def test_client_certificate_of_another_ca_is_refused(tmp_path, daemons, pki, client_other):
    cert, key = client_other
    broker = cert_broker(tmp_path, pki)
    try:
        rt = start(tmp_path, daemons, counter_up(10),
                   mqtt_config(broker, pki, certFile=str(cert), keyFile=str(key)))
        assert_refused(rt, broker, "certificate verify failed")
    finally:
        broker.stop()


X509_CS = "HostName=localhost;DeviceId=dev1;x509=true"


def azure_config(pki, port, **extra):
    return dict(FAST_CONFIG, upstream={"protocol": "azure-iot-hub", "connectionString": X509_CS,
                                       "caFile": str(pki / "ca.pem"), "port": port,
                                       **client_files(pki, "client"), **extra})


def test_azure_x509_telemetry_reaches_the_broker(tmp_path, daemons, pki):
    broker = cert_broker(tmp_path, pki)
    sub = None
    try:
        sub = cert_subscriber(broker, pki, topic="devices/dev1/messages/events/#")
        rt = start(tmp_path, daemons, counter_up(20), azure_config(pki, broker.port))
        assert sub.wait(20) == 20, rt.daemon.text() + broker_log(broker)
        assert sub.seqs() == list(range(20))
        assert all(t.startswith("devices/dev1/messages/events/") for t, _ in sub.msgs)
        assert wait_broker_log(broker, "as dev1 (p2, c0, k240, u'tinyedge-client')"), broker_log(broker)
        assert "SAS" not in rt.daemon.text()
    finally:
        if sub:
            sub.stop()
        broker.stop()


def test_azure_x509_connect_carries_no_password(tmp_path, daemons, pki):
    """A TLS server that requires the client certificate reads the CONNECT
    itself: IoT Hub's user name, no password flag, no SAS token."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    ctx.load_verify_locations(pki / "ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    port = free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    srv.settimeout(20)
    rt = start(tmp_path, daemons, counter_up(1), azure_config(pki, port))
    try:
        c, _ = srv.accept()
        with ctx.wrap_socket(c, server_side=True) as tls:
            tls.settimeout(10)
            peer = dict(x[0] for x in tls.getpeercert()["subject"])
            data = tls.recv(65536)
    finally:
        srv.close()
    assert peer["commonName"] == "tinyedge-client"
    assert data[0] == 0x10, data
    cid, user, pw = read_connect(data)
    assert (cid, user) == ("dev1", "localhost/dev1/?api-version=2021-04-12")
    # Variable header: "\0\4MQTT", level 4, then the flags: no password bit.
    assert data[data.index(b"MQTT") + 5] & 0x40 == 0, data
    assert pw == "" and b"SharedAccessSignature" not in data
    assert rt.daemon.proc.poll() is None


@pytest.mark.parametrize("cert,key", [("client", "server"),          # both EC, another key
                                      ("client", "client-rsa"),      # EC cert, RSA key
                                      ("client-rsa", "server-rsa")])  # both RSA, another key
def test_check_reports_a_key_that_does_not_match_the_certificate(tmp_path, pki, cert, key):
    cfg = write_json(tmp_path, "config.json", {
        "deviceId": "dev1",
        "upstream": {"protocol": "mqtt", "host": "localhost", "caFile": str(pki / "ca.pem"),
                     "certFile": str(pki / f"{cert}.pem"), "keyFile": str(pki / f"{key}.key")}})
    r = run("check", "-c", str(cfg))
    assert r.returncode == 2, r.stdout + r.stderr
    assert f"{pki / f'{key}.key'}: does not match {pki / f'{cert}.pem'}" in r.stderr, r.stderr
    good = write_json(tmp_path, "good.json", {
        "deviceId": "dev1",
        "upstream": {"protocol": "mqtt", "host": "localhost", "caFile": str(pki / "ca.pem"),
                     **client_files(pki, cert)}})
    r = run("check", "-c", str(good))
    assert r.returncode == 0, r.stdout + r.stderr
