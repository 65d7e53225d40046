"""The sysvinit script (rootfs/etc/init.d/tinyedge) against the real binary.

Each test builds a device tree with `make install DESTDIR=root` plus
busybox-static, and runs it in a private mount namespace chrooted into that
tree (/proc and /sys bound in, a tmpfs /dev with a few nodes and syslogd's
/dev/log): nothing reaches the machine's /etc, /var or /dev. A keeper
process holds the namespace; each script call enters it with nsenter.
Variants: Busybox ash with start-stop-daemon, and dash without it (the
plain-shell path); the daemon logging to syslog or to LOG_FILE.
"""
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import time

import pytest

from conftest import BIN, ROOT, SAMPLE_CONFIG, sample_deployment
from test_install import make_install

APPLETS = ["sh", "cat", "tr", "readlink", "dirname", "mkdir", "rm", "sleep", "kill",
           "printf", "echo", "head", "ps", "syslogd", "logger", "ls", "test"]
PATH = "/bin:/sbin:/usr/bin:/usr/sbin"
VARIANTS = {
    # name: (shell, start-stop-daemon present, LOG_FILE)
    "ash-ssd-syslog": ("/bin/busybox", True, ""),
    "ash-ssd-logfile": ("/bin/busybox", True, "/var/log/tinyedge.log"),
    "dash-shell-syslog": ("/bin/dash", False, ""),
    "dash-shell-logfile": ("/bin/dash", False, "/var/log/tinyedge.log"),
}


@pytest.fixture(scope="module")
def base_tree(tmp_path_factory):
    dest = tmp_path_factory.mktemp("install") / "root"
    r = make_install(dest, "INIT=sysv")
    assert r.returncode == 0, r.stdout + r.stderr
    return dest


