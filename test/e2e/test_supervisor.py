"""Modules as supervised, namespaced processes: real namespaces, cgroups, signals."""
import json
import os
import re
import signal
import stat
import time

import pytest

from conftest import (FAST_CONFIG, Runtime, manifest, pids_matching, run, sh_module,
                      write_json, zombies_of)

PROBE = ("echo pid=$$; echo host=$(cat /proc/sys/kernel/hostname); "
         "echo env=$IOTEDGE_MODULEID,$IOTEDGE_DEVICEID,$TINYEDGE_IPC_FD,$MYVAR,$PATH; "
         "grep -E '^(Uid|CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|SigBlk|SigIgn):' /proc/self/status; "
         "echo fds=$(ls /proc/self/fd | tr '\\n' ' '); echo tmp=$(ls -A /tmp | wc -l); "
         "echo dev=$(ls /dev | tr '\\n' ' '); echo done; exec sleep 1000")


def status_field(out, name):
    m = re.search(rf"^.*stdout {name}:\s*(\S+)", out, re.M)
    return m.group(1) if m else None


def test_module_is_isolated_and_unprivileged(tmp_path, daemons):
    probe = sh_module(PROBE)
    probe["env"] = {"MYVAR": {"value": "mine"}}
    rt = Runtime(tmp_path, daemons, {"probe": probe}, config=dict(FAST_CONFIG, deviceId="dev-7"))
    rt.wait_status("probe", "running")
    out = rt.wait_log("probe", "done")
    assert "stdout env=probe,dev-7,3,mine,/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" in out
    assert "stdout pid=1\n" in out, "PID 1 in its own pid namespace"
    assert "stdout host=probe\n" in out, "hostname = module name"
    assert status_field(out, "Uid") == "65534", "runs as nobody by default"
    for cap in ("CapEff", "CapPrm", "CapBnd", "CapAmb"):
        assert status_field(out, cap) == "0000000000000000", cap
    assert status_field(out, "NoNewPrivs") == "1"
    assert status_field(out, "SigBlk") == "0000000000000000"
    assert status_field(out, "SigIgn") == "0000000000000000"
    # 3 = its rings (memfd), 4 and 5 = wakeup eventfds; 6 is ls's own directory
    assert "stdout fds=0 1 2 3 4 5 6\n" in out, out
    assert "stdout tmp=0\n" in out, "a private, empty /tmp"
    dev = re.search(r"stdout dev=(.*)\n", out).group(1).split()
    assert set(dev) <= {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx",
                        "fd", "stdin", "stdout", "stderr"}, dev
    mods = rt.modules()
    assert mods["probe"]["pid"] > 1 and mods["probe"]["restartCount"] == 0
    assert mods["probe"]["memoryBytes"] > 0


def test_root_and_capabilities_only_when_asked(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {
        "asroot": sh_module(PROBE, user="root"),
        "bind": sh_module(PROBE, capabilities=["CAP_NET_BIND_SERVICE"]),
    })
    root = rt.wait_log("asroot", "done")
    assert status_field(root, "Uid") == "0"
    assert status_field(root, "CapEff") == "0000000000000000", "root, but no capabilities"
    bind = rt.wait_log("bind", "done")
    assert status_field(bind, "Uid") == "65534"
    assert status_field(bind, "CapEff") == "0000000000000400"
    assert status_field(bind, "CapBnd") == "0000000000000400"


@pytest.mark.parametrize("restart,script,expect_status,restarts", [
    ("never", "exit 3", "failed", False),
    ("never", "exit 0", "stopped", False),
    ("on-failure", "exit 0", "stopped", False),
    ("on-failure", "exit 3", None, True),
    ("always", "exit 0", None, True),
    ("on-unhealthy", "exit 4", None, True),
])
def test_restart_policies(tmp_path, daemons, restart, script, expect_status, restarts):
    rt = Runtime(tmp_path, daemons, {"m": sh_module(script, restart=restart)})
    if restarts:
        m = rt.wait(lambda m: m["m"]["restartCount"] >= 3, what="3 restarts")["m"]
        assert m["runtimeStatus"] in ("backoff", "running", "failed")
    else:
        m = rt.wait_status("m", expect_status)
        time.sleep(0.5)
        assert rt.modules()["m"]["restartCount"] == 0
    code = int(script.split()[1])
    assert rt.modules()["m"]["exitCode"] == code


def test_killed_by_signal_is_a_failure(tmp_path, daemons):
    # PID 1 of a pid namespace cannot be killed from inside it: kill it from here.
    rt = Runtime(tmp_path, daemons, {"m": sh_module("exec sleep 1000", restart="on-failure")})
    os.kill(rt.wait_status("m", "running")["pid"], signal.SIGKILL)
    m = rt.wait(lambda m: m["m"]["restartCount"] >= 1, what="a restart")["m"]
    assert m["signal"] == 9 and "exitCode" not in m


