"""Power cuts: the store on faultfs (test/faultfs/faultfs.c), a FUSE layer
that keeps every write not yet made durable by fsync/fdatasync/O_DSYNC in
memory only. Each cycle: mount, start the daemon with a producer streaming
to $upstream (offline), sample what it reports committed, "cut the power"
(faultfs throws away every unsynced page — or, in the `some` and `torn`
modes, writes back a random subset of them, some cut short at a 512-byte
sector boundary, since a kernel may have written back any of its dirty pages
before the power went), kill -9 the daemon and its modules, unmount (the
kernel's cache of the mount goes with it), mount again. At the end every
record reported committed before a cut must be in the store, readable, and
the store must have opened every time.

What this proves: LMDB's commit as the store uses it (data pages, fdatasync,
then the meta page O_DSYNC) does not depend on any write that was not synced
— the page cache of a dead machine is gone here, not just a process. What
it does not prove: that the disk honours a flush (a drive that lies about
its write cache, or a flash controller that loses acknowledged data, is
outside any software test), and metadata operations (create, mkdir,
truncate) are durable at once in faultfs.

TE_LONG=1: 60 cuts instead of 10."""
import os
import random
import signal
import subprocess
import time

import json
import pytest

from conftest import BIN, FAST_CONFIG, ROOT, manifest, run, write_json
from test_crash import (figures, queue_doc, reap_strays, sample_until, set_subreaper, tagged,
                        wait_ready)
from test_messages import builtin

LONG = os.environ.get("TE_LONG") == "1"
CUTS = 60 if LONG else 10
MODES = ("drop", "some", "torn")
FAULTFS_SRC = os.path.join(ROOT, "test", "faultfs", "faultfs.c")
FAULTFS = os.path.join(ROOT, "build", "faultfs", "faultfs")


