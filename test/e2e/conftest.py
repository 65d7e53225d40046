"""Shared helpers for the end-to-end tests: they run the real static binary."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TINYEDGE_BIN", os.path.join(ROOT, "build", "tinyedge"))
SAMPLE_CONFIG = os.path.join(ROOT, "rootfs", "etc", "tinyedge", "config.json")
SAMPLE_DEPLOYMENT = os.path.join(ROOT, "rootfs", "etc", "tinyedge", "deployment.json")

# TINYEDGE_VALGRIND=1: every Daemon runs build/vg/tinyedge (make
# valgrind-build: glibc, so memcheck sees malloc) under memcheck, and its
# stop checks the report (test_valgrind.py has the details).
VALGRIND = os.environ.get("TINYEDGE_VALGRIND") == "1"
VG_BIN = os.path.join(os.path.dirname(BIN), "vg", "tinyedge")
VG_SUPP = os.path.join(ROOT, "test", "e2e", "valgrind.supp")
VG_SLOW = 6 if VALGRIND else 1      # timeouts stretch under valgrind


def valgrind_cmd(log_dir, *args):
    """argv for `tinyedge ARGS` under memcheck, one log per process in
    log_dir (vg-PID.log; a module's pre-exec child is pid 1 of its pid
    namespace, so those share vg-1.log)."""
    return ["valgrind", "--tool=memcheck", "--error-exitcode=99", "--leak-check=full",
            "--errors-for-leak-kinds=definite", "--track-fds=yes",
            f"--suppressions={VG_SUPP}", f"--log-file={log_dir}/vg-%p.log", VG_BIN, *args]


VG_ERROR = re.compile(r"^==\d+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised|"
                      r"Syscall param|Mismatched free|Source and destination overlap|"
                      r"Argument .* of function|Process terminating)", re.M)


def valgrind_report(log_dir, pid):
    """{errors, definite, fds, text} from memcheck's logs: errors are the
    daemon's ERROR SUMMARY plus any error in a pre-exec child's log; fds
    are the ones the daemon opened and left open at exit. None when the
    daemon left no summary (killed)."""
    main = os.path.join(log_dir, f"vg-{pid}.log")
    text = open(main).read() if os.path.exists(main) else ""
    m = re.search(r"ERROR SUMMARY: (\d+) errors", text)
    if not m:
        return None
    definite = re.search(r"definitely lost: ([\d,]+) bytes", text)
    fds = re.findall(r"Open (?:file descriptor|AF_\w+ socket) (\d+): (.*)\n==\d+==    (?!<inherited)", text)
    child = 0
    for name in os.listdir(log_dir):
        if name.startswith("vg-") and name != f"vg-{pid}.log":
            with open(os.path.join(log_dir, name)) as f:
                t = f.read()
            child += len(VG_ERROR.findall(t))
            text += f"\n--- {name}\n" + t
    return {"errors": int(m.group(1)) + child,
            "definite": int(definite.group(1).replace(",", "")) if definite else 0,
            "fds": [f for f in fds if int(f[0]) > 2], "text": text}


def run(*args, env=None, input=None, timeout=30):
    """Run tinyedge with args; return CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.pop("TINYEDGE_STATE_DIR", None)
    if env:
        full_env.update(env)
    return subprocess.run([BIN, *args], capture_output=True, text=True,
                          env=full_env, input=input, timeout=timeout)


def sample_deployment(tmp_path):
    """The shipped sample deployment with its image pointed at this build."""
    with open(SAMPLE_DEPLOYMENT) as f:
        text = f.read().replace("/usr/bin/tinyedge", BIN)
    path = tmp_path / "deployment.json"
    path.write_text(text)
    return path