def test_backoff_doubles_with_jitter_up_to_the_cap(tmp_path, daemons):
    config = {"restartBackoff": {"initialMs": 100, "maxMs": 400, "resetAfterSecs": 600}}
    rt = Runtime(tmp_path, daemons, {"m": sh_module("exit 1")}, config=config)
    rt.wait(lambda m: m["m"]["restartCount"] >= 5, what="5 restarts")
    delays = [int(d) for d in re.findall(r"module m: exited 1; restarting in (\d+) ms", rt.daemon.text())]
    assert len(delays) >= 5
    for got, nominal in zip(delays, [100, 200, 400, 400, 400]):
        assert nominal * 0.8 <= got <= nominal * 1.2, (delays, nominal)
    assert rt.modules()["m"]["runtimeStatus"] in ("backoff", "running")


def test_stop_escalates_to_sigkill_after_timeout(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {"stubborn": sh_module("trap '' TERM; while :; do sleep 1; done",
                                                           stopTimeoutSecs=1)})
    rt.wait_status("stubborn", "running")
    r = rt.cli("stop", "stubborn")
    assert r.returncode == 0, r.stderr
    m = rt.wait_status("stubborn", "stopped")
    assert m["status"] == "stopped"
    assert "did not stop within 1 s, killing it" in rt.daemon.text()


def test_startup_order_and_reverse_shutdown(tmp_path, daemons):
    loop = "trap 'exit 0' TERM; while :; do sleep 0.1; done"
    rt = Runtime(tmp_path, daemons, {
        "third": sh_module(loop, order=3),
        "first": sh_module(loop, order=1),
        "second": sh_module(loop, order=2),
        "last": sh_module(loop),
    })
    rt.wait(lambda m: all(x["runtimeStatus"] == "running" for x in m.values()), what="all running")
    log = rt.daemon.text()
    started = [re.search(rf"module {n}: running", log).start() for n in ("first", "second", "third", "last")]
    assert started == sorted(started), log
    assert rt.daemon.stop() == 0
    log = rt.daemon.text()
    stopped = [log.index(f"module {n}: exited 0; stopped") for n in ("last", "third", "second", "first")]
    assert stopped == sorted(stopped), log


def test_crash_record_keeps_the_tail(tmp_path, daemons):
    script = "i=0; while [ $i -lt 2000 ]; do echo line $i; i=$((i+1)); done; echo '<3>dying now' >&2; exit 5"
    rt = Runtime(tmp_path, daemons, {"crashy": sh_module(script, restart="never")})
    rt.wait_status("crashy", "failed")
    records = sorted((rt.state / "crash").glob("crashy-*.crash"))
    assert len(records) == 1
    text = records[0].read_text()
    assert "module: crashy\n" in text and "status: exited 5\n" in text
    assert "line 1999" in text and "line 0\n" not in text
    assert "stderr <3> dying now" in text
    assert len(text) < 20 * 1024
    assert "crash record" in rt.daemon.text()


def test_pids_limit_stops_a_fork_bomb(tmp_path, daemons):
    bomb = "i=0; while [ $i -lt 64 ]; do sleep 4242 & i=$((i+1)); done; echo spawned; wait"
    rt = Runtime(tmp_path, daemons, {
        "bomb": sh_module(bomb, limits={"pids": 16}, restart="never"),
        "bystander": sh_module("exec sleep 1000"),
    })
    out = rt.wait_log("bomb", "Cannot fork")
    assert "spawned" not in out, "the 17th process was refused"
    assert rt.wait_status("bomb", "failed")["exitCode"] == 2
    assert pids_matching("sleep\x004242") == [], "the module's processes died with it"
    assert rt.modules()["bystander"]["runtimeStatus"] == "running"


def test_memory_limit_kills_only_the_hog(tmp_path, daemons):
    hog = "exec python3 -c 'import time; b = bytearray(256 << 20); time.sleep(100)'"
    rt = Runtime(tmp_path, daemons, {
        "hog": sh_module(hog, limits={"memoryBytes": 32 << 20}, restart="never"),
        "bystander": sh_module("exec sleep 1000"),
    })
    m = rt.wait_status("hog", "failed")
    assert m["signal"] == 9
    assert "out of memory" in m["statusDescription"]
    assert rt.modules()["bystander"]["runtimeStatus"] == "running"


def test_stop_kills_grandchildren(tmp_path, daemons):
    script = "setsid sleep 5151 & sleep 5152 & echo forked; wait"
    rt = Runtime(tmp_path, daemons, {"parent": sh_module(script)})
    rt.wait_log("parent", "forked")
    assert len(pids_matching("sleep\x005151")) == 1
    assert rt.cli("stop", "parent").returncode == 0
    rt.wait_status("parent", "stopped")
    assert pids_matching("sleep\x005151") == [] and pids_matching("sleep\x005152") == []


