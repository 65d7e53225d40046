"""Network faults against the uplink: broker restarts (a real mosquitto over
TLS), connections cut in the middle of a packet, brokers that stall, and a
fake broker (fakebroker.py) that sends every kind of malformed packet.

For each: the daemon does not crash (same pid, `tinyedge list` answers),
its RSS stays bounded, it reconnects within one backoff step of the fault
clearing (the step it logged, plus slack), and every message it committed
reaches the broker at least once (unique `seq` values; duplicates are
allowed: at-least-once). TE_LONG=1 repeats each fault more times."""
import os
import re
import time

import pytest

from conftest import FAST_CONFIG
from fakebroker import HARMLESS, MALFORMED, FakeBroker
from test_store import queue, start
from test_upstream import MOSQUITTO, Broker, Subscriber, counter_up, pki  # noqa: F401 (a fixture)

LONG = os.environ.get("TE_LONG") == "1"
ROUNDS = 10 if LONG else 1
SLACK = 2.5          # seconds on top of a backoff step: scheduling, a loaded machine
MIN_MS, MAX_MS, KEEPALIVE = 500, 4000, 5
CONNECT_TIMEOUT = 10  # upstream.c CONNECT_TIMEOUT_MS


def fb_config(port, **extra):
    up = {"protocol": "mqtt", "host": "127.0.0.1", "port": port, "tls": False,
          "keepAliveSecs": KEEPALIVE, "reconnectMinMs": MIN_MS, "reconnectMaxMs": MAX_MS, **extra}
    return dict(FAST_CONFIG, deviceId="dev1", upstream=up)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0])


def steps(text):
    """The backoff steps the daemon announced, in order (seconds)."""
    return [float(s) for s in re.findall(r"again in about ([0-9.]+) s", text)]


def alive(rt, pid):
    assert rt.daemon.proc.poll() is None, rt.daemon.text()
    assert rt.daemon.proc.pid == pid
    r = rt.cli("list", "--json")
    assert r.returncode == 0, r.stderr


