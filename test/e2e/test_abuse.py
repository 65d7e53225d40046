"""Resource abuse: one abusive module (test/escape/abuse.c, built static at
test time, run from a directory image) per case, next to a well-behaved
pair (counter -> sink through a route). Each case: the abuser hits its own
limit and only it (the good modules keep their pids and their messages
keep flowing; the daemon answers), and the limits read back from the
kernel (cgroup v1/v2 files, /proc/PID/limits) equal the manifest."""
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BIN, ROOT, FAST_CONFIG, Runtime, manifest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("musl-gcc"),
    reason="needs root (namespaces, cgroups) and musl-gcc")

LIMITS = {"memoryBytes": 16 << 20, "pids": 16, "cpuPercent": 20, "nofile": 64}
ROUTE = 'FROM /messages/modules/counter/outputs/output1 INTO BrokeredEndpoint("/modules/sink/inputs/in")'


@pytest.fixture(scope="module")
def image():
    """A directory image with the abuser, reachable by the module's user."""
    top = tempfile.mkdtemp(prefix="te-abuse-", dir="/var/tmp")
    os.chmod(top, 0o755)
    tree = os.path.join(top, "tree")
    for sub in ("bin", "proc", "dev", "tmp", "data"):
        os.makedirs(os.path.join(tree, sub))
    os.chmod(os.path.join(tree, "data"), 0o1777)  # the module runs as nobody
    subprocess.run(["musl-gcc", "-static", "-O1", "-o", os.path.join(tree, "bin", "abuse"),
                    os.path.join(ROOT, "test", "escape", "abuse.c")], check=True)
    yield top, tree
    shutil.rmtree(top, ignore_errors=True)


def good(name, *args, order=0):
    return {"type": "native", "restartPolicy": "always", "startupOrder": order,
            "settings": {"image": BIN, "createOptions": {
                "args": ["module", name, *args], "stopTimeoutSecs": 2}}}


def abuser(tree, case, restart="never", **create):
    opts = {"args": ["/bin/abuse", case], "limits": dict(LIMITS), "stopTimeoutSecs": 2}
    opts.update(create)
    return {"type": "native", "restartPolicy": restart, "startupOrder": 1,
            "settings": {"image": tree, "createOptions": opts}}


def start(tmp, daemons, tree, case, **kw):
    modules = {"sink": good("sink"), "counter": good("counter", "--rate", "200"),
               "bad": abuser(tree, case, **kw)}
    doc = manifest(modules, {"c2s": ROUTE})
    rt = Runtime(tmp, daemons, {})
    rt.deployment.write_text(json.dumps(doc))
    rt.wait(lambda m: all(n in m and m[n]["pid"] for n in ("sink", "counter")) and
            m["sink"].get("messagesIn", 0) > 0, what="counter -> sink flowing")
    return rt


