"""Cloud deployments: the $edgeAgent (and $edgeHub) module twins through the
IoT Hub simulator, the generic-MQTT retained deployment, lastDesiredStatus
codes, the last good deployment at boot, rollback and admission.

IoT Hub keeps each identity's $iothub/... topics apart; a plain broker does
not (and mosquitto 2.0.11 does not strip a listener's mount_point from what
it sends). So each identity has its own mosquitto on the same port of its
own loopback address: the device on 127.0.0.1, $edgeAgent on 127.0.0.2,
$edgeHub on 127.0.0.3, reached through each connection string's
GatewayHostName; each simulator connects to its identity's broker."""
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import FAST_CONFIG, manifest, run
from test_messages import builtin
from test_store import start
from test_upstream import MOSQUITTO, free_port

pytestmark = pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")

KEY = "dGVzdCBrZXkgZm9yIHRoZSBkZXZpY2UgaWRlbnRpdHk="
AGENT_KEY = "YWdlbnQga2V5IGZvciB0aGUgJGVkZ2VBZ2VudCBpZA=="
HUB_KEY = "aHViIGtleSBmb3IgdGhlICRlZGdlSHViIGlkZW50aXR5"


class Broker3:
    """Three mosquittos, one per identity, on one port."""

    HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3")

    def __init__(self, tmp):
        self.tmp, self.port, self.procs = tmp, free_port(), []

    def start(self):
        for i, host in enumerate(self.HOSTS):
            conf = self.tmp / f"mosquitto-{i}.conf"
            conf.write_text(f"listener {self.port} {host}\nallow_anonymous true\nuser root\n")
            log = open(self.tmp / f"mosquitto-{i}.log", "ab")
            self.procs.append(subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=log,
                                               stderr=log))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                for host in self.HOSTS:
                    socket.create_connection((host, self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("mosquitto did not start")

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=10)


def azure_config(broker, hub=False, **deployment):
    cs = "HostName=hub.example;DeviceId=dev1;SharedAccessKey={};GatewayHostName={}"
    ids = {"$edgeAgent": cs.format(AGENT_KEY, "127.0.0.2").replace(
        "DeviceId=dev1;", "DeviceId=dev1;ModuleId=$edgeAgent;")}
    if hub:
        ids["$edgeHub"] = cs.format(HUB_KEY, "127.0.0.3").replace(
            "DeviceId=dev1;", "DeviceId=dev1;ModuleId=$edgeHub;")
    cfg = dict(FAST_CONFIG, upstream={
        "protocol": "azure-iot-hub", "tls": False, "port": broker.port, "keepAliveSecs": 5,
        "connectionString": cs.format(KEY, "127.0.0.1"), "moduleIdentities": ids})
    if deployment:
        cfg["deployment"] = deployment
    return cfg


def agent_desired(modules, version="1.1"):
    return {"schemaVersion": version, "runtime": {"type": "native"},
            "systemModules": {}, "modules": modules}


def sims(broker, agent_modules, device_desired=None, hub_routes=None):
    import hubsim
    out = {"agent": hubsim.HubSim("127.0.0.2", broker.port, "dev1", module="$edgeAgent",
                                  client_id="sim-agent",
                                  twin={"desired": agent_desired(agent_modules)}).start(),
           "device": hubsim.HubSim("127.0.0.1", broker.port, "dev1", client_id="sim-device",
                                   twin={"desired": device_desired or {}}).start()}
    if hub_routes is not None:
        out["hub"] = hubsim.HubSim("127.0.0.3", broker.port, "dev1", module="$edgeHub",
                                   client_id="sim-hub",
                                   twin={"desired": {"schemaVersion": "1.1",
                                                     "routes": hub_routes}}).start()
    return out


def last_status(sim):
    return sim.twin()["reported"].get("lastDesiredStatus", {})


def wait_status(sim, code, version=None, timeout=20):
    ok = sim.wait_for(lambda s: last_status(s).get("code") == code and
                      (version is None or s.twin()["reported"].get("lastDesiredVersion") == version),
                      timeout=timeout)
    assert ok, sim.twin()["reported"]
    return last_status(sim)


def names(rt):
    return sorted(rt.modules())


def test_cloud_deployment_adds_changes_and_removes_modules(tmp_path, daemons):
    broker = Broker3(tmp_path).start()
    s = sims(broker, {"filter": builtin("filter"), "echo": builtin("echo")},
             device_desired={"filter": {"TemperatureThreshold": 25}})
    try:
        local = manifest({"local": builtin("echo")})
        rt = start(tmp_path, daemons, local, azure_config(broker))
        # The cloud's deployment replaces the local one, by difference.
        wait_status(s["agent"], 200, version=1)
        rt.wait(lambda m: sorted(m) == ["echo", "filter"], what="cloud modules")
        rt.wait_status("filter", "running")
        rep = s["agent"].twin()["reported"]
        assert s["agent"].wait_for(
            lambda x: x.twin()["reported"].get("modules", {}).get("filter", {})
            .get("runtimeStatus") == "running", timeout=15), rep
        rep = s["agent"].twin()["reported"]
        mod = rep["modules"]["filter"]
        for key in ("exitCode", "lastStartTimeUtc", "restartCount", "status", "restartPolicy"):
            assert key in mod, mod
        assert rep["runtime"]["platform"]["os"] == "linux"
        assert rep["version"]["version"]
        assert "local" not in rep["modules"]
        echo_pid = rt.modules()["echo"]["pid"]

        # The built-in methods on the $edgeAgent identity, as Azure.
        agent = s["agent"]
        status, body = agent.invoke("ping")
        assert status == 200, body
        before = rt.modules()["echo"]["restartCount"]
        status, body = agent.invoke("RestartModule", {"schemaVersion": "1.0", "id": "echo"})
        assert status == 200, body
        rt.wait(lambda m: m["echo"]["restartCount"] == before + 1 and
                m["echo"]["runtimeStatus"] == "running", what="echo restarted")
        status, body = agent.invoke("RestartModule", {"schemaVersion": "1.0", "id": "nope"})
        assert status == 500 and "nope" in body["message"], body
        status, body = agent.invoke("GetModuleLogs", {
            "schemaVersion": "1.0", "items": [{"id": "^(echo|filter)$", "filter": {"tail": 5}}],
            "encoding": "none", "contentType": "text"})
        assert status == 200 and sorted(i["id"] for i in body) == ["echo", "filter"], body
        status, body = agent.invoke("GetTaskStatus", {"schemaVersion": "1.0",
                                                      "correlationId": "0000"})
        assert status == 200 and body["status"] == "Unknown", body
        status, body = agent.invoke("Reboot")
        assert status == 400, body
        filter_pid = rt.modules()["filter"]["pid"]
        echo_pid = rt.modules()["echo"]["pid"]

        # A patch: change filter (restarted), remove echo, add sink.
        v = s["agent"].set_desired({"modules": {
            "filter": builtin("filter", env={"X": "1"}), "echo": None,
            "sink": builtin("sink")}})
        wait_status(s["agent"], 200, version=v)
        mods = rt.wait(lambda m: sorted(m) == ["filter", "sink"], what="changed deployment")
        rt.wait(lambda m: m["filter"]["pid"] not in (0, filter_pid, None), what="filter restarted")
        assert echo_pid
        assert s["agent"].wait_for(lambda x: x.twin()["reported"]["modules"].get("echo", 0) is None
                                   or "echo" not in x.twin()["reported"]["modules"], timeout=15)

        # Invalid: nothing changes, 400 names the problem.
        before = rt.modules()
        v = s["agent"].set_desired({"modules": {"bad": dict(builtin("echo"), type="docker")}})
        st = wait_status(s["agent"], 400, version=v)
        assert "docker" in st["description"] or "type" in st["description"], st
        assert sorted(rt.modules()) == sorted(before)
        assert rt.modules()["filter"]["pid"] == before["filter"]["pid"]

        # An unsupported schema version: 412, nothing changes.
        v = s["agent"].set_desired({"modules": {"bad": None}, "schemaVersion": "9.9"})
        wait_status(s["agent"], 412, version=v)
        assert sorted(rt.modules()) == ["filter", "sink"]
    finally:
        for x in s.values():
            x.stop()
        broker.stop()

    # Boot with the network down: the last good deployment runs at once.
    rt.daemon.stop()
    rt2 = start(tmp_path, daemons, local, azure_config(broker))
    assert rt2.daemon.wait_for("running the last good cloud deployment"), rt2.daemon.text()
    rt2.wait(lambda m: sorted(m) == ["filter", "sink"], what="last good deployment")
    rt2.wait_status("filter", "running")


def test_module_twin_desired_from_the_cloud_reaches_the_module(tmp_path, daemons):
    broker = Broker3(tmp_path).start()
    s = sims(broker, {"filter": builtin("filter")},
             device_desired={"filter": {"TemperatureThreshold": 25}})
    try:
        rt = start(tmp_path, daemons, manifest({}), azure_config(broker))
        rt.wait_status("filter", "running")
        dev = s["device"]
        assert dev.wait_for(lambda x: x.twin()["reported"].get("filter", {})
                            .get("TemperatureThreshold") == 25, timeout=20), dev.twin()
        dev.set_desired({"filter": {"TemperatureThreshold": 42}})
        assert dev.wait_for(lambda x: x.twin()["reported"].get("filter", {})
                            .get("TemperatureThreshold") == 42, timeout=20), dev.twin()
        r = rt.cli("twin", "filter")
        assert r.returncode == 0, r.stderr
        twin = json.loads(r.stdout)
        assert twin["desired"]["TemperatureThreshold"] == 42
        # A stale patch (an older $version) is ignored.
        dev.set_desired({"filter": {"TemperatureThreshold": 1}}, version=2)
        time.sleep(1)
        twin = json.loads(rt.cli("twin", "filter").stdout)
        assert twin["desired"]["TemperatureThreshold"] == 42
    finally:
        for x in s.values():
            x.stop()
        broker.stop()


def test_edgehub_twin_gives_the_routes(tmp_path, daemons):
    broker = Broker3(tmp_path).start()
    s = sims(broker, {"counter": builtin("counter", "--count", "5", restart="never")},
             hub_routes={"up": "FROM /messages/modules/counter/* INTO $upstream"})
    try:
        rt = start(tmp_path, daemons, manifest({}), azure_config(broker, hub=True))
        wait_status(s["agent"], 200)
        msgs = s["device"].wait_telemetry(5, timeout=30)
        assert [int(m.app["seq"]) for m in msgs] == list(range(5))
    finally:
        for x in s.values():
            x.stop()
        broker.stop()


def test_admission_check_refuses_an_over_budget_deployment(tmp_path, daemons):
    broker = Broker3(tmp_path).start()
    s = sims(broker, {"echo": builtin("echo")})
    try:
        cfg = azure_config(broker, memoryBudgetBytes=64 << 20)
        rt = start(tmp_path, daemons, manifest({}), cfg)
        wait_status(s["agent"], 200, version=1)
        rt.wait_status("echo", "running")
        v = s["agent"].set_desired({"modules": {
            "big": builtin("echo", limits={"memoryBytes": 128 << 20})}})
        st = wait_status(s["agent"], 400, version=v)
        assert "budget" in st["description"], st
        assert sorted(rt.modules()) == ["echo"]
    finally:
        for x in s.values():
            x.stop()
        broker.stop()


def test_local_manifest_over_budget_is_refused_at_start(tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"deployment": {"memoryBudgetBytes": 8 << 20}}))
    dep = tmp_path / "deployment.json"
    dep.write_text(json.dumps(manifest({"big": builtin("echo", limits={"memoryBytes": 64 << 20})})))
    r = run("run", "-c", str(cfg), "-m", str(dep), "--state-dir", str(tmp_path / "state"),
            timeout=20)
    assert r.returncode == 2, r.stderr
    assert "budget" in r.stderr


