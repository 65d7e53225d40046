"""The TLS matrix: a server certificate that is expired, not yet valid, for
another name, from an unknown CA, from a fake CA with the real CA's subject
name, or with a weak key is refused on every reconnect attempt (10 each),
no MQTT CONNECT ever leaves (nothing is published), and the log says why.
A good certificate on the same setup connects (the control case).

Certificates are made at test time with openssl: test/pki.sh for the CA and
the usual set, and here the ones pki.sh does not make."""
import os
import subprocess

import pytest

from conftest import FAST_CONFIG, sample_deployment, write_json
from fakebroker import FakeBroker
from test_check import check
from test_store import peek, start
from test_upstream import ROOT, counter_up

ATTEMPTS = 10


def ossl(d, *args):
    r = subprocess.run(["openssl", *args], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def leaf(d, name, keyargs, cn="localhost", ca="ca", start=None, end=None):
    """name.pem/.key: a server certificate for cn signed by ca; start/end
    (YYYYMMDDHHMMSSZ) through `openssl ca`, which can set both."""
    ossl(d, "genpkey", *keyargs, "-out", f"{name}.key")
    ossl(d, "req", "-new", "-key", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}")
    (d / f"{name}.cnf").write_text(
        "[ca]\ndefault_ca = t\n[t]\nunique_subject = no\ndatabase = db/index.txt\nnew_certs_dir = db\n"
        "serial = db/serial\ndefault_md = sha256\npolicy = any\nx509_extensions = ext\n"
        "default_days = 3650\n[any]\ncommonName = supplied\n[ext]\n"
        "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n"
        f"extendedKeyUsage = serverAuth\nsubjectAltName = DNS:{cn}\n")
    (d / "db").mkdir(exist_ok=True)
    if not (d / "db" / "serial").exists():
        (d / "db" / "index.txt").write_text("")
        (d / "db" / "serial").write_text("1000\n")
    dates = (["-startdate", start] if start else []) + (["-enddate", end] if end else [])
    ossl(d, "ca", "-batch", "-notext", "-config", f"{name}.cnf", "-cert", f"{ca}.pem",
         "-keyfile", f"{ca}.key", *dates, "-in", f"{name}.csr", "-out", f"{name}.pem")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    d = tmp_path_factory.mktemp("tlsmatrix")
    r = subprocess.run(["sh", os.path.join(ROOT, "test", "pki.sh"), str(d)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    # A CA nobody trusts here, with a name of its own.
    ossl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "unknown-ca.key",
         "-out", "unknown-ca.pem", "-days", "3650", "-subj", "/O=elsewhere/CN=unrelated CA",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    leaf(d, "unknownca", ec, ca="unknown-ca")
    leaf(d, "notyet", ec, start="20400101000000Z", end="20410101000000Z")
    leaf(d, "expired2", ec, start="20200101000000Z", end="20210101000000Z")
    leaf(d, "rsa1024", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"])
    leaf(d, "p224", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-224"])
    return d


CASES = [
    ("expired2", "certificate expired or not yet valid at"),
    ("notyet", "certificate expired or not yet valid at"),
    ("wrongname", "certificate does not match localhost"),
    ("unknownca", "certificate not signed by a trusted CA"),
    ("other", "certificate not signed by a trusted CA"),        # a fake CA, same subject name
    ("rsa1024", "certificate: RSA key shorter than 2048 bits"),  # BearSSL's default takes it
    # EC below P-256: BearSSL offers no such curve, so the server cannot
    # even use its certificate and gives up.
    ("p224", "server sent alert handshake_failure"),
]


def tls_config(matrix, port):
    return dict(FAST_CONFIG, deviceId="dev1", upstream={
        "protocol": "mqtt", "host": "localhost", "port": port, "tls": True,
        "caFile": str(matrix / "ca.pem"), "keepAliveSecs": 5,
        "reconnectMinMs": 100, "reconnectMaxMs": 200})


def broker_for(matrix, cert):
    fb = FakeBroker(tls=(str(matrix / f"{cert}.pem"), str(matrix / f"{cert}.key")),
                    weak_ok=True)
    return fb.start()


@pytest.mark.parametrize("cert,why", CASES, ids=[c for c, _ in CASES])
def test_a_bad_server_certificate_is_refused_on_every_attempt(tmp_path, daemons, matrix, cert, why):
    fb = broker_for(matrix, cert)
    try:
        rt = start(tmp_path, daemons, counter_up(10), tls_config(matrix, fb.port))
        assert fb.wait(lambda b: b.accepted >= ATTEMPTS, timeout=60), rt.daemon.text()
        assert rt.daemon.wait_for("again in about", count=ATTEMPTS, timeout=20), rt.daemon.text()
        fails = [l for l in rt.daemon.text().splitlines() if "again in about" in l]
        assert all(f"TLS: {why}" in l for l in fails), "\n".join(fails)
        assert not fb.connects and not fb.publishes   # no CONNECT ever left: nothing published
        assert "upstream: online" not in rt.daemon.text()
        assert len(peek(rt)) == 10                     # still waiting in the store
        assert rt.daemon.proc.poll() is None
        print(f"\n{cert}: {fb.accepted} attempts refused: {fails[0].split('TLS: ')[1]}")
    finally:
        fb.stop()


def test_a_good_certificate_on_the_same_setup_connects(tmp_path, daemons, matrix):
    fb = broker_for(matrix, "server")
    try:
        rt = start(tmp_path, daemons, counter_up(10), tls_config(matrix, fb.port))
        assert fb.wait(lambda b: set(range(10)) <= set(b.seqs()), timeout=30), rt.daemon.text()
        assert "upstream: online" in rt.daemon.text()
        assert "again in about" not in rt.daemon.text()
    finally:
        fb.stop()


def test_a_weak_trust_anchor_is_refused_before_any_connection(tmp_path, daemons, matrix):
    # A CA of our own with an RSA 1024 key (pki.sh's weakca.pem) would let
    # a weak chain in: `check` names it (exit 2), the daemon runs on without
    # the uplink and keeps the messages.
    cfg = tls_config(matrix, 1)
    cfg["upstream"]["caFile"] = str(matrix / "weakca.pem")
    why = f"{matrix}/weakca.pem: certificate 1: RSA key of 1024 bits (at least 2048)"
    r = check(tmp_path, "-c", str(write_json(tmp_path, "c.json", cfg)),
              "-m", str(sample_deployment(tmp_path)))
    assert r.returncode == 2 and f"upstream: {why}" in r.stderr, r.stderr
    fb = broker_for(matrix, "server")
    try:
        cfg["upstream"]["port"] = fb.port
        rt = start(tmp_path, daemons, counter_up(10), cfg)
        assert rt.daemon.wait_for("not connecting"), rt.daemon.text()
        assert why in rt.daemon.text()
        rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 10, what="counter done")
        assert fb.accepted == 0 and len(peek(rt)) == 10
        assert rt.daemon.proc.poll() is None
    finally:
        fb.stop()