def copy_dash(root):
    """/bin/dash and the shared objects ldd names for it."""
    shutil.copy2("/bin/dash", root / "bin/dash")
    out = subprocess.run(["ldd", "/bin/dash"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


class Device:
    """A chroot in its own mount namespace, held by a keeper process."""

    def __init__(self, tmp_path, base, variant):
        self.shell, ssd, self.log_file = VARIANTS[variant]
        self.root = tmp_path / "root"
        shutil.copytree(base, self.root, symlinks=True)
        r = self.root
        (r / "bin").mkdir()
        shutil.copy2("/bin/busybox", r / "bin/busybox")
        for a in APPLETS + (["start-stop-daemon"] if ssd else []):
            os.symlink("busybox", r / "bin" / a)
        if self.shell == "/bin/dash":
            copy_dash(r)
        for d in ("proc", "sys", "dev", "tmp", "var/run", "var/log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        if self.log_file:
            with open(r / "etc/default/tinyedge", "a") as f:
                f.write(f"LOG_FILE={self.log_file}\n")
        pidfile = tmp_path / "keeper.pid"
        # The tree is bound onto itself so that its / is a mount point, as
        # on a device (the module sandbox makes / private).
        setup = f"""set -e
            mount --bind '{r}' '{r}'
            cd '{r}'
            mount --rbind /proc proc
            mount --rbind /sys sys
            mount -t tmpfs -o mode=0755 tmpfs dev
            for n in null zero full random urandom tty; do
                touch dev/$n; mount --bind /dev/$n dev/$n
            done
            chroot . /bin/busybox syslogd -O /var/log/messages
            echo $$ > '{pidfile}'
            exec chroot . /bin/busybox sleep 100000
        """
        self.keeper = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--fork", "/bin/sh", "-c", setup],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if pidfile.exists() and pidfile.read_text().strip():
                self.kpid = int(pidfile.read_text())
                if os.readlink(f"/proc/{self.kpid}/root") == str(r):
                    break
            assert self.keeper.poll() is None, self.keeper.stderr.read()
            time.sleep(0.05)
        else:
            raise AssertionError("the chroot keeper did not start")

    def sh(self, *argv, timeout=90):
        """Run argv inside the chroot and namespace."""
        return subprocess.run(["nsenter", "-t", str(self.kpid), "-m", "-r", "-w", "--", *argv],
                              capture_output=True, text=True, timeout=timeout,
                              env={"PATH": PATH}, stdin=subprocess.DEVNULL)

    def init(self, action):
        shell = [self.shell, "sh"] if self.shell == "/bin/busybox" else [self.shell]
        return self.sh(*shell, "/etc/init.d/tinyedge", action)

    def pidfile(self):
        p = self.root / "var/run/tinyedge.pid"
        return int(p.read_text()) if p.exists() else None

    def processes(self, verb=None):
        """Host pids running this tree's tinyedge (daemon and modules)."""
        exe = str(self.root / "usr/bin/tinyedge")
        found = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                if os.readlink(f"/proc/{pid}/exe") != exe:
                    continue
                argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if verb is None or (len(argv) > 1 and argv[1].decode() == verb):
                found.append(int(pid))
        return found

    def daemons(self):
        return self.processes("run")

    def log(self):
        path = self.root / (self.log_file or "var/log/messages").lstrip("/")
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_log(self, needle, count=1, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log().count(needle) >= count:
                return True
            time.sleep(0.1)
        return False

    def modules(self):
        r = self.sh("/usr/bin/tinyedge", "list", "--json")
        if r.returncode != 0:
            return {}
        return {m["name"]: m for m in json.loads(r.stdout)["modules"]}

    def wait_running(self, names, timeout=20):
        deadline = time.monotonic() + timeout
        mods = {}
        while time.monotonic() < deadline:
            mods = self.modules()
            if all(mods.get(n, {}).get("runtimeStatus") == "running" for n in names):
                return mods
            time.sleep(0.2)
        raise AssertionError(f"modules not running: {mods}")

    def close(self):
        """Kill everything rooted in the tree (daemon, modules, syslogd, keeper)."""
        root = str(self.root)
        for _ in range(50):
            left = []
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    if os.readlink(f"/proc/{pid}/root").startswith(root):
                        left.append(int(pid))
                except OSError:
                    pass
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        try:
            self.keeper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.keeper.kill()
            self.keeper.wait()


@pytest.fixture(params=list(VARIANTS))
def device(request, tmp_path, base_tree):
    dev = Device(tmp_path, base_tree, request.param)
    yield dev
    leftovers = dev.processes()
    dev.close()
    assert leftovers == [], "processes left behind"


def test_start_status_reload_stop(device):
    r = device.init("start")
    assert r.returncode == 0, r.stdout + r.stderr
    pid = device.pidfile()
    assert device.daemons() == [pid]
    r = device.init("status")
    assert r.returncode == 0 and f"running (pid {pid})" in r.stdout, r.stdout
    mods = device.wait_running(["sim-sensor", "filter"])
    assert len(mods) == 2

    st = device.root / "var/lib/tinyedge"
    assert stat.S_IMODE(os.stat(st).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(st / "control.sock").st_mode) == 0o600
    assert device.wait_log("agent: ready"), device.log()

    r = device.init("start")
    assert r.returncode == 0 and "already running" in r.stdout, r.stdout + r.stderr
    assert device.daemons() == [pid] and device.pidfile() == pid

    r = device.init("reload")
    assert r.returncode == 0, r.stdout + r.stderr
    assert device.wait_log("SIGHUP: reloading"), device.log()
    assert device.daemons() == [pid]
    assert device.modules()["filter"]["runtimeStatus"] == "running"

    r = device.init("stop")
    assert r.returncode == 0, r.stdout + r.stderr
    assert device.pidfile() is None
    assert device.processes() == [], "daemon or modules left"
    assert device.wait_log("SIGTERM: stopping modules"), device.log()
    assert device.init("status").returncode == 3
    assert device.init("reload").returncode == 7
    r = device.init("stop")
    assert r.returncode == 0 and "not running" in r.stdout


def test_reload_applies_a_changed_deployment(device):
    assert device.init("start").returncode == 0
    pid = device.pidfile()
    device.wait_running(["sim-sensor", "filter"])
    path = device.root / "etc/tinyedge/deployment.json"
    doc = json.loads(path.read_text())
    mods = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    mods["filter"]["status"] = "stopped"
    path.write_text(json.dumps(doc))
    assert device.init("reload").returncode == 0
    deadline = time.monotonic() + 20
    while device.modules().get("filter", {}).get("runtimeStatus") != "stopped":
        assert time.monotonic() < deadline, device.modules()
        time.sleep(0.2)
    assert device.daemons() == [pid]
    assert device.init("stop").returncode == 0


def test_restart_gives_a_new_daemon(device):
    assert device.init("start").returncode == 0
    old = device.pidfile()
    device.wait_running(["sim-sensor", "filter"])
    r = device.init("restart")
    assert r.returncode == 0, r.stdout + r.stderr
    new = device.pidfile()
    assert new and new != old
    assert device.daemons() == [new]
    device.wait_running(["sim-sensor", "filter"])
    assert device.init("stop").returncode == 0
    assert device.processes() == []


def test_stale_pidfile_is_not_mistaken_for_the_daemon(device):
    sleeper = subprocess.Popen(["sleep", "1000"])
    try:
        (device.root / "var/run/tinyedge.pid").write_text(f"{sleeper.pid}\n")
        r = device.init("status")
        assert r.returncode == 1, r.stdout
        r = device.init("reload")
        assert r.returncode == 7
        assert sleeper.poll() is None
        r = device.init("start")
        assert r.returncode == 0, r.stdout + r.stderr
        pid = device.pidfile()
        assert pid != sleeper.pid and device.daemons() == [pid]
        assert device.init("status").returncode == 0
        assert device.init("stop").returncode == 0
        assert sleeper.poll() is None, "stop killed a process that is not tinyedge"
        assert device.processes() == []
    finally:
        sleeper.kill()
        sleeper.wait()


def test_start_failure_is_reported(device):
    (device.root / "etc/tinyedge/deployment.json").write_text('{"modulesContent": 1}')
    r = device.init("start")
    assert r.returncode == 1
    assert "failed" in r.stdout
    assert "deployment.json" in r.stderr, r.stderr  # tinyedge check's finding
    assert device.daemons() == []
    assert device.init("status").returncode in (1, 3)
    # The daemon said why, where it logs.
    assert device.wait_log("deployment.json"), device.log()


def test_usage(device):
    r = device.init("bogus")
    assert r.returncode == 2 and "Usage:" in r.stderr


# --- the procd script (OpenWrt) -------------------------------------------
#
# There is no procd here: this harness defines the rc.common, UCI and procd
# functions the script calls (config_load parses a UCI file; procd_* and
# start record their arguments), sources the script and calls its functions.
# It checks what the script asks procd for, not procd itself.

PROCD_HARNESS = r"""
rec=$1 script=$2
shift 2
config_load() {
	section=
	while read -r kw key val; do
		case "$kw" in
		config) section=$(echo "$val" | tr -d "'\"") ;;
		option) val=$(echo "$val" | sed "s/^'\(.*\)'$/\1/; s/^\"\(.*\)\"$/\1/")
			eval "CONFIG_${section}_${key}=\$val" ;;
		esac
	done <"$UCI"
}
config_get() {
	eval "$1=\${CONFIG_${2}_${3}:-\${4:-}}"
}
config_get_bool() {
	eval "_v=\${CONFIG_${2}_${3}:-}"
	case "$_v" in
	1|on|true|yes|enabled) eval "$1=1" ;;
	0|off|false|no|disabled) eval "$1=0" ;;
	*) eval "$1=\${4:-0}" ;;
	esac
}
record() { printf '%s' "$1" >>"$rec"; shift; for a; do printf ' [%s]' "$a" >>"$rec"; done; echo >>"$rec"; }
procd_open_instance() { record open_instance "$@"; }
procd_close_instance() { record close_instance "$@"; }
procd_set_param() { record set "$@"; }
procd_append_param() { record append "$@"; }
procd_send_signal() { record send_signal "$@"; }
procd_add_reload_trigger() { record add_reload_trigger "$@"; }
start() { record start; start_service; }
. "$script"
record vars "$START" "$STOP" "$USE_PROCD"
while [ $# -gt 0 ]; do
	UCI=$2
	record "call:$1"
	"$1"
	shift 2
done
"""


def uci_file(tmp_path, name, **options):
    """The shipped UCI config with some options replaced."""
    text = open(os.path.join(ROOT, "rootfs/etc/config/tinyedge")).read()
    for key, value in options.items():
        text, n = re.subn(rf"option {key} '[^']*'", f"option {key} '{value}'", text)
        assert n == 1, key
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def procd(tmp_path, shell, *calls):
    """Run the harness in a private mount namespace (a tmpfs on /run, where
    the script keeps its stamp); calls are (function, uci file) pairs.
    Returns the recorded lines."""
    harness = tmp_path / "harness.sh"
    harness.write_text(PROCD_HARNESS)
    rec = tmp_path / f"rec-{time.monotonic_ns()}"
    rec.write_text("")
    argv = [a for call in calls for a in call]
    shell_argv = [shell, "sh"] if shell == "/bin/busybox" else [shell]
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                        'mount -t tmpfs none /run && exec "$@"', "sh", *shell_argv,
                        str(harness), str(rec),
                        os.path.join(ROOT, "rootfs/etc/init.d/tinyedge.procd"), *argv],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    return rec.read_text().splitlines()


def command_of(lines):
    """The instance's command line from set/append command records."""
    argv = []
    for line in lines:
        words = re.findall(r"\[([^\]]*)\]", line)
        if line.startswith(("set [command]", "append [command]")):
            argv += words[1:]
    return argv


SHELLS = ["/bin/busybox", "/bin/dash"]


@pytest.mark.parametrize("shell", SHELLS)
def test_procd_start_service(tmp_path, shell):
    lines = procd(tmp_path, shell, ("start_service", uci_file(tmp_path, "u")))
    assert lines[0] == "vars [95] [10] [1]"
    assert lines[1:3] == ["call:start_service", "open_instance"]
    assert lines[-1] == "close_instance"
    assert command_of(lines) == ["/usr/bin/tinyedge", "run", "-c", "/etc/tinyedge/config.json",
                                 "-m", "/etc/tinyedge/deployment.json"]
    assert "set [respawn] [3600] [5] [5]" in lines
    assert "set [term_timeout] [30]" in lines
    assert "set [stdout] [1]" in lines and "set [stderr] [1]" in lines


@pytest.mark.parametrize("shell", SHELLS)
def test_procd_options_become_flags_the_daemon_accepts(tmp_path, daemons, shell):
    cfg = tmp_path / "config.json"
    cfg.write_text(open(SAMPLE_CONFIG).read())
    dep = sample_deployment(tmp_path)
    state = tmp_path / "state"
    uci = uci_file(tmp_path, "u", config=cfg, manifest=dep, state_dir=state,
                   log_level="debug", upstream="none", respawn_retry="0", term_timeout="90")
    lines = procd(tmp_path, shell, ("start_service", uci))
    argv = command_of(lines)
    assert argv == ["/usr/bin/tinyedge", "run", "-c", str(cfg), "-m", str(dep),
                    "--state-dir", str(state), "--log-level", "debug", "--upstream", "none"]
    assert "set [respawn] [3600] [5] [0]" in lines and "set [term_timeout] [90]" in lines
    d = daemons(tmp_path, *argv[2:])
    assert d.wait_for("agent: ready"), d.text()
    assert (state / "control.sock").exists()
    assert d.stop() == 0


@pytest.mark.parametrize("shell", SHELLS)
def test_procd_disabled_starts_nothing(tmp_path, shell):
    lines = procd(tmp_path, shell, ("start_service", uci_file(tmp_path, "u", enabled="0")))
    assert "open_instance" not in lines and command_of(lines) == []


@pytest.mark.parametrize("shell", SHELLS)
def test_procd_reload(tmp_path, shell):
    u1 = uci_file(tmp_path, "u1")
    u2 = uci_file(tmp_path, "u2", log_level="debug")
    # Same options: SIGHUP to the running daemon, no new instance.
    lines = procd(tmp_path, shell, ("start_service", u1), ("reload_service", u1))
    tail = lines[lines.index("call:reload_service") + 1:]
    assert tail == ["send_signal [tinyedge] [*] [HUP]"]
    # Changed options: the command line changes, procd replaces the instance.
    lines = procd(tmp_path, shell, ("start_service", u1), ("reload_service", u2))
    tail = lines[lines.index("call:reload_service") + 1:]
    assert tail[0] == "start" and "send_signal" not in " ".join(tail)
    assert "--log-level" in command_of(tail)


@pytest.mark.parametrize("shell", SHELLS)
def test_procd_triggers(tmp_path, shell):
    lines = procd(tmp_path, shell, ("service_triggers", uci_file(tmp_path, "u")))
    assert lines[-1] == "add_reload_trigger [tinyedge]"