def test_crash_looping_update_rolls_back_when_enabled(tmp_path, daemons):
    broker = Broker3(tmp_path).start()
    s = sims(broker, {"echo": builtin("echo")})
    try:
        cfg = azure_config(broker, rollbackOnFailure=True, probationSecs=2)
        rt = start(tmp_path, daemons, manifest({}), cfg)
        wait_status(s["agent"], 200, version=1)
        rt.wait_status("echo", "running")
        # Let version 1 pass its probation and become the last good one.
        assert rt.daemon.wait_for("passed probation", timeout=20), rt.daemon.text()
        crash = {"type": "native", "status": "running", "restartPolicy": "always",
                 "settings": {"image": "/bin/false", "createOptions": {"stopTimeoutSecs": 1}}}
        v = s["agent"].set_desired({"modules": {"echo": crash}})
        st = wait_status(s["agent"], 500, version=v, timeout=30)
        assert "rolled back" in st["description"], st
        assert rt.daemon.wait_for("rolled back"), rt.daemon.text()
        rt.wait(lambda m: m["echo"]["runtimeStatus"] == "running" and
                m["echo"].get("uptimeSecs", 0) >= 2, what="echo back on the good image")
        assert os.path.exists(rt.state / "deployment.good.json")
        good = json.loads((rt.state / "deployment.good.json").read_text())
        assert good["$version"] == 1
    finally:
        for x in s.values():
            x.stop()
        broker.stop()