def drained(rt, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue(rt)["store"]["messages"] == 0:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def fakes():
    started = []

    def make(**kw):
        fb = FakeBroker(**kw).start()
        started.append(fb)
        return fb
    yield make
    for fb in started:
        fb.stop()


def run_chain(tmp_path, daemons, fakes, plan, count, rate, after=3):
    """One daemon against a fake broker whose successive connections follow
    plan (then behave). Returns (rt, broker, rss before, rss after)."""
    fb = fakes(after=after)
    fb.plan(*plan)
    rt = start(tmp_path, daemons, counter_up(count, rate=rate), fb_config(fb.port))
    pid = rt.daemon.proc.pid
    before = rss_kib(pid)
    # Every planned connection, then one that behaves and drains the store.
    assert fb.wait(lambda b: b.accepted > len(plan) and
                   set(range(count)) <= set(b.seqs()), timeout=60 + 12 * len(plan)), \
        (sorted(set(range(count)) - set(fb.seqs()))[:20], fb.events, rt.daemon.text())
    assert drained(rt), rt.daemon.text()
    alive(rt, pid)
    return rt, fb, before, rss_kib(pid)


def reconnect_delays(fb, text):
    """For each connection n that failed: (n, seconds from its fault to the
    next TCP connection, the step the daemon logged for that failure)."""
    with fb.lock:   # the next TCP connection is the reconnect
        connects = [t for t, _, w in fb.events if w.startswith("accept:")]
    by_conn = {}
    for t, n, what in fb.events:
        if what in ("fault", "cut", "stalled") or (what == "accept:refuse"):
            by_conn.setdefault(n, t)
    logged = steps(text)
    out = []
    for i, n in enumerate(sorted(by_conn)):
        later = [c for c in connects if c > by_conn[n]]
        if later and i < len(logged):
            out.append((n, later[0] - by_conn[n], logged[i]))
    return out


def test_cuts_mid_packet_lose_nothing(tmp_path, daemons, fakes):
    # Half a CONNACK, half a PUBACK (the PUBLISH it acknowledges is sent
    # again), a close right after accept.
    plan = ["cut_puback", "cut_connack", "refuse", "cut_puback"] * ROUNDS
    rt, fb, before, after = run_chain(tmp_path, daemons, fakes, plan, 150 * (6 + 4 * ROUNDS), 150)
    text = rt.daemon.text()
    delays = reconnect_delays(fb, text)
    assert len(delays) == len(plan), (delays, fb.events)
    for n, d, step in delays:
        assert d <= step + SLACK, f"connection {n}: reconnect {d:.2f} s after the cut, step {step} s"
    # A close after a partial packet is a close (or a reset when our
    # CONNECT was still unread): the partial bytes are never taken as a packet.
    assert len(steps(text)) == len(plan), text
    assert "malformed" not in text, text
    assert after < before + 16 * 1024 and after < 64 * 1024, (before, after)
    print(f"\ncuts: {len(plan)} faults, reconnect delays "
          f"{[round(d, 2) for _, d, _ in delays]} s for steps {[s for _, _, s in delays]} s, "
          f"RSS {before} -> {after} KiB, duplicates {len(fb.seqs()) - len(set(fb.seqs()))}")


MALFORMED_KINDS = sorted(MALFORMED)


def test_malformed_packets_disconnect_and_reconnect(tmp_path, daemons, fakes):
    plan = [f"malformed:{k}" for k in MALFORMED_KINDS] * ROUNDS
    rt, fb, before, after = run_chain(tmp_path, daemons, fakes, plan, 2000, 200)
    text = rt.daemon.text()
    delays = reconnect_delays(fb, text)
    assert len(delays) == len(plan), (delays, fb.events)
    for (n, d, step), kind in zip(delays, plan):
        assert d <= step + SLACK, f"{kind}: reconnect {d:.2f} s after the fault, step {step} s"
    # Every one is named as what it is in the log.
    assert text.count("malformed packet from the broker") + text.count("CONNACK out of place") \
        + text.count("packet larger than") == len(plan), text
    assert after < before + 16 * 1024 and after < 64 * 1024, (before, after)
    print(f"\nmalformed: {len(plan)} faults, max reconnect delay "
          f"{max(d for _, d, _ in delays):.2f} s (step {MIN_MS / 1000} s), "
          f"RSS {before} -> {after} KiB")


def test_a_puback_for_an_unknown_id_is_ignored(tmp_path, daemons, fakes):
    fb = fakes(after=3)
    fb.plan("malformed:puback_unknown")
    rt = start(tmp_path, daemons, counter_up(300, rate=100), fb_config(fb.port))
    try:
        assert fb.wait(lambda b: b.event_times("fault"), timeout=20), rt.daemon.text()
        assert fb.wait(lambda b: set(range(300)) <= set(b.seqs()), timeout=30), rt.daemon.text()
        # Harmless: the same connection goes on.
        assert len(fb.event_times("connect")) == 1, fb.events
        assert "again in about" not in rt.daemon.text()
        assert "puback_unknown" in HARMLESS
    finally:
        pass


def test_stalled_brokers_are_detected_and_left(tmp_path, daemons, fakes):
    # A broker that never answers CONNECT (the connect timeout), then one
    # that stops reading and answering once online (the keepalive: no
    # answer for 1.5 keepalives).
    plan = ["stall_read", "stall_connect"] * ROUNDS
    rt, fb, before, after = run_chain(tmp_path, daemons, fakes, plan, 50 * (4 + 24 * ROUNDS), 50)
    text = rt.daemon.text()
    delays = reconnect_delays(fb, text)
    assert len(delays) == len(plan), (delays, fb.events)
    for (n, d, step), mode in zip(delays, plan):
        detect = CONNECT_TIMEOUT if mode == "stall_connect" else 1.5 * KEEPALIVE + 1
        assert d <= detect + step + SLACK, f"{mode}: next connect {d:.2f} s after the stall"
    assert text.count("mqtt timed out") == ROUNDS, text
    assert text.count("no answer for") == ROUNDS, text
    assert after < before + 16 * 1024 and after < 64 * 1024, (before, after)
    print(f"\nstalls: detected and reconnected after {[round(d, 2) for _, d, _ in delays]} s "
          f"(connect timeout {CONNECT_TIMEOUT} s, keepalive {KEEPALIVE} s), RSS {before} -> {after} KiB")


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")
def test_broker_restarts_lose_nothing(tmp_path, daemons, pki):  # noqa: F811
    restarts = 10 if LONG else 3
    count = 3000 if not LONG else 12000
    broker = Broker(tmp_path, pki).start()
    sub = Subscriber(broker, ca=str(pki / "ca.pem"))
    try:
        cfg = dict(FAST_CONFIG, deviceId="dev1", upstream={
            "protocol": "mqtt", "host": "localhost", "port": broker.port, "tls": True,
            "caFile": str(pki / "ca.pem"), "keepAliveSecs": KEEPALIVE,
            "reconnectMinMs": MIN_MS, "reconnectMaxMs": MAX_MS})
        rt = start(tmp_path, daemons, counter_up(count, rate=count // (2 * restarts + 2)), cfg)
        pid = rt.daemon.proc.pid
        assert rt.daemon.wait_for("upstream: online"), rt.daemon.text()
        before = rss_kib(pid)
        delays = []
        for i in range(restarts):
            sub.wait(1)
            broker.stop()
            time.sleep(1.5)   # the broker is down: the backoff grows
            broker.start()
            cleared = time.monotonic()
            text = rt.daemon.text()
            step, online = steps(text)[-1], text.count("upstream: online")
            assert rt.daemon.wait_for("upstream: online", count=online + 1, timeout=step + 30), text
            delays.append((time.monotonic() - cleared, step))
            assert delays[-1][0] <= step + SLACK, (i, delays, rt.daemon.text())
            alive(rt, pid)
        assert sub.wait(count, timeout=90) >= count, rt.daemon.text()
        assert set(range(count)) <= set(sub.seqs())
        assert drained(rt), rt.daemon.text()
        after = rss_kib(pid)
        assert after < before + 16 * 1024 and after < 64 * 1024, (before, after)
        print(f"\nrestarts: {restarts}, reconnect delay after the broker came back / step: "
              f"{[(round(d, 2), s) for d, s in delays]} s, RSS {before} -> {after} KiB, "
              f"received {len(sub.seqs())} for {count} ({len(sub.seqs()) - count} duplicates)")
    finally:
        try:
            sub.stop()
        except OSError:   # paho's own TLS teardown after restarts (ssl.SSLError)
            pass
        broker.stop()