@pytest.fixture(scope="module")
def faultfs():
    """build/faultfs/faultfs, built here with gcc and pkg-config fuse3 (a test
    tool: it is no part of the shipped binary)."""
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "fuse3"], capture_output=True,
                           text=True)
    if flags.returncode:
        pytest.skip("no fuse3 development files (libfuse3-dev): make prereqs-test")
    if not os.path.exists(FAULTFS) or os.path.getmtime(FAULTFS) < os.path.getmtime(FAULTFS_SRC):
        os.makedirs(os.path.dirname(FAULTFS), exist_ok=True)
        r = subprocess.run(["gcc", "-std=gnu11", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
                            "-Wno-unused-parameter", FAULTFS_SRC, "-o", FAULTFS,
                            *flags.stdout.split()], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    return FAULTFS


class Mount:
    """One faultfs over backing at mnt; its counters go to log (a JSON line
    per mount, written at unmount)."""

    def __init__(self, exe, backing, mnt, log):
        self.exe, self.backing, self.mnt, self.log = exe, backing, mnt, log

    def __enter__(self):
        self.proc = subprocess.Popen([self.exe, str(self.backing), str(self.mnt), str(self.log)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while not os.path.ismount(self.mnt):
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.monotonic() < deadline, "faultfs did not mount"
            time.sleep(0.02)
        return self

    def cut(self, mode, seed):
        with open(self.mnt / ".faultfs", "w") as f:
            f.write(f"cut {mode} {seed}")

    def __exit__(self, *exc):
        r = subprocess.run(["umount", str(self.mnt)], capture_output=True, text=True)
        if r.returncode:
            subprocess.run(["umount", "-l", str(self.mnt)])
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        assert r.returncode == 0, r.stderr


def canary(mnt, name, sync):
    fd = os.open(mnt / name, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, b"x" * 10000)
    if sync:
        os.fdatasync(fd)
    os.close(fd)


def start_daemon(tmp_path, state, cfg, dep, i):
    log = tmp_path / "logs" / f"run-{i:03d}.log"
    with open(log, "w") as f:
        p = subprocess.Popen([BIN, "run", "-c", str(cfg), "-m", str(dep), "--state-dir", str(state)],
                             stdout=f, stderr=subprocess.STDOUT)
    assert wait_ready(log, p), log.read_text()
    return p, log


def test_power_cuts_lose_no_committed_message(tmp_path, faultfs):
    (tmp_path / "logs").mkdir()
    backing, mnt, state = tmp_path / "disk", tmp_path / "mnt", tmp_path / "state"
    backing.mkdir()
    mnt.mkdir()
    fslog = tmp_path / "faultfs.log"
    cfg = write_json(tmp_path, "config.json", dict(
        FAST_CONFIG, storeAndForward={"path": str(mnt / "store")}))
    route = {"up": {"route": "FROM /messages/* INTO $upstream"}}
    tag = f"pcut{os.getpid()}"
    rng = random.Random(7)
    committed, store_failures = {}, []
    set_subreaper(True)
    try:
        for i in range(CUTS):
            name = f"q{i:03d}"
            dep = write_json(tmp_path, "deployment.json", manifest({name: builtin(
                "counter", "--rate", "2000", "--size", "100", "--tag", f"{tag}-{i}",
                restart="never")}, route))
            with Mount(faultfs, backing, mnt, fslog) as m:
                p, log = start_daemon(tmp_path, state, cfg, dep, i)
                committed[name], _ = sample_until(
                    p, log, state, time.monotonic() + rng.uniform(0.2, 0.8), i, store_failures)
                if i == 0:      # the control: a cut does lose unsynced data
                    canary(mnt, "synced", True)
                    canary(mnt, "unsynced", False)
                m.cut(MODES[i % len(MODES)], i + 1)
                p.kill()        # the machine is dead: the daemon and its modules
                for pid in tagged(tag):
                    os.kill(pid, signal.SIGKILL)
                p.wait(timeout=30)
                deadline = time.monotonic() + 10
                while tagged(tag) and time.monotonic() < deadline:
                    time.sleep(0.02)
                reap_strays({p.pid})
            if i == 0:
                assert (backing / "synced").read_bytes() == b"x" * 10000
                assert (backing / "unsynced").read_bytes() == b""
        # Boot once more: read everything back, then a clean stop.
        with Mount(faultfs, backing, mnt, fslog):
            dep = write_json(tmp_path, "deployment.json", manifest({}, route))
            p, log = start_daemon(tmp_path, state, cfg, dep, CUTS)
            try:
                q = queue_doc(state)
                r = run("queue", "peek", "$upstream", "--limit", "1000000", "--state-dir",
                        str(state), timeout=120)
                assert r.returncode == 0, r.stderr
                recs = json.loads(r.stdout)["records"]
            finally:
                p.send_signal(signal.SIGTERM)
                rc = p.wait(timeout=30)
            reap_strays(set())
        assert rc == 0, log.read_text()[-2000:]
    finally:
        set_subreaper(False)
    got = {}
    for rec in recs:
        got.setdefault(rec["connectionModuleId"], set()).add(int(rec["properties"]["seq"]))
    lost = {m: [s for s in range(c) if s not in got.get(m, ())] for m, c in committed.items()}
    lost = {m: v for m, v in lost.items() if v}
    mounts = [json.loads(line) for line in fslog.read_text().splitlines()]
    cuts = [c for c in mounts if c["cuts"]]
    figs = {"cuts": len(cuts), "modes": list(MODES),
            "cutsThatLostData": sum(1 for c in cuts if c["cutDroppedPages"] + c["cutTornPages"]),
            "unsyncedWritesAtCuts": sum(c["cutWrites"] for c in cuts),
            "droppedPages": sum(c["cutDroppedPages"] for c in cuts),
            "droppedBytes": sum(c["cutDroppedBytes"] for c in cuts),
            "appliedPages": sum(c["cutAppliedPages"] for c in cuts),
            "tornPages": sum(c["cutTornPages"] for c in cuts),
            "fsyncs": sum(c["fsyncs"] for c in mounts),
            "committedBeforeCuts": sum(committed.values()), "recordsAfter": len(recs),
            "lost": sum(len(v) for v in lost.values()),
            "storeOpenFailures": len(store_failures) + (0 if q["store"]["ok"] else 1)}
    figures("powercut", figs)
    assert q["store"]["ok"], q
    assert not store_failures, store_failures
    assert len(cuts) == CUTS, mounts
    assert not lost, {m: (len(v), v[:5]) for m, v in lost.items()}
    assert q["store"]["messages"] == len(recs)
    # The cuts did cut something: unsynced data was there to lose.
    assert figs["cutsThatLostData"] >= CUTS // 2, figs
    assert sum(committed.values()) > 0
