"""Crash faults: kill -9 the daemon again and again while a producer streams
to $upstream (a mosquitto broker that is up part of the time), then drain
everything to a persistent subscriber.

The commit point: the daemon counts a put "committed" (`tinyedge queue
--json`, upstream.committed) only after the store's writer thread has
committed it durably (fdatasync, then the meta page). With one producer and
one route the puts are committed in the producer's order, so a sample C of
that counter taken before the kill says: seq 0..C-1 of this run are
committed. Every run's producer is a differently named module (p000,
p001, ...: the topic names it), so each run's committed range can be
checked on its own. Duplicates are allowed (at-least-once), gaps among the
committed ones are not.

Orphans: every module carries `--tag crashPID-RUN` in its argv; once the
next daemon says "agent: ready" (it reaps the previous run's cgroups
before), no live process of an older run may be left. The test process is
a child subreaper while it runs, so the killed daemons' modules reparent
to it (this container's pid 1 does not reap) and it reaps them as init
would. Zombies: children of a live daemon that stay unreaped.

TE_LONG=1: 200 kills across >= 50,000 messages (bounded: 25 min)."""
import ctypes
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import BIN, FAST_CONFIG, ROOT, manifest, run, write_json, zombies_of
from test_messages import builtin
from test_upstream import MOSQUITTO, Broker, Subscriber

LONG = os.environ.get("TE_LONG") == "1"
KILLS = 200 if LONG else 20
TARGET = 50000 if LONG else 6000
TIME_CAP = 1500 if LONG else 75         # seconds for the kill phase
PR_SET_CHILD_SUBREAPER = 36

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")


def set_subreaper(on):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0


def figures(name, doc):
    """Print the figures and keep them in build/figures/NAME.json."""
    d = os.path.join(ROOT, "build", "figures")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"\n{name}: {json.dumps(doc)}")


