"""The offline store: $upstream messages in LMDB, through real daemons,
kill -9, a full disk and a corrupt file."""
import json
import os
import random
import signal
import subprocess
import time

import pytest

from conftest import BIN, FAST_CONFIG, Runtime, manifest, run, write_json
from test_messages import builtin, deploy, list_doc, sink_final


def up_route(source="/messages/*", where="", **extra):
    return {"route": f"FROM {source} {where} INTO $upstream", **extra}


def queue(rt):
    r = rt.cli("queue", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def peek(rt, endpoint="$upstream", limit=1000000):
    r = rt.cli("queue", "peek", endpoint, "--limit", str(limit), timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["records"]


def start(tmp_path, daemons, doc, config=None):
    rt = Runtime.__new__(Runtime)
    rt.tmp, rt.state = tmp_path, tmp_path / "state"
    rt.config = write_json(tmp_path, "config.json", config or FAST_CONFIG)
    rt.deployment = write_json(tmp_path, "deployment.json", doc)
    rt.daemon = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                        "--state-dir", str(rt.state))
    assert rt.daemon.wait_for("agent: ready"), rt.daemon.text()
    return rt


def test_upstream_messages_are_stored_by_priority_then_order(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "counter": builtin("counter", "--count", "1000", restart="never"),
    }, {
        "even": up_route(where="WHERE as_number(seq) % 2 = 0", priority=1),
        "odd": up_route(where="WHERE as_number(seq) % 2 = 1", priority=5),
    })
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 1000, what="counter done")
    deadline = time.monotonic() + 20
    while queue(rt)["upstream"]["committed"] < 1000 and time.monotonic() < deadline:
        time.sleep(0.05)
    q = queue(rt)
    assert q["store"]["ok"] and q["upstream"] == {"accepted": 1000, "committed": 1000,
                                                 "failed": 0, "dropped": 0}
    rows = {r["priority"]: r for r in q["queues"] if r["endpoint"] == "$upstream"}
    assert rows[1]["messages"] == 500 and rows[5]["messages"] == 500
    assert q["store"]["storeBytesWritten"] >= rows[1]["bytes"] + rows[5]["bytes"]
    recs = peek(rt)
    seqs = [int(r["properties"]["seq"]) for r in recs]
    assert seqs == list(range(0, 1000, 2)) + list(range(1, 1000, 2))
    assert recs[0]["connectionModuleId"] == "counter" and recs[0]["outputName"] == "output1"
    assert recs[0]["body"].startswith('{"seq":0,')
    text = rt.cli("queue")
    assert text.returncode == 0 and "$upstream: 1000 accepted, 1000 committed" in text.stdout
    # Purge empties the queue; the counts say so.
    assert rt.cli("queue", "purge", "$upstream").returncode == 0
    deadline = time.monotonic() + 20
    while sum(r["messages"] for r in queue(rt)["queues"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sum(r["purged"] for r in queue(rt)["queues"]) == 1000
    bad = rt.cli("queue", "peek", "nowhere")
    assert bad.returncode == 2 and "no such endpoint" in bad.stderr


def test_store_survives_restarts_and_kill_9_loses_no_committed_message(tmp_path):
    """kill -9 the daemon 50 times while a counter streams to $upstream:
    every run's stored messages are 0..k with no hole (commits are in
    order, so a hole would be a lost committed message)."""
    state = tmp_path / "state"
    cfg = write_json(tmp_path, "config.json", FAST_CONFIG)
    dep = write_json(tmp_path, "deployment.json", manifest({
        "counter": builtin("counter", "--rate", "3000", "--size", "32", restart="never"),
    }, {"up": up_route()}))
    rng = random.Random(42)
    for i in range(50):
        log = open(tmp_path / "daemon.log", "ab")
        p = subprocess.Popen([BIN, "run", "-c", str(cfg), "-m", str(dep), "--state-dir", str(state)],
                             stdout=log, stderr=log)
        time.sleep(0.15 + rng.random() * 0.25)
        p.kill()
        p.wait(timeout=30)
        log.close()
    # The last run: no producer, a clean stop.
    quiet = write_json(tmp_path, "quiet.json", manifest({}, {"up": up_route()}))
    p = subprocess.Popen([BIN, "run", "-c", str(cfg), "-m", str(quiet), "--state-dir", str(state)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while not (state / "control.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        r = run("queue", "peek", "$upstream", "--limit", "1000000", "--state-dir", str(state),
                timeout=120)
        assert r.returncode == 0, r.stderr
        recs = json.loads(r.stdout)["records"]
        q = json.loads(run("queue", "--json", "--state-dir", str(state)).stdout)
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)
    seqs = [int(rec["properties"]["seq"]) for rec in recs]
    assert len(seqs) > 1000, len(seqs)
    runs, cur = [], []
    for s in seqs:
        if s == 0 and cur:
            runs.append(cur)
            cur = []
        cur.append(s)
    runs.append(cur)
    holes = [r for r in runs if r != list(range(len(r)))]
    assert not holes, [(r[:3], len(r)) for r in holes]
    assert len(runs) >= 40, len(runs)   # nearly every run committed something
    assert q["store"]["messages"] == len(seqs)
    assert q["store"]["staleReaders"] >= 0


def test_expired_messages_are_never_handed_out_and_are_removed(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "counter": builtin("counter", "--count", "100", restart="never"),
    }, {"short": up_route(timeToLiveSecs=1), })
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 100, what="counter done")
    time.sleep(1.5)
    assert peek(rt) == []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        q = queue(rt)
        if q["store"]["expired"] == 100:
            break
        time.sleep(0.2)
    assert q["store"]["expired"] == 100 and q["store"]["messages"] == 0, q


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.decode()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)])


