"""Escape probes: test/escape/probe.c, built static at test time, runs as a
module in the sandbox next to another module and tries every way out it
knows (another module's ring, the daemon's memory, leaked fds, the daemon's
binary, cgroup release_agent, mounts, ptrace, capabilities, TIOCSTI, its
own limits, devices, /proc and /sys knobs, signals, the state dir). Each
attempt reports; every probe must report and none may escape.

Runs in the default sandbox, with a user namespace too, and from a
directory image (rootfs). Passes with or without a seccomp filter: the
probe counts only crossings of the sandbox's boundary as escapes; what
succeeds only inside the module's own namespaces is "surface"."""
import json
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import BIN, ROOT, Runtime, sh_module

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("musl-gcc"),
    reason="needs root (namespaces, cgroups) and musl-gcc")

PROBES = {"leaked_fds", "other_ring", "daemon_mem", "daemon_exe", "cgroup_release_agent",
          "mount", "userns_mount", "ptrace", "capabilities", "tiocsti", "limits",
          "devices", "proc_writes", "signal_others", "state_dir"}

FAST = {"restartBackoff": {"initialMs": 50, "maxMs": 200, "resetAfterSecs": 600}}


@pytest.fixture(scope="module")
def probe_tree():
    """The probe in a tree the module's user (nobody) can reach; the tree
    doubles as a directory image."""
    # Not under /tmp: a module has its own /tmp, and the state dir must be
    # visible to it, so that only the state dir's own mode stops the probe.
    top = tempfile.mkdtemp(prefix="te-escape-", dir="/var/tmp")
    os.chmod(top, 0o755)
    tree = os.path.join(top, "tree")
    for sub in ("bin", "proc", "dev", "tmp"):
        os.makedirs(os.path.join(tree, sub))
    os.chmod(os.path.join(tree, "tmp"), 0o1777)
    subprocess.run(["musl-gcc", "-static", "-O1", "-Wno-format-truncation", "-o",
                    os.path.join(tree, "bin", "probe"),
                    os.path.join(ROOT, "test", "escape", "probe.c")], check=True)
    yield top, tree
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def world_tmp(probe_tree):
    """A per-test dir under the world-traversable top: the state dir must be
    reachable by path, so that only its own permissions stop the probe."""
    d = tempfile.mkdtemp(dir=probe_tree[0])
    os.chmod(d, 0o755)
    from pathlib import Path
    return Path(d)


def other_module():
    # sleep inherits fds 3-5 (the ring memfd and eventfds) from the shell
    return sh_module("exec sleep 100000")


def probe_module(probe, args, image=None, **create):
    if image:
        create["args"] = ["/bin/probe", *args]
        settings = {"image": image}
    else:
        create["args"] = args
        settings = {"image": probe}
    create.setdefault("stopTimeoutSecs", 2)
    settings["createOptions"] = create
    return {"type": "native", "restartPolicy": "never", "settings": settings}


def probe_report(rt, name="probe", timeout=30):
    """The probe's JSON lines, once its summary line is out."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        out = rt.logs(name)
        lines = [json.loads(line[line.index("{"):]) for line in out.splitlines()
                 if '{"probe"' in line or '{"escapes"' in line]
        if any("escapes" in x for x in lines):
            return [x for x in lines if "probe" in x], [x for x in lines if "escapes" in x][0]
        assert time.monotonic() < deadline, f"no summary from the probe:\n{out}\n{rt.daemon.text()}"
        time.sleep(0.1)


def run_probe(world_tmp, daemons, probe_tree, **create):
    top, tree = probe_tree
    rt = Runtime(world_tmp, daemons, {"other": other_module()}, config=FAST)
    other = rt.wait_status("other", "running")
    other_pid = other["pid"]
    # the precondition that makes the ring probes meaningful
    assert "memfd:tinyedge-ring" in os.readlink(f"/proc/{other_pid}/fd/3")
    image = create.pop("image", None)
    args = [str(rt.daemon.proc.pid), str(other_pid), BIN, str(rt.state)]
    rt.redeploy({"other": other_module(),
                 "probe": probe_module(os.path.join(tree, "bin", "probe"), args,
                                       image=image, **create)})
    rt.wait(lambda m: "probe" in m, what="the probe deployed")
    results, summary = probe_report(rt)
    for r in results:
        print(json.dumps(r))
    print(json.dumps(summary))
    names = {r["probe"] for r in results}
    assert names == PROBES, f"missing: {PROBES - names}, unknown: {names - PROBES}"
    assert summary["probes"] == len(PROBES)
    escaped = [r for r in results if r["escaped"]]
    assert not escaped, json.dumps(escaped, indent=1)
    assert summary["escapes"] == 0
    # the other module and the daemon are untouched
    assert rt.modules()["other"]["pid"] == other_pid
    assert rt.daemon.proc.poll() is None
    return {r["probe"]: r for r in results}


def test_escape_default_sandbox(world_tmp, daemons, probe_tree):
    got = run_probe(world_tmp, daemons, probe_tree)
    # the checks really ran: the attempts failed for the right reasons
    assert "pidfd_open(other)=ESRCH" in got["other_ring"]["detail"]
    assert "open(/proc/daemon/mem)=ENOENT" in got["daemon_mem"]["detail"]
    assert "mknod(c1:1)=EPERM" in got["devices"]["detail"]
    assert "3:/memfd:tinyedge-ring" in got["leaked_fds"]["detail"]
    assert "connect(control.sock)=EACCES" in got["state_dir"]["detail"]


def test_escape_user_namespace(world_tmp, daemons, probe_tree):
    got = run_probe(world_tmp, daemons, probe_tree,
                    namespaces=["pid", "mount", "uts", "ipc", "user"])
    assert "ns-root-is-host-uid=65534" in got["capabilities"]["detail"]


def test_escape_from_image(world_tmp, daemons, probe_tree):
    got = run_probe(world_tmp, daemons, probe_tree, image=probe_tree[1])
    assert "daemon-binary:not-visible" in got["daemon_exe"]["detail"]
