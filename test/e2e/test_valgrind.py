"""The daemon under valgrind's memcheck (docs/reliability.md): the glibc
build of the same sources (`make valgrind-build`, build/vg/tinyedge), real
modules, a real mosquitto over TLS. A run passes when memcheck reports no
error and no definite leak (the `daemons` fixture checks each log).

TE_LONG=1 adds more scenarios; TINYEDGE_VALGRIND=1 runs every e2e file's
daemons under memcheck instead (conftest.py)."""
import json
import os
import signal
import time

import pytest

from conftest import FAST_CONFIG, VG_BIN, run, sample_deployment, sh_module, write_json
from test_store import peek, queue
from test_upstream import Broker, Subscriber, mqtt_config, pki  # noqa: F401 (fixture)

LONG = os.environ.get("TE_LONG") == "1"
VG = {"TINYEDGE_VALGRIND": "1"}

pytestmark = pytest.mark.skipif(not os.path.exists(VG_BIN), reason="make valgrind-build first")


class Rt:
    def __init__(self, tmp_path, daemons, config, deployment):
        self.state = tmp_path / "state"
        self.config = write_json(tmp_path, "config.json", config)
        self.deployment = deployment
        self.daemon = daemons(tmp_path, "-c", str(self.config), "-m", str(deployment),
                              "--state-dir", str(self.state), env=VG)
        assert self.daemon.wait_for("agent: ready", timeout=60), self.daemon.text()

    def cli(self, *args, timeout=60):
        return run(*args, "--state-dir", str(self.state), timeout=timeout)

    def modules(self):
        r = self.cli("list", "--json")
        assert r.returncode == 0, r.stderr
        return {m["name"]: m for m in json.loads(r.stdout)["modules"]}

    def wait(self, pred, timeout=60, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return
            time.sleep(0.2)
        raise AssertionError(f"timed out: {what}\n{self.daemon.text()}")

    def stop(self):
        rc = self.daemon.stop(timeout=90)
        assert rc == 0, f"exit {rc}: {self.daemon.text()}\n{self.daemon.vg_log.read_text()}"


def test_offline_drain_twin_method_reload_stop_are_memcheck_clean(tmp_path, daemons, pki):
    broker = Broker(tmp_path, pki)
    config = mqtt_config(broker, pki)
    rt = Rt(tmp_path, daemons, config, sample_deployment(tmp_path))
    # offline: the filter's messages pile up in the store
    rt.wait(lambda r: queue(r)["store"]["messages"] >= 5, what="messages queued offline")
    assert "connect: Connection refused" in rt.daemon.text()
    broker.start()
    sub = Subscriber(broker, ca=str(pki / "ca.pem"))
    try:
        assert sub.wait(5, timeout=60) >= 5, rt.daemon.text()
        # a twin change, reported back by the filter
        r = rt.cli("twin", "filter", "--desired", '{"TemperatureThreshold": -100}')
        assert r.returncode == 0, r.stderr
        rt.wait(lambda r: json.loads(r.cli("twin", "filter").stdout)
                .get("reported", {}).get("TemperatureThreshold") == -100, what="twin reported")
        # the agent's methods
        r = rt.cli("call", "$edgeAgent", "ping")
        assert r.returncode == 0, r.stderr
        r = rt.cli("call", "$edgeAgent", "GetModuleLogs", json.dumps(
            {"schemaVersion": "1.0", "encoding": "none", "contentType": "text",
             "items": [{"id": "filter", "filter": {"tail": 5}}]}))
        assert r.returncode == 0, r.stderr
        # a reload that changes a module (it is restarted with its new env)
        doc = json.loads(rt.deployment.read_text())
        desired = doc["modulesContent"]["$edgeAgent"]["properties.desired"]
        desired["modules"]["sim-sensor"]["env"]["INTERVAL_MS"]["value"] = "50"
        rt.deployment.write_text(json.dumps(doc))
        rt.daemon.signal(signal.SIGHUP)
        assert rt.daemon.wait_for("SIGHUP: reloading", timeout=30)
        assert rt.daemon.wait_for("module sim-sensor: running (pid", count=2, timeout=60), rt.daemon.text()
        before = len(sub.msgs)
        assert sub.wait(before + 5, timeout=60) >= before + 5
        # a broker restart: reconnect, drain again
        broker.stop()
        time.sleep(1)
        broker.start()
        assert sub.wait(len(sub.msgs) + 5, timeout=90) > 0
        assert rt.cli("metrics").returncode == 0
    finally:
        sub.stop()
        rt.stop()
        broker.stop()
    assert "ERROR SUMMARY: 0 errors" in rt.daemon.vg_log.read_text()


def test_modules_crashing_and_a_store_purge_are_memcheck_clean(tmp_path, daemons):
    # Crash-looping module (restart backoff, crash records), a stdio module
    # with malformed lines, the store purged, the queue peeked.
    mods = {
        "crasher": sh_module("echo boom; exit 3"),
        "liner": sh_module("while :; do echo '{\"output\":\"o\",\"body\":\"x\"}'; "
                           "echo 'not json'; sleep 0.2; done", io="stdio"),
    }
    doc = {"modulesContent": {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": mods}},
        "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": {
            "up": "FROM /messages/modules/liner/* INTO $upstream"}}}}}
    rt = Rt(tmp_path, daemons, FAST_CONFIG, write_json(tmp_path, "deployment.json", doc))
    rt.wait(lambda r: r.modules()["crasher"]["restartCount"] >= 3, what="crash loop")
    rt.wait(lambda r: r.modules()["liner"].get("linesMalformed", 0) >= 3, what="malformed lines")
    assert len(peek(rt)) >= 1
    assert rt.cli("queue", "purge", "$upstream").returncode == 0
    if LONG:
        assert rt.cli("restart", "liner").returncode == 0
        assert rt.cli("stop", "crasher").returncode == 0
        time.sleep(5)
    rt.stop()
    assert "ERROR SUMMARY: 0 errors" in rt.daemon.vg_log.read_text()


# The e2e files whose every daemon runs under memcheck in `make test-long`
# (the others kill daemons with SIGKILL on purpose, read their signal masks
# or time their starts, which valgrind's own signal handling and slowness
# change; their code paths are covered here too).
VALGRIND_FILES = ["test_store.py", "test_messages.py", "test_twins.py", "test_methods.py",
                  "test_upstream.py"]


@pytest.mark.skipif(not LONG, reason="TE_LONG=1 (make test-long)")
def test_e2e_files_under_memcheck():
    import subprocess
    import sys
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, TINYEDGE_VALGRIND="1")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        *[os.path.join(here, f) for f in VALGRIND_FILES]],
                       capture_output=True, text=True, env=env, timeout=3600)
    assert r.returncode == 0, r.stdout[-8000:] + r.stderr[-2000:]