def test_a_full_disk_evicts_and_module_traffic_goes_on(tmp_path, daemons, small_fs):
    config = dict(FAST_CONFIG, storeAndForward={"path": str(small_fs / "store")})
    doc = manifest({
        "sink": builtin("sink", order=1),
        "flood": builtin("counter", "--count", "20000", "--size", "1000", order=2, restart="never"),
        "counter": builtin("counter", "--count", "20000", order=2, restart="never"),
    }, {
        "up": up_route("/messages/modules/flood/*"),
        "c2s": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
    })
    rt = start(tmp_path, daemons, doc, config)
    rt.wait(lambda m: m["flood"].get("messagesOut", 0) >= 20000 and
            m["sink"].get("messagesIn", 0) >= 20000, timeout=60, what="both streams done")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        q = queue(rt)
        if q["store"]["pendingBytes"] == 0 and q["store"]["evicted"] > 0:
            break
        time.sleep(0.2)
    assert q["store"]["ok"] and q["store"]["evicted"] > 0, q
    assert q["store"]["fileBytes"] <= 1 << 20
    assert rt.daemon.proc.poll() is None
    assert rt.cli("stop", "sink").returncode == 0
    assert sink_final(rt) == (20000, 0, 0, 0)
    # What is kept is the newest, in order.
    seqs = [int(r["properties"]["seq"]) for r in peek(rt)]
    assert seqs and seqs == sorted(seqs) and seqs[-1] == 19999


def test_a_corrupt_store_leaves_the_daemon_running_without_it(tmp_path, daemons):
    store = tmp_path / "state" / "store"
    store.mkdir(parents=True)
    (store / "data.mdb").write_bytes(os.urandom(64 * 1024))
    doc = manifest({
        "sink": builtin("sink", order=1),
        "counter": builtin("counter", "--count", "500", order=2, restart="never"),
    }, {
        "up": up_route(),
        "c2s": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
    })
    rt = start(tmp_path, daemons, doc)
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 500, what="module traffic")
    doc_list = list_doc(rt)
    assert doc_list["store"]["ok"] is False
    assert str(store / "data.mdb") in doc_list["store"]["error"]
    assert "running without the store" in rt.daemon.text()
    q = queue(rt)
    assert q["upstream"]["dropped"] == 500
    text = rt.cli("queue")
    assert "store: NOT AVAILABLE: " in text.stdout
    rt.daemon.stop()
    r = run("check", "-c", str(rt.config), "-m", str(rt.deployment), "--state-dir", str(rt.state))
    assert r.returncode == 2 and str(store / "data.mdb") in r.stderr, r.stderr


def test_messages_for_a_stopped_module_outlive_the_queue_and_the_daemon(tmp_path, daemons):
    """3000 x 4 KiB for a stopped sink: 4 MiB wait in memory, the rest in
    the store; a daemon restart keeps all of them; the sink then gets every
    one, in order."""
    doc = manifest({
        "sink": builtin("sink", order=1, status="stopped", ringBytes=65536),
        "counter": builtin("counter", "--count", "3000", "--size", "4096", order=2,
                           restart="never"),
    }, {"c2s": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/sink/inputs/in")'})
    rt = start(tmp_path, daemons, doc)
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 3000, what="counter done")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = [r for r in queue(rt)["queues"] if r["endpoint"] == "/modules/sink"]
        if rows and rows[0]["messages"] > 0 and queue(rt)["store"]["pendingBytes"] == 0:
            break
        time.sleep(0.1)
    in_store = rows[0]["messages"]
    assert 0 < in_store < 3000
    assert routes_by_name_dropped(rt) == 0
    # Restart the daemon: the counter must not run again.
    rt.daemon.stop()
    doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]["counter"]["status"] = "stopped"
    rt.deployment.write_text(json.dumps(doc))
    rt.daemon = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                        "--state-dir", str(rt.state))
    assert rt.daemon.wait_for("agent: ready"), rt.daemon.text()
    assert "3000 messages waiting in the store" in rt.daemon.text()
    assert rt.cli("start", "sink").returncode == 0
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 3000, timeout=60, what="all delivered")
    assert rt.cli("stop", "sink").returncode == 0
    assert sink_final(rt) == (3000, 0, 0, 0)
    rows = [r for r in queue(rt)["queues"] if r["endpoint"] == "/modules/sink"]
    assert sum(r["messages"] for r in rows) == 0


def routes_by_name_dropped(rt):
    return sum(r["dropped"] for r in list_doc(rt)["routes"])
