"""Messages between modules through the rings: real processes, real namespaces."""
import re
import signal
import time

from conftest import BIN, FAST_CONFIG, Runtime, manifest, write_json


def builtin(name, *args, order=None, env=None, restart="always"):
    mod = {"type": "native", "restartPolicy": restart,
           "settings": {"image": BIN, "createOptions": {"args": ["module", name, *args],
                                                          "stopTimeoutSecs": 2}}}
    if order is not None:
        mod["startupOrder"] = order
    if env:
        mod["env"] = {k: {"value": v} for k, v in env.items()}
    return mod


def deploy(tmp_path, daemons, modules, routes):
    doc = manifest(modules, routes)
    rt = Runtime.__new__(Runtime)
    rt.tmp = tmp_path
    rt.state = tmp_path / "state"
    rt.config = write_json(tmp_path, "config.json", FAST_CONFIG)
    rt.deployment = write_json(tmp_path, "deployment.json", doc)
    rt.daemon = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                        "--state-dir", str(rt.state))
    assert rt.daemon.wait_for("agent: ready"), rt.daemon.text()
    return rt


def list_doc(rt):
    import json
    r = rt.cli("list", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_counter_to_sink_in_order_none_lost(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "counter": builtin("counter", "--count", "20000", order=2),
    }, {"c2s": 'FROM /messages/modules/counter/outputs/output1 INTO BrokeredEndpoint("/modules/sink/inputs/in")'})
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 20000, what="20000 delivered")
    doc = list_doc(rt)
    mods = {m["name"]: m for m in doc["modules"]}
    assert mods["counter"]["messagesOut"] == 20000
    assert mods["sink"]["messagesIn"] == 20000
    route = {r["name"]: r for r in doc["routes"]}["c2s"]
    assert (route["matched"], route["delivered"], route["dropped"]) == (20000, 20000, 0)
    assert rt.cli("stop", "sink").returncode == 0
    out = rt.wait_log("sink", "final")
    final = re.search(r"final received (\d+) gaps (\d+) reordered (\d+)", out)
    assert final.groups() == ("20000", "0", "0"), out


def test_where_condition_selects_messages(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "counter": builtin("counter", "--count", "1000", order=2),
    }, {"even": 'FROM /messages/modules/counter/outputs/* WHERE as_number(seq) % 2 = 0 '
                'INTO BrokeredEndpoint("/modules/sink/inputs/in")'})
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 1000, what="counter done")
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 500, what="evens delivered")
    time.sleep(0.3)
    assert rt.modules()["sink"]["messagesIn"] == 500


def test_sensor_filter_echo_chain_and_upstream(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sim-sensor": builtin("sim-sensor", order=3, env={"INTERVAL_MS": "20"}),
        "filter": builtin("filter", order=2, env={"THRESHOLD": "-100"}),
        "echo": builtin("echo", order=1),
    }, {
        "toFilter": 'FROM /messages/modules/sim-sensor/outputs/temperature '
                    'INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
        "toEcho": "FROM /messages/modules/filter/outputs/output1 WHERE MessageType = 'Alert' "
                  'INTO BrokeredEndpoint("/modules/echo/inputs/input1")',
        "up": "FROM /messages/modules/echo/outputs/* WHERE $body.machine.temperature > -100 INTO $upstream",
    })
    rt.wait(lambda m: m["echo"].get("messagesOut", 0) >= 10, what="messages through the chain")
    doc = list_doc(rt)
    assert doc["upstreamMessages"] >= 10
    routes = {r["name"]: r for r in doc["routes"]}
    assert routes["toEcho"]["delivered"] >= 10 and routes["up"]["delivered"] >= 10


def test_messages_wait_for_a_stopped_module(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "counter": builtin("counter", "--rate", "500", order=2),
    }, {"c2s": 'FROM /messages/* INTO BrokeredEndpoint("/modules/sink/inputs/in")'})
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 20, what="flowing")
    assert rt.cli("stop", "sink").returncode == 0
    rt.wait_status("sink", "stopped")
    rt.wait(lambda m: m["sink"]["messagesSpilled"] >= 100, what="messages queued for the stopped sink")
    assert rt.cli("start", "sink").returncode == 0
    rt.wait(lambda m: m["sink"]["runtimeStatus"] == "running" and m["sink"]["spillBytes"] == 0,
            what="queue delivered")
    doc = list_doc(rt)
    assert {r["name"]: r for r in doc["routes"]}["c2s"]["dropped"] == 0
    assert {m["name"]: m for m in doc["modules"]}["sink"]["messagesDropped"] == 0