def report(rt, case, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        for line in rt.logs("bad").splitlines():
            if f'"case":"{case}"' in line:
                return json.loads(line[line.index("{"):])
        assert time.monotonic() < deadline, rt.logs("bad") + rt.daemon.text()
        time.sleep(0.1)


def cgroup_dir(pid, controller):
    """The mounted cgroup directory of pid for a v1 controller (or v2)."""
    for line in open(f"/proc/{pid}/cgroup"):
        _, ctls, rel = line.rstrip("\n").split(":", 2)
        if controller in ctls.split(","):
            for d in os.listdir("/sys/fs/cgroup"):
                if controller in d.split(","):
                    return f"/sys/fs/cgroup/{d}{rel}"
    for line in open(f"/proc/{pid}/cgroup"):  # v2
        if line.startswith("0::"):
            return "/sys/fs/cgroup" + line.rstrip("\n")[3:]
    raise AssertionError(f"no {controller} cgroup for {pid}")


def read(path):
    with open(path) as f:
        return f.read().strip()


def limits_read_back(pid):
    """The kernel's view of the module's limits, once it runs /bin/abuse (a
    pid in `list` may still be the sandbox child before exec, whose rlimits
    are not set yet: ValueError, read again)."""
    if read(f"/proc/{pid}/comm") != "abuse":
        raise ValueError(f"pid {pid} has not exec'd /bin/abuse yet")
    got = {}
    mem = cgroup_dir(pid, "memory")
    got["memoryBytes"] = int(read(f"{mem}/memory.limit_in_bytes") if os.path.exists(
        f"{mem}/memory.limit_in_bytes") else read(f"{mem}/memory.max"))
    got["pids"] = int(read(f"{cgroup_dir(pid, 'pids')}/pids.max"))
    cpu = cgroup_dir(pid, "cpu")
    if os.path.exists(f"{cpu}/cpu.cfs_quota_us"):
        quota, period = int(read(f"{cpu}/cpu.cfs_quota_us")), int(read(f"{cpu}/cpu.cfs_period_us"))
    else:
        q, p = read(f"{cpu}/cpu.max").split()
        quota, period = int(q), int(p)
    got["cpuPercent"] = quota * 100 // period
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            assert soft == hard, line
            got["nofile"] = int(soft)
    return got


def assert_limits(rt, timeout=20):
    """Read while it runs (the memory hog restarts every few ms: retry
    when its cgroup goes away under us)."""
    deadline = time.monotonic() + timeout
    while True:
        pid = rt.modules()["bad"]["pid"]
        try:
            got = limits_read_back(pid) if pid else None
        except (OSError, AssertionError, ValueError):
            got = None
        if got or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert got, rt.modules()
    print("limits read back:", got)
    assert got == LIMITS


def assert_others_fine(rt, before):
    """The good pair kept its pids and messages still arrive; the daemon
    answers."""
    n = rt.modules()["sink"]["messagesIn"]
    mods = rt.wait(lambda m: m["sink"]["messagesIn"] >= n + 100, what="100 more messages")
    assert {k: mods[k]["pid"] for k in ("sink", "counter")} == before
    assert mods["sink"]["restartCount"] == 0 and mods["counter"]["restartCount"] == 0
    assert rt.daemon.proc.poll() is None
    r = rt.cli("list")
    assert r.returncode == 0 and "sink" in r.stdout


def pids_of(rt):
    m = rt.modules()
    return {k: m[k]["pid"] for k in ("sink", "counter")}


def world_tmp(image):
    d = Path(tempfile.mkdtemp(dir=image[0]))
    d.chmod(0o755)
    return d


def test_fork_bomb(image, daemons):
    rt = start(world_tmp(image), daemons, image[1], "fork")
    before = pids_of(rt)
    got = report(rt, "fork")
    print(got)
    # pid 1 itself counts: at most pids - 1 children
    assert got["count"] <= LIMITS["pids"] - 1 and got["errno"] == 11  # EAGAIN
    pids = int(read(f"{cgroup_dir(rt.modules()['bad']['pid'], 'pids')}/pids.current"))
    assert pids <= LIMITS["pids"]
    assert_limits(rt)
    assert_others_fine(rt, before)


def test_memory_hog(image, daemons):
    rt = start(world_tmp(image), daemons, image[1], "mem", restart="on-failure")
    before = pids_of(rt)
    assert_limits(rt)
    # killed by the OOM killer and restarted by its policy
    mods = rt.wait(lambda m: m["bad"]["restartCount"] >= 1, timeout=30, what="OOM restart")
    print(mods["bad"])
    mib = [json.loads(l[l.index("{"):])["mib"] for l in rt.logs("bad").splitlines()
           if '"case":"mem"' in l]
    assert mib and max(mib) <= LIMITS["memoryBytes"] >> 20
    # the crash records say why (the status moves on as it restarts)
    crashes = [p.read_text() for p in (rt.state / "crash").glob("bad-*")]
    assert crashes and all("out of memory" in c for c in crashes), crashes
    assert_others_fine(rt, before)


def test_fd_flood(image, daemons):
    rt = start(world_tmp(image), daemons, image[1], "fd")
    before = pids_of(rt)
    got = report(rt, "fd")
    print(got)
    assert got["errno"] == 24 and got["count"] < LIMITS["nofile"]  # EMFILE
    assert_limits(rt)
    assert_others_fine(rt, before)


def cpu_usec(pid):
    d = cgroup_dir(pid, "cpuacct")
    return int(read(f"{d}/cpuacct.usage")) / 1000 if os.path.exists(f"{d}/cpuacct.usage") \
        else int(read(f"{cgroup_dir(pid, 'cpu')}/cpu.stat").split()[1])


def test_cpu_spin(image, daemons):
    rt = start(world_tmp(image), daemons, image[1], "spin")
    before = pids_of(rt)
    report(rt, "spin")
    pid = rt.modules()["bad"]["pid"]
    t0, u0 = time.monotonic(), cpu_usec(pid)
    time.sleep(3)
    t1, u1 = time.monotonic(), cpu_usec(pid)
    share = (u1 - u0) / 1e6 / (t1 - t0)
    print(f"spinner's CPU share over {t1 - t0:.1f} s: {share:.3f} (limit 0.20)")
    # an upper bound with slack (quota is per 100 ms period): two spinners
    # would take up to 2.0 unlimited
    assert share <= 0.30
    assert_limits(rt)
    assert_others_fine(rt, before)


def test_disk_fill(image, daemons):
    wb = 1 << 20
    rt = start(world_tmp(image), daemons, image[1], "disk", writable="tmpfs", writableBytes=wb)
    before = pids_of(rt)
    st_before = os.statvfs(rt.state)
    got = report(rt, "disk")
    print(got)
    assert got["errno"] == 28 and 0 < got["bytes"] <= wb  # ENOSPC
    st_after = os.statvfs(rt.state)
    # the state dir's filesystem did not take the module's bytes (slack:
    # other tests write there too)
    assert st_before.f_bavail * st_before.f_frsize - st_after.f_bavail * st_after.f_frsize < wb // 2 \
        or st_after.f_bavail * st_after.f_frsize > 64 * wb
    assert_limits(rt)
    assert_others_fine(rt, before)
    r = rt.cli("queue", "--json")
    assert r.returncode == 0, r.stderr