def test_daemon_kill_9_leaves_no_orphans_after_restart(tmp_path, daemons):
    script = "setsid sleep 6161 & exec sleep 6162"
    rt = Runtime(tmp_path, daemons, {"m": sh_module(script)})
    rt.wait_status("m", "running")
    deadline = time.monotonic() + 10
    while len(pids_matching("sleep\x006161")) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    old = set(pids_matching("sleep\x00616"))
    assert len(old) == 2
    rt.daemon.proc.kill()
    rt.daemon.proc.wait()
    again = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment), "--state-dir", str(rt.state))
    assert again.wait_for("agent: ready"), again.text()
    assert "killed 2 leftover module processes" in again.text()
    rt.daemon = again
    rt.wait_status("m", "running")
    new = set(pids_matching("sleep\x00616"))
    assert not (old & new), "no process of the old run is left"
    assert zombies_of(again.proc.pid) == []


def test_exec_failure_names_the_cause(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {"bad": {"type": "native", "restartPolicy": "never",
                                             "settings": {"image": "/nonexistent/sensor"}}})
    m = rt.wait_status("bad", "failed")
    assert "cannot exec /nonexistent/sensor: No such file or directory" in m["statusDescription"]
    assert "module bad: cannot exec /nonexistent/sensor: No such file or directory" in rt.daemon.text()
    assert m["exitCode"] == 127


def test_reload_touches_only_what_changed(tmp_path, daemons):
    loop = "exec sleep 1000"
    rt = Runtime(tmp_path, daemons, {"keep": sh_module(loop), "change": sh_module(loop),
                                     "drop": sh_module(loop)})
    before = rt.wait(lambda m: all(x["runtimeStatus"] == "running" for x in m.values()), what="running")
    rt.redeploy({"keep": sh_module(loop), "change": sh_module("exec sleep 1001"),
                 "add": sh_module(loop)})
    after = rt.wait(lambda m: "drop" not in m and "add" in m and m["add"]["runtimeStatus"] == "running"
                    and m["change"]["runtimeStatus"] == "running" and m["change"]["pid"] != before["change"]["pid"],
                    what="reload applied")
    assert after["keep"]["pid"] == before["keep"]["pid"], "unchanged module untouched"
    assert "deployment file changed: reloading" in rt.daemon.text()


def test_watchdog_restarts_an_unhealthy_module(tmp_path, daemons):
    beat = 'eval "echo >&$TINYEDGE_NOTIFY_FD"'  # dash wants a literal fd number
    beating = f"while :; do {beat}; sleep 0.2; done"
    silent = f"{beat}; exec sleep 1000"
    rt = Runtime(tmp_path, daemons, {
        "beating": sh_module(beating, watchdogSecs=1, restart="on-unhealthy"),
        "silent": sh_module(silent, watchdogSecs=1, restart="on-unhealthy", stopTimeoutSecs=1),
    })
    rt.wait(lambda m: m["silent"]["restartCount"] >= 1, what="silent restarted")
    assert "module silent: no heartbeat for 1 s: unhealthy" in rt.daemon.text()
    assert rt.modules()["beating"]["restartCount"] == 0
    assert rt.modules()["beating"]["runtimeStatus"] == "running"


def test_cli_verbs(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {"talker": sh_module(
        "i=0; while :; do echo msg $i; i=$((i+1)); sleep 0.05; done")})
    rt.wait_log("talker", "msg 5")
    sock = rt.state / "control.sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
    table = rt.cli("list")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split()[:3] == ["NAME", "STATUS", "PID"]
    assert re.search(r"^talker\s+running\s+\d+", table.stdout, re.M)
    tail = rt.logs("talker", "--tail", "2").splitlines()
    assert len(tail) == 2 and all(re.match(r"\d{4}-\d\d-\d\dT.*Z stdout msg \d+$", l) for l in tail)
    assert rt.logs("talker", "--since", "1h").count("msg") >= 5
    r = rt.cli("logs", "nobody-here")
    assert r.returncode == 2 and "no module named 'nobody-here'" in r.stderr
    r = rt.cli("logs", "talker", "--since", "yesterday")
    assert r.returncode == 2 and "--since" in r.stderr
    assert rt.cli("stop", "talker").returncode == 0
    assert rt.wait_status("talker", "stopped")["status"] == "stopped"
    assert rt.cli("start", "talker").returncode == 0
    first = rt.wait_status("talker", "running")["pid"]
    assert rt.cli("restart", "talker").returncode == 0
    rt.wait(lambda m: m["talker"]["runtimeStatus"] == "running" and m["talker"]["pid"] != first,
            what="restarted")
    r = run("list", "--state-dir", str(tmp_path / "no-daemon"))
    assert r.returncode == 1 and "no daemon running" in r.stderr