def write_json(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


class Daemon:
    """A `tinyedge run` in the background with its stderr captured to a file."""

    def __init__(self, tmp_path, *args, env=None):
        self.log_path = tmp_path / f"daemon-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        full_env.pop("TINYEDGE_STATE_DIR", None)
        if env:
            full_env.update(env)
        cmd = [BIN, "run", *args]
        if VALGRIND:
            self.vg_dir = tmp_path / f"vg-{time.monotonic_ns()}"
            self.vg_dir.mkdir()
            cmd = valgrind_cmd(self.vg_dir, "run", *args)
        self.proc = subprocess.Popen(cmd, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=full_env)

    def text(self):
        return self.log_path.read_text()

    def wait_for(self, needle, count=1, timeout=15):
        """Wait until needle appears count times in the log (or the daemon exits)."""
        deadline = time.monotonic() + timeout * VG_SLOW
        while time.monotonic() < deadline:
            if self.text().count(needle) >= count:
                return True
            if self.proc.poll() is not None:
                return self.text().count(needle) >= count
            time.sleep(0.05)
        return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout * VG_SLOW)
        finally:
            self.log.close()
        self.vg_check()
        return rc

    def vg_check(self):
        """Under TINYEDGE_VALGRIND: memcheck's verdict on this daemon."""
        if not VALGRIND:
            return
        rep = valgrind_report(self.vg_dir, self.proc.pid)
        if rep is not None:
            assert rep["errors"] == 0 and rep["definite"] == 0 and not rep["fds"], rep["text"]


@pytest.fixture
def daemons():
    started = []

    def start(tmp_path, *args, env=None):
        d = Daemon(tmp_path, *args, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:  # let it stop its modules, then insist
            d.proc.send_signal(signal.SIGTERM)
            try:
                d.proc.wait(timeout=20 * VG_SLOW)
            except subprocess.TimeoutExpired:
                d.proc.kill()
                d.proc.wait()
            d.vg_check()


def manifest(modules, routes=None):
    """A deployment manifest document from {name: module dict}."""
    doc = {"modulesContent": {"$edgeAgent": {"properties.desired": {
        "schemaVersion": "1.1", "runtime": {"type": "native"}, "modules": modules}}}}
    if routes:
        doc["modulesContent"]["$edgeHub"] = {"properties.desired": {"routes": routes}}
    return doc


def sh_module(script, restart="always", order=None, status="running", **create):
    """A module running /bin/sh -c SCRIPT with createOptions extras."""
    create = dict(create)
    create["args"] = ["-c", script]
    # PID 1 of a pid namespace ignores SIGTERM without a handler: keep the
    # SIGKILL escalation short so tests don't wait 10 s per module.
    create.setdefault("stopTimeoutSecs", 2)
    mod = {"type": "native", "status": status, "restartPolicy": restart,
           "settings": {"image": "/bin/sh", "createOptions": create}}
    if order is not None:
        mod["startupOrder"] = order
    return mod


FAST_CONFIG = {"restartBackoff": {"initialMs": 50, "maxMs": 200, "resetAfterSecs": 600}}


class Runtime:
    """A daemon with a deployment file, and the CLI pointed at its state dir."""

    def __init__(self, tmp_path, daemons, modules, config=None, extra_args=()):
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        self.config = write_json(tmp_path, "config.json", config if config is not None else FAST_CONFIG)
        self.deployment = write_json(tmp_path, "deployment.json", manifest(modules))
        self.daemon = daemons(tmp_path, "-c", str(self.config), "-m", str(self.deployment),
                              "--state-dir", str(self.state), *extra_args)
        assert self.daemon.wait_for("agent: ready"), self.daemon.text()

    def cli(self, *args, timeout=30):
        return run(*args, "--state-dir", str(self.state), timeout=timeout)

    def modules(self):
        r = self.cli("list", "--json")
        assert r.returncode == 0, r.stderr
        return {m["name"]: m for m in json.loads(r.stdout)["modules"]}

    def wait(self, predicate, timeout=20, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            mods = self.modules()
            if predicate(mods):
                return mods
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {self.modules()}\n{self.daemon.text()}")

    def wait_status(self, name, status, timeout=20):
        return self.wait(lambda m: name in m and m[name]["runtimeStatus"] == status,
                         timeout, f"{name} {status}")[name]

    def logs(self, name, *args):
        r = self.cli("logs", name, *args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def wait_log(self, name, needle, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.logs(name)
            if needle in out:
                return out
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in logs of {name}: {self.logs(name)}")

    def redeploy(self, modules):
        self.deployment.write_text(json.dumps(manifest(modules), indent=2))


def pids_matching(marker):
    """Pids of processes whose command line contains marker (NUL separates
    arguments: "sleep\0" "4242" matches `sleep 4242` but not a shell script
    that mentions it)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def zombies_of(ppid):
    """Zombie children of ppid."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == ppid:
            out.append(int(pid))
    return out
