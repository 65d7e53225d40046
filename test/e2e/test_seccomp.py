"""Per-module seccomp (docs/modules.md, "Seccomp"): a static probe, built
here with musl-gcc, makes denied and allowed calls inside real modules; the
daemon's listener answers EPERM and counts; list --json and metrics show
the counts; extras, unconfined and the kill action; manifest errors."""
import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import FAST_CONFIG, Runtime, manifest, run, write_json

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("musl-gcc") or os.uname().machine != "x86_64",
    reason="needs root, musl-gcc and an x86_64 host (the probe's numbers)")

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* One line per action: "NAME RESULT ERRNO". */
static long act(const char *a)
{
	struct winsize ws;
	char c = 'x';
	long r = -2;

	if (!strcmp(a, "keyctl"))
		r = syscall(SYS_keyctl, 0, -3, 0);
	else if (!strcmp(a, "mempolicy"))
		r = syscall(SYS_get_mempolicy, NULL, NULL, 0, NULL, 0);
	else if (!strcmp(a, "mount"))
		r = syscall(SYS_mount, "none", "/mnt", "tmpfs", 0, NULL);
	else if (!strcmp(a, "chroot"))
		r = syscall(SYS_chroot, "/");
	else if (!strcmp(a, "unshare"))
		r = syscall(SYS_unshare, CLONE_NEWUTS);
	else if (!strcmp(a, "clonens")) {
		r = syscall(SYS_clone, CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0);
		if (r == 0)
			_exit(0);
	} else if (!strcmp(a, "clone3"))
		r = syscall(SYS_clone3, NULL, 0);
	else if (!strcmp(a, "fork")) {
		r = fork();
		if (r == 0)
			_exit(0);
		if (r > 0)
			waitpid(r, NULL, 0);
	} else if (!strcmp(a, "tiocsti"))
		r = syscall(SYS_ioctl, 0, TIOCSTI, &c);
	else if (!strcmp(a, "tioclinux"))
		r = syscall(SYS_ioctl, 0, TIOCLINUX, &c);
	else if (!strcmp(a, "ioctlhi"))
		r = syscall(SYS_ioctl, 0, (1UL << 32) | TIOCGWINSZ, &ws);
	else if (!strcmp(a, "tiocgwinsz"))
		r = syscall(SYS_ioctl, 0, TIOCGWINSZ, &ws);
	else if (!strcmp(a, "personality"))
		r = syscall(SYS_personality, 0x0400000);
	else if (!strcmp(a, "x32"))
		r = syscall(0x40000000 | SYS_getpid);
	else if (!strcmp(a, "i386")) {
		long nr = 20; /* i386 getpid through int 0x80 */
		__asm__ volatile("int $0x80" : "+a"(nr) : : "memory");
		r = nr;
	} else if (!strcmp(a, "sleep"))
		for (;;)
			pause();
	return r;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		long r;

		errno = 0;
		r = act(argv[i]);
		printf("%s %ld %d\n", argv[i], r, r < 0 ? errno : 0);
		fflush(stdout);
	}
	return 0;
}
"""

EPERM, ENOTTY, ENOSYS = 1, 25, 38


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    d = tmp_path_factory.mktemp("scprobe")
    (d / "probe.c").write_text(PROBE_C)
    subprocess.run(["musl-gcc", "-static", "-O1", "-o", str(d / "probe"), str(d / "probe.c")],
                   check=True)
    return str(d / "probe")


def probe_module(probe, actions, restart="never", **create):
    create = dict(create, args=list(actions), user="root", stopTimeoutSecs=1)
    return {"type": "native", "status": "running", "restartPolicy": restart,
            "settings": {"image": probe, "createOptions": create}}


def results(rt, name, last):
    """{action: (result, errno)} once the action `last` has reported."""
    out = rt.wait_log(name, f"{last} ")
    got = {}
    for line in out.splitlines():
        m = re.search(r"(\w+) (-?\d+) (\d+)$", line)
        if m:
            got[m.group(1)] = (int(m.group(2)), int(m.group(3)))
    return got


def metric(rt, module):
    r = rt.cli("metrics")
    assert r.returncode == 0, r.stderr
    m = re.search(r'^tinyedge_module_seccomp_denied_total\{module="%s"\} (\d+)$' % module,
                  r.stdout, re.M)
    assert m, r.stdout
    return int(m.group(1))


ALL = ["keyctl", "keyctl", "mount", "unshare", "clonens", "clone3", "fork", "tiocsti",
       "tioclinux", "ioctlhi", "tiocgwinsz", "personality", "x32", "mempolicy", "sleep"]


def test_default_profile_denies_counts_and_reports(tmp_path, daemons, probe):
    rt = Runtime(tmp_path, daemons, {"p": probe_module(probe, ALL)}, config=FAST_CONFIG)
    got = results(rt, "p", "mempolicy")
    for a in ("keyctl", "mount", "unshare", "clonens", "tiocsti", "tioclinux", "ioctlhi",
              "personality", "x32", "mempolicy"):
        assert got[a] == (-1, EPERM), (a, got)
    assert got["clone3"] == (-1, ENOSYS), got     # libc falls back to clone
    assert got["fork"][0] > 0, got                 # plain clone works
    assert got["tiocgwinsz"] == (-1, ENOTTY), got  # a harmless ioctl reaches the kernel
    mods = rt.wait(lambda m: m["p"]["seccompDenied"] >= 11, what="11 denials")
    p = mods["p"]
    assert p["runtimeStatus"] == "running" and p["seccomp"] == "errno", p
    assert p["seccompDenied"] == 11, p
    by = p["seccompDeniedBy"]
    assert by["keyctl"] == 2 and by["mount"] == 1 and by["unshare"] == 1, by
    assert by["clone"] == 1 and by["ioctl"] == 3 and by["personality"] == 1, by
    assert by["get_mempolicy"] == 1 and by[str(0x40000000 + 39)] == 1, by  # x32 getpid
    assert "clone3" not in by and "getpid" not in by, by
    assert metric(rt, "p") == 11
    assert "module p: seccomp denied keyctl" in rt.daemon.text()


def test_extra_syscalls_and_unconfined(tmp_path, daemons, probe):
    acts = ["mempolicy", "keyctl", "mount", "tiocsti", "ioctlhi", "sleep"]
    rt = Runtime(tmp_path, daemons, {
        "extra": probe_module(probe, acts, seccomp=["get_mempolicy", "keyctl"]),
        "free": probe_module(probe, acts, seccomp="unconfined"),
    }, config=FAST_CONFIG)
    got = results(rt, "extra", "ioctlhi")
    assert got["mempolicy"] == (0, 0), got
    assert got["keyctl"][1] != EPERM, got
    assert got["mount"] == (-1, EPERM) and got["tiocsti"] == (-1, EPERM), got
    free = results(rt, "free", "ioctlhi")
    assert free["mempolicy"] == (0, 0), free
    # the kernel itself answers: no capability for mount, not a tty, and a
    # high-bit request truncated to TIOCGWINSZ (what the filter guards against)
    assert free["mount"] == (-1, EPERM), free
    assert free["tiocsti"] == (-1, ENOTTY) and free["ioctlhi"] == (-1, ENOTTY), free
    mods = rt.wait(lambda m: m["extra"]["seccompDenied"] == 3, what="3 denials")
    assert mods["extra"]["seccompDeniedBy"] == {"mount": 1, "ioctl": 2}, mods["extra"]
    assert mods["free"]["seccompDenied"] == 0 and mods["free"]["seccomp"] == "unconfined"
    assert metric(rt, "free") == 0


def test_capabilities_bring_their_syscalls(tmp_path, daemons, probe):
    # As in Docker: a module that lists a capability may make the calls it
    # exists for; without it the filter denies them (and counts).
    acts = ["chroot", "unshare", "keyctl", "sleep"]
    rt = Runtime(tmp_path, daemons, {
        "capped": probe_module(probe, acts, capabilities=["SYS_CHROOT", "CAP_SYS_ADMIN"]),
        "plain": probe_module(probe, acts),
    }, config=FAST_CONFIG)
    got = results(rt, "capped", "keyctl")
    assert got["chroot"] == (0, 0) and got["unshare"] == (0, 0), got
    assert got["keyctl"] == (-1, EPERM), got
    plain = results(rt, "plain", "keyctl")
    assert plain["chroot"] == (-1, EPERM) and plain["unshare"] == (-1, EPERM), plain
    mods = rt.wait(lambda m: m["capped"]["seccompDenied"] == 1 and m["plain"]["seccompDenied"] == 3,
                   what="1 and 3 denials")
    assert mods["capped"]["seccompDeniedBy"] == {"keyctl": 1}, mods["capped"]
    assert mods["plain"]["seccompDeniedBy"] == {"chroot": 1, "unshare": 1, "keyctl": 1}, mods["plain"]


def test_kill_action_kills_counts_and_restarts(tmp_path, daemons, probe):
    rt = Runtime(tmp_path, daemons, {
        "k": probe_module(probe, ["fork", "keyctl", "sleep"], restart="on-failure",
                          seccompAction="kill")}, config=FAST_CONFIG)
    mods = rt.wait(lambda m: m["k"]["restartCount"] >= 2 and m["k"]["seccompDenied"] >= 2,
                   what="two seccomp kills")
    k = mods["k"]
    assert k["signal"] == 31 and k["seccomp"] == "kill", k
    assert k["seccompDeniedBy"]["SIGSYS"] == k["seccompDenied"], k
    assert metric(rt, "k") >= 2
    assert "killed by seccomp (SIGSYS)" in rt.daemon.text()
    assert "keyctl " not in rt.logs("k")  # killed inside the call


def test_foreign_abi_is_killed(tmp_path, daemons, probe):
    rt = Runtime(tmp_path, daemons, {"a": probe_module(probe, ["fork", "i386", "sleep"])},
                 config=FAST_CONFIG)
    mods = rt.wait(lambda m: m["a"]["runtimeStatus"] == "failed", what="a failed")
    assert mods["a"]["signal"] == 31, mods["a"]
    assert "i386 " not in rt.logs("a")


def test_real_programs_run_under_the_default_profile(tmp_path, daemons):
    py = shutil.which("python3", path="/usr/bin")
    if not py:
        pytest.skip("no /usr/bin/python3")
    script = ("import json, os, socket, subprocess, threading, select, tempfile\n"
              "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
              "a, b = socket.socketpair(); a.send(b'x'); select.select([b], [], [], 1)\n"
              "out = subprocess.run(['/bin/sh', '-c', 'echo sh-ok | cat'], capture_output=True).stdout\n"
              "with tempfile.TemporaryFile() as f: f.write(b'y')\n"
              "print('py-ok', out.decode().strip(), flush=True)\n"
              "import time; time.sleep(1000)\n")
    mod = {"type": "native", "status": "running", "restartPolicy": "never",
           "settings": {"image": py, "createOptions": {"args": ["-c", script],
                                                        "stopTimeoutSecs": 1}}}
    rt = Runtime(tmp_path, daemons, {"py": mod}, config=FAST_CONFIG)
    rt.wait_log("py", "py-ok sh-ok")
    assert rt.modules()["py"]["seccompDenied"] == 0, rt.modules()["py"]


def test_profile_change_restarts_the_module(tmp_path, daemons, probe):
    rt = Runtime(tmp_path, daemons, {"p": probe_module(probe, ["sleep"])}, config=FAST_CONFIG)
    before = rt.wait_status("p", "running")
    rt.redeploy({"p": probe_module(probe, ["sleep"], seccomp=["ptrace"])})
    rt.wait(lambda m: m["p"]["runtimeStatus"] == "running" and m["p"]["pid"] != before["pid"],
            what="restart on a seccomp change")


def test_bad_names_are_manifest_errors(tmp_path, probe):
    mod = probe_module(probe, ["sleep"], seccomp=["read", "mountt"])
    path = write_json(tmp_path, "m.json", manifest({"p": mod}))
    r = run("check", "-m", str(path))
    assert r.returncode == 2, r.stderr
    assert "modules.p.settings.createOptions.seccomp[1]" in r.stderr and "mountt" in r.stderr
    mod = probe_module(probe, ["sleep"], seccomp="strict", seccompAction="trap")
    path = write_json(tmp_path, "m2.json", manifest({"p": mod}))
    r = run("check", "-m", str(path))
    assert r.returncode == 2, r.stderr
    assert "createOptions.seccomp" in r.stderr and "createOptions.seccompAction" in r.stderr


QEMU = "/usr/bin/qemu-aarch64-static"
CROSS_BIN = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "build", "aarch64", "tinyedge")


@pytest.mark.skipif(not (os.path.exists(QEMU) and os.path.exists(CROSS_BIN)),
                    reason="needs qemu-user-static and build/aarch64/tinyedge (make cross)")
def test_qemu_user_module_runs_under_the_default_profile(tmp_path, daemons):
    import shutil
    import tempfile
    # A module has its own /tmp: a checkout under /tmp (a CI clone) would
    # hide the aarch64 binary, which is an argument here, not the image.
    where = tempfile.mkdtemp(dir="/var/tmp")
    binary = shutil.copy(CROSS_BIN, where)
    os.chmod(where, 0o755)
    mod = {"type": "native", "status": "running", "restartPolicy": "never",
           "env": {"INTERVAL_MS": {"value": "50"}},
           "settings": {"image": QEMU, "createOptions": {
               "args": [binary, "module", "sim-sensor"], "user": "root",
               "stopTimeoutSecs": 1}}}
    try:
        rt = Runtime(tmp_path, daemons, {"sim-sensor": mod}, config=FAST_CONFIG)
        mods = rt.wait(lambda m: m["sim-sensor"].get("messagesOut", 0) >= 3, timeout=60,
                       what="messages from the aarch64 module")
        assert mods["sim-sensor"]["runtimeStatus"] == "running", mods
        assert mods["sim-sensor"]["seccompDenied"] == 0, mods
    finally:
        shutil.rmtree(where, ignore_errors=True)