def test_logs_follow_streams_new_lines(tmp_path, daemons):
    import subprocess
    from conftest import BIN
    rt = Runtime(tmp_path, daemons, {"ticker": sh_module(
        "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.05; done")})
    rt.wait_log("ticker", "tick 1")
    p = subprocess.Popen([BIN, "logs", "ticker", "-f", "--tail", "1", "--state-dir", str(rt.state)],
                         stdout=subprocess.PIPE, text=True)
    try:
        seen = [p.stdout.readline() for _ in range(10)]
    finally:
        p.kill()
        p.wait()
    ticks = [int(re.search(r"tick (\d+)", l).group(1)) for l in seen]
    assert ticks == list(range(ticks[0], ticks[0] + 10)), "consecutive lines, none lost"


def test_one_off_run_with_module_flags(tmp_path, daemons):
    state = tmp_path / "s"
    cfg = write_json(tmp_path, "c.json", FAST_CONFIG)
    d = daemons(tmp_path, "-c", str(cfg), "--state-dir", str(state),
                "--module", "oneoff=/bin/sh:-c:echo hello from flags; exec sleep 1000")
    assert d.wait_for("module oneoff: running"), d.text()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = run("logs", "oneoff", "--state-dir", str(state))
        if "hello from flags" in r.stdout:
            break
        time.sleep(0.05)
    assert "hello from flags" in r.stdout


def test_persisted_logs_when_configured(tmp_path, daemons):
    config = dict(FAST_CONFIG, logs={"persist": True})
    rt = Runtime(tmp_path, daemons, {"writer": sh_module("echo persisted line; exec sleep 1000")},
                 config=config)
    rt.wait_log("writer", "persisted line")
    log = rt.state / "logs" / "writer.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "persisted line" not in (log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    assert "stdout persisted line" in log.read_text()


def test_backoff_starts_over_after_a_healthy_run(tmp_path, daemons):
    config = {"restartBackoff": {"initialMs": 100, "maxMs": 1000, "resetAfterSecs": 1}}
    rt = Runtime(tmp_path, daemons, {"m": sh_module("sleep 1.2; exit 1")}, config=config)
    rt.wait(lambda m: m["m"]["restartCount"] >= 3, timeout=30, what="3 restarts")
    delays = [int(d) for d in re.findall(r"module m: exited 1; restarting in (\d+) ms", rt.daemon.text())]
    assert len(delays) >= 3 and all(80 <= d <= 120 for d in delays), delays


def test_a_failed_group_does_not_hold_back_the_next(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {
        "broken": {"type": "native", "restartPolicy": "never", "startupOrder": 1,
                   "settings": {"image": "/nonexistent/first"}},
        "later": sh_module("exec sleep 1000", order=2),
    })
    rt.wait_status("broken", "failed")
    rt.wait_status("later", "running")


def test_control_socket_rejects_bad_requests(tmp_path, daemons):
    import socket
    rt = Runtime(tmp_path, daemons, {"m": sh_module("exec sleep 1000")})

    def ask(data):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(str(rt.state / "control.sock"))
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        s.close()
        return json.loads(out.decode())

    assert ask(b"not json\n") == {"error": "malformed request", "code": 2}
    assert ask(b'{"cmd": 1}\n') == {"error": "invalid request", "code": 2}
    assert ask(b'{"cmd": "fly", "module": "m"}\n') == {"error": "unknown cmd", "code": 2}
    assert ask(b'{"cmd": "stop"}\n')["code"] == 2
    assert ask(b"{" + b" " * 5000 + b"\n") == {"error": "malformed request", "code": 2}
    assert ask(b"{" + b" " * (3 << 20) + b"\n") == {"error": "request too long", "code": 2}
    assert ask(b'{"cmd": "list", "extra": true}\n')["code"] == 2
    assert ask(b'{"cmd": "list"}\n')["modules"][0]["name"] == "m"
    assert rt.daemon.proc.poll() is None


def test_an_image_under_tmp_still_runs(tmp_path, daemons):
    import shutil
    import tempfile
    from conftest import BIN
    d = tempfile.mkdtemp(dir="/tmp", prefix="te-image-")
    try:
        os.chmod(d, 0o755)
        image = os.path.join(d, "tinyedge")
        shutil.copy(BIN, image)
        mod = {"type": "native", "settings": {"image": image,
                                              "createOptions": {"args": ["module", "sim-sensor"]}}}
        mod["env"] = {"INTERVAL_MS": {"value": "50"}}
        rt = Runtime(tmp_path, daemons, {"sensor": mod})
        rt.wait(lambda m: m["sensor"].get("messagesOut", 0) >= 3, what="the module runs and sends")
    finally:
        shutil.rmtree(d)
