"""Soak: mixed traffic for TE_SOAK_SECS (default 60; TE_LONG=1: 1800) —
a counter to $upstream and to a sink (module to module), a simulated
sensor through the filter to $upstream, a module that crashes every two
seconds (restartPolicy always) — while, in turn, a module is restarted,
the broker goes away and comes back (reconnects, an offline backlog), a
twin patch and a direct method arrive, and the deployment is reloaded
(SIGHUP, one module changed). The daemon's VmRSS, RssAnon and open fds
are sampled every few seconds; after a warm-up a least-squares slope is
fitted. RssAnon (the heap: a leak shows there) must be flat and the fd
count must not grow; VmRSS also counts the store's mapped file pages,
which follow the backlog, so it is reported, not bounded."""
import json
import os
import signal
import time

import pytest

from conftest import FAST_CONFIG, Runtime, manifest, sh_module
from test_crash import figures
from test_messages import builtin
from test_upstream import MOSQUITTO, Broker, Subscriber

LONG = os.environ.get("TE_LONG") == "1"
SECS = int(os.environ.get("TE_SOAK_SECS", 1800 if LONG else 60))
WARMUP = max(15, SECS // 6)
EVERY = 2 if SECS <= 120 else 10      # sampling period
ACT_EVERY = 3                         # one action every 3 s

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")


def sample(pid):
    status = open(f"/proc/{pid}/status").read()

    def kib(key):
        return int(status.split(key + ":")[1].split()[0])
    return kib("VmRSS"), kib("RssAnon"), len(os.listdir(f"/proc/{pid}/fd"))


def slope(points):
    """Least-squares slope of [(t_s, v)] in units per minute."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return 60 * sum((t - mt) * (v - mv) for t, v in points) / var if var else 0.0


def modules(rate):
    return {
        "sink": builtin("sink", order=1),
        "filter": builtin("filter", order=1),
        "counter": builtin("counter", "--rate", str(rate), "--size", "200", order=2),
        "sensor": builtin("sim-sensor", order=2, env={"INTERVAL_MS": "20"}),
        "crasher": sh_module("sleep 2; exit 3"),
    }


ROUTES = {
    "c2up": "FROM /messages/modules/counter/* INTO $upstream",
    "c2s": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
    "s2f": 'FROM /messages/modules/sensor/* INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
    "f2up": "FROM /messages/modules/filter/* INTO $upstream",
}


def test_rss_and_fds_stay_flat_under_mixed_traffic_and_faults(tmp_path, daemons):
    broker = Broker(tmp_path).start()
    sub = Subscriber(broker)
    cfg = dict(FAST_CONFIG, deviceId="dev1", upstream={
        "protocol": "mqtt", "host": "127.0.0.1", "port": broker.port, "tls": False,
        "keepAliveSecs": 5})
    rt = Runtime(tmp_path, daemons, {}, config=cfg)
    rate = 200
    rt.deployment.write_text(json.dumps(manifest(modules(rate), ROUTES)))
    rt.daemon.signal(signal.SIGHUP)
    rt.wait_status("counter", "running")
    pid = rt.daemon.proc.pid
    samples, acts, failures = [], {}, []
    received = []
    t0 = time.monotonic()
    next_sample = next_act = t0
    k = 0
    try:
        while time.monotonic() - t0 < SECS:
            now = time.monotonic()
            assert rt.daemon.proc.poll() is None, rt.daemon.text()[-3000:]
            if now >= next_sample:
                samples.append((now - t0, *sample(pid)))
                next_sample += EVERY
            if now >= next_act:
                what = ("restart", "twin", "method", "broker-down", "broker-up", "reload")[k % 6]
                acts[what] = acts.get(what, 0) + 1
                if what == "restart":
                    r = rt.cli("restart", "counter")
                elif what == "twin":
                    r = rt.cli("twin", "filter", "--desired",
                               json.dumps({"TemperatureThreshold": 20 + k % 10}))
                elif what == "method":
                    r = rt.cli("call", "sink", "ping", json.dumps({"k": k}), "--timeout", "10")
                elif what == "broker-down":
                    received.append(len(sub.msgs))
                    sub.stop()
                    broker.stop()
                    r = None
                elif what == "broker-up":
                    broker.start()
                    sub = Subscriber(broker)
                    r = None
                else:
                    rate = 500 - rate      # 200 <-> 300: the counter is restarted
                    rt.deployment.write_text(json.dumps(manifest(modules(rate), ROUTES)))
                    rt.daemon.signal(signal.SIGHUP)
                    r = None
                if r is not None and r.returncode:
                    failures.append((what, r.returncode, r.stderr))
                k += 1
                next_act += ACT_EVERY
            time.sleep(0.1)
        mods = rt.modules()
    finally:
        if sub:
            received.append(len(sub.msgs))
            sub.stop()
        broker.stop()
    after = [s for s in samples if s[0] >= WARMUP]
    rss_slope = slope([(s[0], s[1]) for s in after])
    anon_slope = slope([(s[0], s[2]) for s in after])
    fd_slope = slope([(s[0], s[3]) for s in after])
    half = len(after) // 2
    figs = {"secs": SECS, "warmupSecs": WARMUP, "samples": len(after), "actions": acts,
            "rssKiBPerMin": round(rss_slope, 1), "rssMinKiB": min(s[1] for s in after),
            "rssMaxKiB": max(s[1] for s in after),
            "rssAnonKiBPerMin": round(anon_slope, 1), "rssAnonMinKiB": min(s[2] for s in after),
            "rssAnonMaxKiB": max(s[2] for s in after),
            "fdsPerMin": round(fd_slope, 2), "fdsMin": min(s[3] for s in after),
            "fdsMax": max(s[3] for s in after),
            "crasherRestarts": mods["crasher"].get("restartCount"),
            "sinkIn": mods["sink"].get("messagesIn"), "upstreamReceived": sum(received)}
    figures("soak", figs)
    assert not failures, failures
    assert len(after) >= 10, figs
    # The traffic and the faults happened.
    assert figs["upstreamReceived"] > 0 and figs["sinkIn"] > 0, figs
    assert acts.get("broker-up", 0) >= 1, figs
    # Flat: a leak of one allocation per message or per reconnect would be
    # far above these bounds; a bounded cache filling up would not.
    anon_bound = 16 if SECS >= 1200 else 256
    assert anon_slope < anon_bound, figs
    assert max(s[2] for s in after[half:]) <= max(s[2] for s in after[:half]) + 256, figs
    assert max(s[3] for s in after[half:]) <= max(s[3] for s in after[:half]) + 4, figs
