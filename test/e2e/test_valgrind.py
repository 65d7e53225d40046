"""valgrind memcheck on real daemon runs. The shipped binary is static musl,
whose malloc memcheck cannot see, so these run build/vg/tinyedge (`make
valgrind-build`: the same sources with gcc and glibc, -O1 -g; built here
when missing) under `valgrind --tool=memcheck --error-exitcode=99
--leak-check=full --errors-for-leak-kinds=definite --track-fds=yes`, and
assert: exit 0 after SIGTERM, 0 errors (the daemon's and its pre-exec
children's: sandbox setup runs under memcheck until exec), no definite
leak, no fd the daemon opened left open at exit. The modules themselves
are the static binary, not checked (--trace-children=no).

Short: the scenario over TLS; TE_LONG=1 adds it over plain MQTT, crash
loops with a stdio module, and runs the e2e files of VALGRIND_FILES (16) with every Daemon
under memcheck (TINYEDGE_VALGRIND=1, conftest)."""
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import (BIN, FAST_CONFIG, ROOT, VG_BIN, manifest, run, sh_module,
                      valgrind_report, write_json)
import conftest
from test_crash import figures
from test_messages import builtin
from test_upstream import MOSQUITTO, Broker, Subscriber, pki  # noqa: F401 (fixture)

LONG = os.environ.get("TE_LONG") == "1"

pytestmark = [pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed"),
              pytest.mark.skipif(not os.path.exists("/usr/bin/valgrind"),
                                 reason="valgrind not installed: make prereqs-test")]


