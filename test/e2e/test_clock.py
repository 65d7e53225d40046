"""Clock faults. CLOCK_REALTIME is not namespaced: this REALLY sets the host
clock (root, CAP_SYS_TIME), under an fcntl lock on
/run/tinyedge-clock-test.lock, for a few seconds at a time, and always
puts it back (realtime = saved offset + CLOCK_BOOTTIME): in a finally, at
exit and on SIGTERM.

The daemon starts with the clock at 1970, at build time - 1 day (behind
the floor), and 20 years ahead; then the clock is corrected. No certificate
check is bypassed, no SAS token is minted with a wrong clock, TTLs count
elapsed time, and the daemon recovers without a restart (same pid)."""
import atexit
import fcntl
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timezone

import pytest

import hubsim
from conftest import BIN, FAST_CONFIG, manifest
from fakebroker import FakeBroker
from test_messages import builtin
from test_store import peek, queue, start
from test_tls_matrix import leaf
from test_upstream import KEY, ROOT, counter_up

LOCK = "/run/tinyedge-clock-test.lock"
YEAR = 365 * 86400
SLACK = 3.0


def build_epoch():
    """TE_BUILD_EPOCH of the binary under test (its build's version.h, else
    the commit time, which is what the Makefile uses)."""
    h = os.path.join(os.path.dirname(BIN), "include", "version.h")
    if os.path.exists(h):
        m = re.search(r"TE_BUILD_EPOCH (\d+)", open(h).read())
        if m:
            return int(m.group(1))
    return int(subprocess.check_output(["git", "-C", ROOT, "log", "-1", "--format=%ct"]))