def test_generic_mqtt_retained_deployment(tmp_path, daemons):
    import paho.mqtt.client as mqtt
    from test_upstream import Broker
    broker = Broker(tmp_path).start()
    got = {}
    c = mqtt.Client(client_id="operator")
    c.on_message = lambda cl, u, m: got.setdefault(m.topic, []).append(json.loads(m.payload))
    c.connect("127.0.0.1", broker.port)
    c.subscribe("tinyedge/dev1/+/twin/reported/+", qos=1)
    c.loop_start()
    try:
        doc = manifest({"echo": builtin("echo")})
        doc["$version"] = 3
        c.publish("tinyedge/dev1/deployment", json.dumps(doc), qos=1, retain=True).wait_for_publish()
        cfg = dict(FAST_CONFIG, deviceId="dev1", upstream={
            "protocol": "mqtt", "host": "127.0.0.1", "port": broker.port, "tls": False})
        rt = start(tmp_path, daemons, manifest({"local": builtin("echo")}), cfg)
        rt.wait(lambda m: sorted(m) == ["echo"], what="deployment from the broker")

        def reported():
            return [p for t, ps in got.items() if t.startswith("tinyedge/dev1/$edgeAgent/")
                    for p in ps]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(
                p.get("lastDesiredStatus", {}).get("code") == 200 for p in reported()):
            time.sleep(0.1)
        ok = [p for p in reported() if p.get("lastDesiredStatus", {}).get("code") == 200]
        assert ok and ok[-1]["lastDesiredVersion"] == 3, got
    finally:
        c.loop_stop()
        c.disconnect()
        broker.stop()