@pytest.fixture(scope="module")
def vg_bin():
    build = os.path.relpath(os.path.dirname(BIN), ROOT)
    r = subprocess.run(["make", "-C", ROOT, "--no-print-directory", f"BUILD={build}",
                        "valgrind-build"], capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return VG_BIN


def doc(rate):
    return manifest({
        "sink": builtin("sink", order=1),
        "filter": builtin("filter", order=1),
        "counter": builtin("counter", "--count", "2000", "--rate", str(rate), order=2,
                           restart="never"),
    }, {
        "up": "FROM /messages/modules/counter/* INTO $upstream",
        "c2s": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        "f2up": "FROM /messages/modules/filter/* INTO $upstream",
    })


def queue(state):
    r = run("queue", "--json", "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("tls", [True] + ([False] if LONG else []))
def test_a_daemon_run_is_memcheck_clean(tmp_path, vg_bin, tls, request):
    pki_dir = request.getfixturevalue("pki") if tls else None
    broker = Broker(tmp_path, pki_dir)
    up = {"protocol": "mqtt", "host": "localhost", "port": broker.port, "tls": tls,
          "keepAliveSecs": 5}
    if tls:
        up["caFile"] = str(pki_dir / "ca.pem")
    cfg = write_json(tmp_path, "config.json", dict(FAST_CONFIG, deviceId="dev1", upstream=up))
    dep = write_json(tmp_path, "deployment.json", doc(1000))
    state = tmp_path / "state"
    vg_dir = tmp_path / "vg"
    vg_dir.mkdir()
    log = open(tmp_path / "daemon.log", "w")
    p = subprocess.Popen(conftest.valgrind_cmd(vg_dir, "run", "-c", str(cfg), "-m", str(dep),
                                               "--state-dir", str(state)),
                         stdout=log, stderr=subprocess.STDOUT)
    sub = None
    t0 = time.monotonic()
    try:
        def wait(pred, what, timeout=120):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                assert p.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                try:
                    if pred():
                        return
                except (AssertionError, KeyError):
                    pass
                time.sleep(0.5)
            raise AssertionError(f"timed out: {what}\n" + (tmp_path / "daemon.log").read_text()[-3000:])
        # Offline: the counter's 2000 go to the store.
        wait(lambda: queue(state)["upstream"]["committed"] >= 2000, "2000 stored offline")
        # A twin patch, a method, a reload that changes one module.
        r = run("twin", "filter", "--desired", '{"TemperatureThreshold": 30}', "--state-dir",
                str(state))
        assert r.returncode == 0, r.stderr
        r = run("call", "sink", "ping", '{"x": 1}', "--timeout", "60", "--state-dir", str(state),
                timeout=90)
        assert r.returncode == 0 and "sink" in r.stdout, (r.stdout, r.stderr)
        dep.write_text(json.dumps(doc(2000)))
        p.send_signal(signal.SIGHUP)
        wait(lambda: (tmp_path / "daemon.log").read_text().count("module counter: running") >= 2,
             "counter restarted by the reload")
        # The broker comes: the backlog drains.
        broker.start()
        sub = Subscriber(broker, ca=str(pki_dir / "ca.pem") if tls else None)
        wait(lambda: len(sub.msgs) >= 2000 and queue(state)["store"]["messages"] == 0,
             "backlog drained", timeout=300)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=120)
        log.close()
        if sub:
            sub.stop()
        broker.stop()
    rep = valgrind_report(vg_dir, p.pid)
    assert rep is not None, "no memcheck summary"
    figures(f"valgrind-{'tls' if tls else 'plain'}", {
        "secs": round(time.monotonic() - t0, 1), "exit": rc, "errors": rep["errors"],
        "definitelyLostBytes": rep["definite"], "fdsLeftOpen": len(rep["fds"]),
        "received": len(sub.msgs)})
    assert rc == 0, rep["text"][-5000:]
    assert rep["errors"] == 0, rep["text"][-8000:]
    assert rep["definite"] == 0, rep["text"][-8000:]
    assert not rep["fds"], rep["fds"]


@pytest.mark.skipif(not LONG, reason="TE_LONG=1 (make test-long): keeps make test short")
def test_crash_loops_stdio_lines_and_a_purge_are_memcheck_clean(tmp_path, vg_bin):
    # A crash-looping module (backoff, crash records), a stdio module that
    # also writes malformed lines, the queue peeked and purged.
    dep = write_json(tmp_path, "deployment.json", manifest({
        "crasher": sh_module("echo boom; exit 3"),
        "liner": sh_module("while :; do echo '{\"output\":\"o\",\"body\":\"x\"}'; "
                           "echo 'not json'; sleep 0.2; done", io="stdio"),
    }, {"up": "FROM /messages/modules/liner/* INTO $upstream"}))
    cfg = write_json(tmp_path, "config.json", FAST_CONFIG)
    state, vg_dir = tmp_path / "state", tmp_path / "vg"
    vg_dir.mkdir()
    log = open(tmp_path / "daemon.log", "w")
    p = subprocess.Popen(conftest.valgrind_cmd(vg_dir, "run", "-c", str(cfg), "-m", str(dep),
                                               "--state-dir", str(state)),
                         stdout=log, stderr=subprocess.STDOUT)

    def mods():
        r = run("list", "--json", "--state-dir", str(state))
        return {m["name"]: m for m in json.loads(r.stdout)["modules"]} if r.returncode == 0 else {}
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = mods()
            if m and m["crasher"]["restartCount"] >= 3 and m["liner"].get("linesMalformed", 0) >= 3:
                break
            time.sleep(0.5)
        else:
            raise AssertionError((tmp_path / "daemon.log").read_text()[-3000:])
        r = run("queue", "peek", "$upstream", "--state-dir", str(state))
        assert r.returncode == 0 and json.loads(r.stdout)["records"], r.stderr
        assert run("queue", "purge", "$upstream", "--state-dir", str(state)).returncode == 0
        assert run("restart", "liner", "--state-dir", str(state)).returncode == 0
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=120)
        log.close()
    rep = valgrind_report(vg_dir, p.pid)
    assert rep is not None, "no memcheck summary"
    assert rc == 0, rep["text"][-5000:]
    assert rep["errors"] == 0 and rep["definite"] == 0, rep["text"][-8000:]
    assert not rep["fds"], rep["fds"]


# The e2e files whose every daemon runs under memcheck in `make test-long`
# (the others kill daemons on purpose, read their signal masks, bound their
# memory or count seccomp denials, which valgrind's own signal handling,
# shadow memory and missing seccomp listener change; or start no daemon).
VALGRIND_FILES = ["test_store.py", "test_messages.py", "test_twins.py", "test_methods.py",
                  "test_upstream.py", "test_upstream_x509.py", "test_supervisor.py",
                  "test_deploy.py", "test_route.py", "test_metrics.py", "test_cli.py",
                  "test_shell.py", "test_hubsim.py", "test_images_fetch.py",
                  "test_images_run.py", "test_images_ota.py"]


@pytest.mark.skipif(not LONG, reason="TE_LONG=1 (make test-long)")
def test_e2e_files_under_memcheck(vg_bin):
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, TINYEDGE_VALGRIND="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        *[os.path.join(here, f) for f in VALGRIND_FILES]],
                       capture_output=True, text=True, env=env, timeout=3600)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
    print(f"\n{', '.join(VALGRIND_FILES)} under memcheck: {r.stdout.strip().splitlines()[-1]}")