class Clock:
    """The host clock, shifted for short windows and always restored."""

    def __init__(self):
        self.lock = open(LOCK, "w")
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        self.offset = time.clock_gettime(time.CLOCK_REALTIME) - \
            time.clock_gettime(time.CLOCK_BOOTTIME)
        self.shifted = False
        atexit.register(self.restore)
        self.old_term = signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, sig, frame):
        self.restore()
        signal.signal(signal.SIGTERM, self.old_term if callable(self.old_term) else signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    def real(self):
        """The real time now, whatever the clock says."""
        return self.offset + time.clock_gettime(time.CLOCK_BOOTTIME)

    def set(self, t):
        try:
            self.shifted = True
            time.clock_settime(time.CLOCK_REALTIME, float(t))
        except PermissionError as e:
            self.shifted = False
            pytest.fail(f"clock_settime(CLOCK_REALTIME) refused ({e}): this test must run as "
                        "root with CAP_SYS_TIME")

    def restore(self):
        if self.shifted:
            time.clock_settime(time.CLOCK_REALTIME, self.real())
            self.shifted = False

    def close(self):
        self.restore()
        signal.signal(signal.SIGTERM, self.old_term)
        atexit.unregister(self.restore)
        self.lock.close()


@pytest.fixture(scope="module")
def clock():
    c = Clock()
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    """A CA, a server certificate valid from 30 days ago (before the build
    date: the floor can validate it) for 5 years, and an expired one."""
    d = tmp_path_factory.mktemp("clockpki")
    r = subprocess.run(["sh", os.path.join(ROOT, "test", "pki.sh"), str(d)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    fmt = "%Y%m%d%H%M%SZ"
    start_ = datetime.fromtimestamp(min(time.time(), build_epoch()) - 30 * 86400, timezone.utc)
    end = datetime.fromtimestamp(time.time() + 5 * YEAR, timezone.utc)
    ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    leaf(d, "good", ec, start=start_.strftime(fmt), end=end.strftime(fmt))
    return d


@pytest.fixture
def fakes():
    started = []

    def make(cert, certs):
        fb = FakeBroker(tls=(str(certs / f"{cert}.pem"), str(certs / f"{cert}.key"))).start()
        started.append(fb)
        return fb
    yield make
    for fb in started:
        fb.stop()


def mqtt_cfg(certs, port):
    return dict(FAST_CONFIG, deviceId="dev1", upstream={
        "protocol": "mqtt", "host": "localhost", "port": port, "tls": True,
        "caFile": str(certs / "ca.pem"), "keepAliveSecs": 5,
        "reconnectMinMs": 500, "reconnectMaxMs": 2000})


def faults():
    return {"1970": lambda: 86400.0, "build-1d": lambda: build_epoch() - 86400.0,
            "+20y": lambda: time.time() + 20 * YEAR}


@pytest.mark.parametrize("when", ["1970", "build-1d"])
def test_behind_the_floor_certificates_are_checked_at_the_floor(tmp_path, daemons, fakes,
                                                                 clock, certs, when):
    good, bad = fakes("good", certs), fakes("expired", certs)
    (tmp_path / "g").mkdir()
    (tmp_path / "e").mkdir()
    try:
        clock.set(faults()[when]())
        g = start(tmp_path / "g", daemons, counter_up(5), mqtt_cfg(certs, good.port))
        e = start(tmp_path / "e", daemons, counter_up(5), mqtt_cfg(certs, bad.port))
        g_ok = g.daemon.wait_for("upstream: online", timeout=8)
        e_refused = e.daemon.wait_for("again in about", count=2, timeout=8)
    finally:
        clock.restore()
    # A certificate valid at the floor is taken (the clock is wrong, not it)...
    assert g_ok, g.daemon.text()
    assert "certificates checked at that time instead" in g.daemon.text()
    assert good.wait(lambda b: set(range(5)) <= set(b.seqs()), timeout=15), g.daemon.text()
    # ... an expired one is still refused, and says at what time.
    assert e_refused, e.daemon.text()
    fails = [l for l in e.daemon.text().splitlines() if "again in about" in l]
    assert all("expired or not yet valid at" in l for l in fails), fails
    assert "(the floor: the clock is behind it)" in fails[0], fails[0]
    assert not bad.connects and "upstream: online" not in e.daemon.text()
    # The floor was not moved by a connection made with a wrong clock.
    assert not (g.state / "last-good-time").exists() or \
        int((g.state / "last-good-time").read_text()) >= build_epoch()
    assert g.daemon.proc.poll() is None and e.daemon.proc.poll() is None


def test_20_years_ahead_a_valid_certificate_looks_expired_until_the_clock_is_fixed(
        tmp_path, daemons, fakes, clock, certs):
    fb = fakes("good", certs)
    try:
        clock.set(faults()["+20y"]())
        rt = start(tmp_path, daemons, counter_up(5), mqtt_cfg(certs, fb.port))
        refused = rt.daemon.wait_for("again in about", count=2, timeout=8)
        text = rt.daemon.text()
    finally:
        clock.restore()
        fixed = time.monotonic()
    assert refused, text
    assert "expired or not yet valid at" in text and "(the clock)" in text, text
    assert not fb.connects, "a CONNECT left while the clock was 20 years ahead"
    # Corrected: connected within one backoff step (max 2 s here), same daemon.
    step = float(re.findall(r"again in about ([0-9.]+) s", rt.daemon.text())[-1])
    assert fb.wait(lambda b: b.connects, timeout=step + SLACK + 5), rt.daemon.text()
    delay = fb.connects[0][0] - fixed
    assert delay <= step + SLACK, (delay, step)
    assert fb.wait(lambda b: set(range(5)) <= set(b.seqs()), timeout=15), rt.daemon.text()
    assert rt.daemon.proc.poll() is None
    print(f"\n+20y: refused while ahead; connected {delay:.2f} s after the correction (step {step} s)")


def azure_cfg(certs, port):
    cs = f"HostName=localhost;DeviceId=dev1;SharedAccessKey={KEY}"
    return dict(FAST_CONFIG, upstream={
        "protocol": "azure-iot-hub", "connectionString": cs, "caFile": str(certs / "ca.pem"),
        "port": port, "keepAliveSecs": 5, "reconnectMinMs": 500, "reconnectMaxMs": 2000})


@pytest.mark.parametrize("when", ["1970", "build-1d", "+20y"])
def test_no_sas_token_is_minted_with_a_wrong_clock(tmp_path, daemons, fakes, clock, certs, when):
    fb = fakes("good", certs)
    try:
        clock.set(faults()[when]())
        rt = start(tmp_path, daemons, counter_up(3), azure_cfg(certs, fb.port))
        if when == "+20y":   # a token with a wrong expiry is made, but TLS stops it
            waited = rt.daemon.wait_for("again in about", count=2, timeout=8)
        else:
            waited = rt.daemon.wait_for("no SAS token is minted", timeout=8)
            time.sleep(2)
        text = rt.daemon.text()
        early = list(fb.connects)
        tcp = fb.accepted
    finally:
        clock.restore()
        fixed = time.monotonic()
    assert waited, text
    assert not early, f"a SAS token left with the clock at {when}: {early}"
    if when != "+20y":
        assert tcp == 0, "connected while no token could be minted"
        assert text.count("no SAS token is minted") == 1, text   # said once, looked at each second
    # After the correction: a fresh token, valid for about an hour of REAL time.
    assert fb.wait(lambda b: b.connects, timeout=15), rt.daemon.text()
    t, cid, user, pw = fb.connects[0]
    real = clock.real()
    fields = hubsim.validate_connect(cid, user, pw, "localhost", "dev1", KEY, now=real)
    se = int(fields["se"])
    assert real + 600 < se <= real + 3600 + 60, (se, real)
    assert fb.wait(lambda b: len(b.publishes) >= 3, timeout=15), rt.daemon.text()
    assert rt.daemon.proc.poll() is None
    print(f"\nSAS at {when}: first CONNECT {t - fixed:.2f} s after the correction, "
          f"se = real time + {se - real:.0f} s")


def test_ttls_count_elapsed_time_across_clock_jumps(tmp_path, daemons, clock):
    # Offline (nothing listens): messages wait in the store with a TTL of
    # 15 s. A jump of +20 years does not expire them; messages put during
    # the jump (and during a jump back to 1970) are not immortal once the
    # clock is right: after 15 s of real time, plus a housekeeping round
    # (5 s), the store is empty.
    doc = manifest({"counter": builtin("counter", "--count", "120", "--rate", "10",
                                       restart="never")},
                   {"up": {"route": "FROM /messages/* INTO $upstream", "timeToLiveSecs": 15}})
    cfg = dict(FAST_CONFIG, deviceId="dev1", upstream={
        "protocol": "mqtt", "host": "127.0.0.1", "port": 9, "tls": False,
        "reconnectMinMs": 500, "reconnectMaxMs": 2000})
    rt = start(tmp_path, daemons, doc, cfg)
    pid = rt.daemon.proc.pid
    time.sleep(2)
    before = len(peek(rt))
    assert before > 0
    try:
        clock.set(time.time() + 20 * YEAR)
        time.sleep(6)                       # a housekeeping round happens in here
        during = len(peek(rt))
    finally:
        clock.restore()
    # The ones queued before the jump are still there (8 s old, TTL 15 s).
    assert during >= before, (before, during)
    try:
        clock.set(86400.0)
        time.sleep(3)
    finally:
        clock.restore()
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 120, timeout=20, what="counter done")
    deadline = time.monotonic() + 15 + 5 + 10
    left = None
    while time.monotonic() < deadline:
        left = queue(rt)["store"]["messages"]
        if left == 0:
            break
        time.sleep(0.5)
    assert left == 0, f"{left} messages outlived their TTL: {queue(rt)}"
    assert rt.daemon.proc.pid == pid and rt.daemon.proc.poll() is None
    print(f"\nTTL: {before} queued before +20y, {during} still there during it; all expired "
          f"by elapsed time after the clock came back")
