"""tinyedge run: starts, reports its state, reloads on SIGHUP, stops cleanly."""
import os
import signal
import stat

import time

from conftest import SAMPLE_CONFIG, sample_deployment, write_json


def wait_signals_blocked(pid, timeout=15):
    """True once SIGTERM is blocked in pid: the daemon reads it from its signalfd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("SigBlk:") and int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
                    return True
        time.sleep(0.05)
    return False


def test_starts_with_sample_deployment_and_stops_on_sigterm(tmp_path, daemons):
    state = tmp_path / "state" / "nested"
    d = daemons(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(sample_deployment(tmp_path)),
                "--state-dir", str(state))
    assert d.wait_for("agent: ready"), d.text()
    log = d.text()
    assert "2 modules, 2 routes" in log
    assert "module sim-sensor: image" in log
    assert "route filterToUpstream (priority 1)" in log
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert d.stop() == 0
    assert "agent: stopped" in d.text()
    for line in d.text().splitlines():
        assert line.startswith(f"tinyedge[{d.proc.pid}]: "), line


def test_sigint_stops_too(tmp_path, daemons):
    d = daemons(tmp_path, "-c", SAMPLE_CONFIG, "--module", "x=/bin/true",
                "--state-dir", str(tmp_path / "s"))
    assert d.wait_for("agent: ready"), d.text()
    d.signal(signal.SIGINT)
    assert d.proc.wait(timeout=15) == 0


def test_second_daemon_on_same_state_dir_refused(tmp_path, daemons):
    args = ("-c", SAMPLE_CONFIG, "--module", "x=/bin/true", "--state-dir", str(tmp_path / "s"))
    first = daemons(tmp_path, *args)
    assert first.wait_for("agent: ready"), first.text()
    second = daemons(tmp_path, *args)
    assert second.proc.wait(timeout=15) == 1
    assert "another tinyedge daemon uses this state dir" in second.text()
    assert first.proc.poll() is None


def test_state_dir_from_environment(tmp_path, daemons):
    state = tmp_path / "from-env"
    d = daemons(tmp_path, "-c", SAMPLE_CONFIG, "--module", "x=/bin/true",
                env={"TINYEDGE_STATE_DIR": str(state)})
    assert d.wait_for("agent: ready"), d.text()
    assert (state / "daemon.lock").exists()
    assert f"state dir {state}" in d.text()


def test_invalid_manifest_exits_2_with_position(tmp_path, daemons):
    m = write_json(tmp_path, "m.json", '{"modulesContent": {"$edgeAgent": 1}}')
    d = daemons(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m), "--state-dir", str(tmp_path / "s"))
    assert d.proc.wait(timeout=15) == 2
    assert f"{m}:1:35: $edgeAgent must be an object" in d.text()


def test_sighup_reload_keeps_old_deployment_when_invalid(tmp_path, daemons):
    m = sample_deployment(tmp_path)
    d = daemons(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m), "--state-dir", str(tmp_path / "s"))
    assert d.wait_for("agent: ready"), d.text()
    good = m.read_text()
    m.write_text(good.replace('"status": "running"', '"status": "paused"', 1))
    d.signal(signal.SIGHUP)
    assert d.wait_for("reload failed"), d.text()
    assert "modules.sim-sensor.status must be one of running, stopped" in d.text()
    assert d.proc.poll() is None
    m.write_text(good.replace('"restartPolicy": "on-failure"', '"restartPolicy": "never"'))
    d.signal(signal.SIGHUP)
    assert d.wait_for("SIGHUP: reloading", count=2), d.text()
    assert d.wait_for("restartPolicy never"), d.text()
    assert d.stop() == 0


def test_log_level_flag_filters(tmp_path, daemons):
    d = daemons(tmp_path, "-c", SAMPLE_CONFIG, "--module", "x=/bin/true",
                "--state-dir", str(tmp_path / "s"), "--log-level", "warn")
    assert wait_signals_blocked(d.proc.pid), d.text()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(timeout=15) == 0
    assert " INFO " not in d.text()