def tagged(tag):
    """{pid: run} of live processes whose argv has `tag-RUN`."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        for a in args:
            if a.startswith(tag.encode() + b"-"):
                found[int(pid)] = int(a[len(tag) + 1:])
    return found


def reap_strays(keep):
    """Reap our zombie children that are not in keep (the killed daemons'
    modules, reparented to us); how many."""
    n = 0
    for z in zombies_of(os.getpid()):
        if z not in keep:
            try:
                os.waitpid(z, os.WNOHANG)
                n += 1
            except ChildProcessError:
                pass
    return n


def queue_doc(state):
    r = run("queue", "--json", "--state-dir", str(state), timeout=30)
    return json.loads(r.stdout) if r.returncode == 0 else None


class Collector:
    """Subscribers (one persistent session) while the broker is up; every
    message any of them got."""

    def __init__(self, broker):
        self.broker, self.sub, self.msgs = broker, None, []

    def up(self):
        if not self.sub:
            self.broker.start()
            self.sub = Subscriber(self.broker)

    def down(self):
        if self.sub:
            self.sub.stop()
            with self.sub.lock:
                self.msgs += self.sub.msgs
            self.sub = None
            self.broker.stop()

    def count(self):
        return len(self.msgs) + (len(self.sub.msgs) if self.sub else 0)


def sample_until(p, log, state, deadline, run_no, store_failures):
    """Read `queue --json` until deadline (at least once) while the daemon p
    lives: the last (committed, accepted) of $upstream. A first answer that
    says the store did not open goes to store_failures."""
    first, last = True, (0, 0)
    while first or time.monotonic() < deadline:
        assert p.poll() is None, log.read_text()
        q = queue_doc(state)
        if q:
            if first and not q["store"]["ok"]:
                store_failures.append((run_no, q["store"]))
            first = False
            last = (q["upstream"]["committed"], q["upstream"]["accepted"])
    return last

def daemon(tmp_path, state, cfg, dep, i):
    log = open(tmp_path / "logs" / f"run-{i:03d}.log", "w")
    p = subprocess.Popen([BIN, "run", "-c", str(cfg), "-m", str(dep), "--state-dir", str(state)],
                         stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return p


def wait_ready(path, p, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and p.poll() is None:
        if "agent: ready" in path.read_text():
            return True
        time.sleep(0.01)
    return False


def test_kill_9_loses_no_committed_message_and_leaves_no_orphan(tmp_path):
    (tmp_path / "logs").mkdir()
    state = tmp_path / "state"
    broker = Broker(tmp_path)
    coll = Collector(broker)
    coll.up()          # create the persistent session, then start offline
    coll.down()
    cfg = write_json(tmp_path, "config.json", dict(
        FAST_CONFIG, deviceId="dev1", upstream={"protocol": "mqtt", "host": "127.0.0.1",
                                                "port": broker.port, "tls": False,
                                                "keepAliveSecs": 5}))
    route = {"up": {"route": "FROM /messages/* INTO $upstream"}}
    tag = f"crash{os.getpid()}"
    per_run = -(-TARGET // KILLS)
    rate = per_run * 4                      # a run's burst takes ~0.25 s
    rng = random.Random(10)
    committed, accepted = {}, {}
    orphans, zombies, reaped, store_failures, broker_runs = [], 0, 0, [], 0
    set_subreaper(True)
    t0 = time.monotonic()
    i = 0
    try:
        while (i < KILLS or sum(accepted.values()) < TARGET) and time.monotonic() - t0 < TIME_CAP:
            # The broker is up for 4 runs out of 8: acks and deletes race the kills too.
            if (i // 4) % 2:
                if not coll.sub:
                    broker_runs += 1
                coll.up()
            else:
                coll.down()
            name = f"p{i:03d}"
            dep = write_json(tmp_path, "deployment.json", manifest({name: builtin(
                "counter", "--rate", str(rate), "--count", str(per_run), "--size", "64",
                "--tag", f"{tag}-{i}", restart="never")}, route))
            p = daemon(tmp_path, state, cfg, dep, i)
            log = tmp_path / "logs" / f"run-{i:03d}.log"
            assert wait_ready(log, p), log.read_text()
            orphans += [(pid, r) for pid, r in tagged(tag).items() if r != i]
            reaped += reap_strays({p.pid})
            committed[name], accepted[name] = sample_until(
                p, log, state, time.monotonic() + rng.uniform(0.02, 0.45), i, store_failures)
            if zombies_of(p.pid):       # a child exiting just now is not one
                time.sleep(0.2)
                zombies += len(zombies_of(p.pid))
            p.kill()
            p.wait(timeout=30)
            i += 1
        kills = i
        kill_secs = time.monotonic() - t0
        # Drain: broker up, no producer, a clean stop at the end.
        coll.up()
        dep = write_json(tmp_path, "deployment.json", manifest({}, route))
        p = daemon(tmp_path, state, cfg, dep, i)
        log = tmp_path / "logs" / f"run-{i:03d}.log"
        assert wait_ready(log, p), log.read_text()
        orphans += [(pid, r) for pid, r in tagged(tag).items()]
        reaped += reap_strays({p.pid})
        deadline = time.monotonic() + (600 if LONG else 120)
        while time.monotonic() < deadline:
            q = queue_doc(state)
            if q and q["store"]["messages"] == 0 and q["store"]["pendingBytes"] == 0:
                break
            time.sleep(0.2)
        assert q["store"]["messages"] == 0, (q, log.read_text()[-3000:])
        final_store = q["store"]
        # Let the last PUBLISHes reach the subscriber.
        last, stable = -1, 0
        while stable < 5:
            n = coll.count()
            stable = stable + 1 if n == last else 0
            last = n
            time.sleep(0.2)
        zombies += len(zombies_of(p.pid))
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0, log.read_text()[-3000:]
        reaped += reap_strays(set())
    finally:
        set_subreaper(False)
        coll.down()
    got = {}
    for topic, payload in coll.msgs:
        mod = topic.split("/")[2]
        got.setdefault(mod, []).append(json.loads(payload[:payload.index(b"}") + 1])["seq"])
    lost = {m: [s for s in range(c) if s not in set(got.get(m, ()))] for m, c in committed.items()}
    lost = {m: v for m, v in lost.items() if v}
    received = sum(len(v) for v in got.values())
    unique = sum(len(set(v)) for v in got.values())
    figs = {"kills": kills, "killPhaseSecs": round(kill_secs, 1), "brokerUpPhases": broker_runs,
            "accepted": sum(accepted.values()), "committedBeforeKill": sum(committed.values()),
            "received": received, "unique": unique, "duplicates": received - unique,
            "lost": sum(len(v) for v in lost.values()), "orphans": len(orphans),
            "zombies": zombies, "reapedByTestInit": reaped,
            "storeOpenFailures": len(store_failures),
            "storeFailed": final_store["failed"], "storeEvicted": final_store["evicted"],
            "storeFileBytes": final_store["fileBytes"]}
    figures("crash", figs)
    assert not store_failures, store_failures
    assert not lost, {m: (len(v), v[:5]) for m, v in lost.items()}
    assert not orphans, orphans
    assert zombies == 0
    assert final_store["failed"] == 0 and final_store["evicted"] == 0, final_store
    assert kills >= KILLS, figs
    assert sum(committed.values()) >= TARGET // 2, figs
    # Nothing the subscriber got was invented: every seq below what was accepted.
    for m, v in got.items():
        assert max(v) < per_run and m in accepted, (m, max(v))
