"""Messages between modules through the rings: real processes, real namespaces."""
import re
import signal
import subprocess
import time

from conftest import BIN, FAST_CONFIG, Runtime, manifest, sh_module, write_json


def builtin(name, *args, order=None, env=None, restart="always", status="running", **create):
    opts = {"args": ["module", name, *args], "stopTimeoutSecs": 2, **create}
    mod = {"type": "native", "restartPolicy": restart, "status": status,
           "settings": {"image": BIN, "createOptions": opts}}
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


def sink_final(rt, name="sink"):
    """(received, gaps, reordered, first) from the sink's last final report."""
    out = rt.wait_log(name, "final")
    finals = re.findall(r"final received (\d+) gaps (\d+) reordered (\d+) first (-?\d+)", out)
    assert finals, out
    return tuple(int(x) for x in finals[-1])


C2S = 'FROM /messages/modules/counter/outputs/output1 INTO BrokeredEndpoint("/modules/sink/inputs/in")'


def routes_by_name(rt):
    return {r["name"]: r for r in list_doc(rt)["routes"]}


def test_a_module_restarted_mid_stream_loses_nothing(tmp_path, daemons):
    # The sink is restarted while the counter streams: what the first
    # instance had not read from its in-ring goes to the next one, in order.
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", "--delay-us", "20", order=1, ringBytes=65536),
        "counter": builtin("counter", "--count", "20000", "--rate", "8000", order=2),
    }, {"c2s": C2S})
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 3000, what="streaming")
    assert rt.cli("restart", "sink").returncode == 0
    r1 = sink_final(rt)
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 20000, what="counter done")
    rt.wait(lambda m: m["sink"]["runtimeStatus"] == "running" and m["sink"]["spillBytes"] == 0,
            what="queue drained")
    time.sleep(0.5)
    assert rt.cli("stop", "sink").returncode == 0
    rt.wait(lambda m: len(re.findall("final received", rt.logs("sink"))) >= 2,
            what="second instance's final report")
    r2 = sink_final(rt)
    assert r1[1:3] == (0, 0) and r1[3] == 0, r1
    # The second instance starts exactly where the first stopped.
    assert r2 == (20000 - r1[0], 0, 0, r1[0]), (r1, r2)
    assert routes_by_name(rt)["c2s"]["dropped"] == 0


def test_overflow_drop_newest_drops_what_does_not_fit(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", "--delay-us", "300", order=1, ringBytes=8192),
        # Faster than the sink, but not so fast that all drops come last.
        "counter": builtin("counter", "--count", "3000", "--rate", "10000", order=2),
    }, {"c2s": {"route": C2S, "overflow": "drop-newest"}})
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 3000, what="counter done")
    route = routes_by_name(rt)["c2s"]
    assert route["overflow"] == "drop-newest"
    stats = rt.cli("stats")
    assert stats.returncode == 0, stats.stderr
    row = next(line.split() for line in stats.stdout.splitlines() if line.startswith("c2s "))
    assert row[1] == "drop-newest" and int(row[2]) == 3000 and int(row[5]) == route["droppedFull"]
    assert route["droppedFull"] > 0 and route["droppedOldest"] == 0
    assert route["delivered"] + route["droppedFull"] == 3000
    rt.wait(lambda m: m["sink"]["spillBytes"] == 0 and m["sink"]["messagesSpilled"] == 0,
            what="nothing queued")
    rt.wait(lambda m: m["sink"]["messagesIn"] == route["delivered"], what="delivered all kept")
    assert rt.cli("stop", "sink").returncode == 0
    received, gaps, reordered, first = sink_final(rt)
    assert received == route["delivered"] and reordered == 0 and gaps > 0 and first == 0


def test_overflow_drop_oldest_keeps_the_newest(tmp_path, daemons):
    # The sink is stopped: 3000 x 4 KiB messages overflow its 4 MiB queue.
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1, status="stopped", ringBytes=65536),
        "counter": builtin("counter", "--count", "3000", "--size", "4096", order=2),
    }, {"c2s": {"route": C2S, "overflow": "drop-oldest"}})
    rt.wait(lambda m: m["counter"].get("messagesOut", 0) >= 3000, what="counter done")
    route = routes_by_name(rt)["c2s"]
    assert route["droppedOldest"] > 0 and route["droppedFull"] == 0
    kept = 3000 - route["droppedOldest"]
    assert rt.cli("start", "sink").returncode == 0
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= kept and m["sink"]["spillBytes"] == 0,
            what="queue delivered")
    assert rt.cli("stop", "sink").returncode == 0
    assert sink_final(rt) == (kept, 0, 0, 3000 - kept)


def test_overflow_block_pauses_the_sender_and_drops_nothing(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", "--delay-us", "50", order=1, ringBytes=8192),
        "counter": builtin("counter", "--count", "20000", order=2, ringBytes=8192),
    }, {"c2s": {"route": C2S, "overflow": "block"}})
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 20000, timeout=60, what="all delivered")
    mods = {m["name"]: m for m in list_doc(rt)["modules"]}
    assert mods["counter"]["blockedCount"] > 0
    # Blocking keeps the queue at about one message: never a backlog.
    assert mods["sink"]["messagesSpilled"] <= mods["counter"]["blockedCount"]
    assert routes_by_name(rt)["c2s"]["dropped"] == 0
    assert rt.cli("stop", "sink").returncode == 0
    assert sink_final(rt) == (20000, 0, 0, 0)


SED_RELAY = r"""exec sed -u 's/^{"input":"[^"]*"/{"output":"out1"/'"""


def stdio_module(script, order=None, **create):
    mod = sh_module(script, order=order, io="stdio", **create)
    return mod


def test_a_stdio_shell_module_in_the_middle(tmp_path, daemons):
    # counter -> sed (JSON lines on stdin/stdout) -> sink: every message
    # through a shell pipeline, in order, bodies and properties intact.
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "relay": stdio_module(SED_RELAY, order=2),
        "counter": builtin("counter", "--count", "2000", order=3),
    }, {
        "toRelay": {"route": 'FROM /messages/modules/counter/* INTO BrokeredEndpoint("/modules/relay/inputs/in1")',
                    "overflow": "block"},
        "toSink": 'FROM /messages/modules/relay/outputs/out1 WHERE as_number(seq) >= 0 '
                  'INTO BrokeredEndpoint("/modules/sink/inputs/in")',
    })
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 2000, timeout=30, what="2000 through sed")
    mods = {m["name"]: m for m in list_doc(rt)["modules"]}
    assert mods["relay"]["messagesIn"] == 2000 and mods["relay"]["messagesOut"] == 2000
    assert mods["relay"]["linesMalformed"] == 0
    assert rt.cli("stop", "sink").returncode == 0
    assert sink_final(rt) == (2000, 0, 0, 0)


def test_a_stdio_module_writing_json_and_garbage(tmp_path, daemons):
    script = r"""
echo '{"output":"o","properties":{"n":"1"},"body":{"t":10}}'
echo 'not json at all'
echo '{"output":"o","bogus":1}'
echo '{"output":"o","properties":{"n":"2"},"body":{"t":40}}'
echo '{"output":"o","properties":{"n":"3"},"bodyBase64":"AAEC/w=="}'
exec sleep 1000
"""
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "gen": stdio_module(script, order=2),
    }, {
        "hot": 'FROM /messages/modules/gen/outputs/o WHERE $body.t > 20 '
               'INTO BrokeredEndpoint("/modules/sink/inputs/hot")',
        "bin": 'FROM /messages/modules/gen/outputs/o WHERE n = \'3\' '
               'INTO BrokeredEndpoint("/modules/sink/inputs/bin")',
    })
    rt.wait(lambda m: m["gen"].get("messagesOut", 0) >= 3 and m["gen"].get("linesMalformed", 0) >= 2,
            what="three messages and two bad lines")
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 2, what="two delivered")
    time.sleep(0.2)
    routes = routes_by_name(rt)
    assert routes["hot"]["delivered"] == 1 and routes["bin"]["delivered"] == 1
    text = rt.daemon.text()
    assert "module gen: stdout line 2: column 1" in text, text
    assert "bogus" in text
    assert rt.modules()["gen"]["runtimeStatus"] == "running"


def test_send_injects_into_a_module_input(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "relay": stdio_module(SED_RELAY, order=2),
        "late": builtin("sink", order=3, status="stopped"),
    }, {"toSink": 'FROM /messages/modules/relay/* INTO BrokeredEndpoint("/modules/sink/inputs/in")'})
    for i in range(3):
        r = rt.cli("send", "relay", "in1", "--prop", f"seq={i}", "--sys", "messageId=m%d" % i,
                   "--text", '{"seq":%d,"ns":0}' % i)
        assert r.returncode == 0, r.stderr
    r = subprocess.run([BIN, "send", "relay", "in1", "--body", "-", "--state-dir", str(rt.state)],
                       input=b"\x00\x01binary\xff", capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 4, what="through the relay")
    mods = rt.modules()
    assert mods["relay"]["messagesIn"] == 4 and mods["relay"]["linesMalformed"] == 0
    # A stopped module's input waits for it.
    assert rt.cli("send", "late", "in", "--text", '{"seq":0,"ns":0}').returncode == 0
    assert rt.modules()["late"]["messagesSpilled"] == 1
    assert rt.cli("start", "late").returncode == 0
    rt.wait(lambda m: m["late"].get("messagesIn", 0) == 1, what="delivered on start")
    bad = rt.cli("send", "nosuch", "in", "--text", "x")
    assert bad.returncode == 2 and "no module named 'nosuch'" in bad.stderr
    bad = rt.cli("send", "sink", "--text", "x")
    assert bad.returncode == 2 and "expected a module NAME and an INPUT" in bad.stderr
    bad = rt.cli("send", "sink", "in", "--prop", "novalue")
    assert bad.returncode == 2 and "--prop 'novalue'" in bad.stderr
    assert rt.cli("stop", "sink").returncode == 0
    assert sink_final(rt)[:3] == (4, 0, 0)


SDK_MODULE = r"""
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <tinyedge/module.h>

/* Upper-cases nothing, just tags each message and passes it on. */
static void on_input(te_module *m, const struct te_message *msg, void *arg)
{
    struct te_property tag = { "via", "sdk-module" };
    struct te_message out = *msg;

    out.props = &tag;
    out.nprops = 1;
    while (te_module_send(m, "tagged", &out) == -EAGAIN)
        ;
}

int main(void)
{
    te_module *m;
    int r = te_module_open(&m);

    if (r < 0) {
        fprintf(stderr, "open: %s\n", strerror(-r));
        return 1;
    }
    printf("hello from %s\n", te_module_name(m));
    fflush(stdout);
    te_module_on_input(m, on_input, NULL);
    for (;;)
        if (te_module_dispatch(m, 1000) < 0)
            return 2;
}
"""


def test_a_c_module_built_with_the_sdk(tmp_path, daemons):
    import os
    import subprocess
    root = os.path.dirname(os.path.dirname(BIN))
    src = tmp_path / "tagger.c"
    src.write_text(SDK_MODULE)
    # Next to the daemon: pytest's own directories are private to root.
    exe_dir = os.path.join(os.path.dirname(BIN), "e2e", tmp_path.name)
    os.makedirs(exe_dir, exist_ok=True)
    exe = os.path.join(exe_dir, "tagger")
    subprocess.run(["musl-gcc", "-static", "-Os", "-I", os.path.join(root, "include"),
                    str(src), os.path.join(os.path.dirname(BIN), "libtinyedge-module.a"), "-o", str(exe)],
                   check=True)
    tagger = {"type": "native", "startupOrder": 2,
              "settings": {"image": exe, "createOptions": {"stopTimeoutSecs": 1}}}
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "tagger": tagger,
        "counter": builtin("counter", "--count", "1000", order=3),
    }, {
        "in": 'FROM /messages/modules/counter/outputs/* INTO BrokeredEndpoint("/modules/tagger/inputs/in")',
        "out": "FROM /messages/modules/tagger/outputs/tagged WHERE via = 'sdk-module' "
               'INTO BrokeredEndpoint("/modules/sink/inputs/in")',
    })
    rt.wait_log("tagger", "hello from tagger")
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 1000, what="1000 through the C module")
    assert rt.modules()["tagger"]["messagesOut"] == 1000


SCRIBBLER = r"""
import mmap, os, random, struct, time
m = mmap.mmap(3, 0)
rnd = random.Random(os.getpid())
for _ in range(200000):
    off = rnd.randrange(1024, len(m) - 8)   # control blocks and data, not the header
    m[off:off + 8] = rnd.randbytes(8)
    if rnd.random() < 0.01:
        os.write(4, struct.pack("Q", 1))    # wake the daemon to read the garbage
time.sleep(100)
"""


def test_a_module_scribbling_over_its_ring_hurts_only_itself(tmp_path, daemons):
    scribbler = {"type": "native", "restartPolicy": "always",
                 "settings": {"image": "/usr/bin/python3",
                              "createOptions": {"args": ["-c", SCRIBBLER], "stopTimeoutSecs": 1}}}
    rt = deploy(tmp_path, daemons, {
        "sink": builtin("sink", order=1),
        "scribbler": scribbler,
        "counter": builtin("counter", "--count", "5000", "--rate", "2000", order=2),
    }, {
        "honest": 'FROM /messages/modules/counter/outputs/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
        "noise": 'FROM /messages/modules/scribbler/outputs/* INTO BrokeredEndpoint("/modules/sink/inputs/noise")',
    })
    m = rt.wait(lambda m: m["scribbler"]["restartCount"] >= 2, what="scribbler killed and restarted")["scribbler"]
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 5000, timeout=30, what="honest traffic delivered")
    assert rt.daemon.proc.poll() is None
    assert "corrupted its message ring" in rt.daemon.text()
    assert rt.cli("stop", "sink").returncode == 0
    out = rt.wait_log("sink", "final")
    final = re.search(r"final received (\d+) gaps (\d+) reordered (\d+)", out)
    assert int(final.group(1)) >= 5000 and final.group(2) == "0" and final.group(3) == "0", out


def twin_deployment(threshold):
    doc = manifest({
        "sink": builtin("sink", order=1),
        "filter": builtin("filter", order=2),
        "sim-sensor": builtin("sim-sensor", order=3, env={"INTERVAL_MS": "10"}),
    }, {
        "toFilter": 'FROM /messages/modules/sim-sensor/* INTO BrokeredEndpoint("/modules/filter/inputs/input1")',
        "toSink": 'FROM /messages/modules/filter/* INTO BrokeredEndpoint("/modules/sink/inputs/in")',
    })
    doc["modulesContent"]["filter"] = {"properties.desired": {"TemperatureThreshold": threshold}}
    return doc


def twin_of(rt, name):
    import json
    r = rt.cli("twin", name)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_twin_desired_from_the_deployment_and_reported_by_the_module(tmp_path, daemons):
    import json
    rt = Runtime.__new__(Runtime)
    rt.tmp, rt.state = tmp_path, tmp_path / "state"
    rt.config = write_json(tmp_path, "config.json", FAST_CONFIG)
    rt.deployment = write_json(tmp_path, "deployment.json", twin_deployment(1000))
    rt.daemon = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                        "--state-dir", str(rt.state))
    assert rt.daemon.wait_for("agent: ready"), rt.daemon.text()
    rt.wait_log("filter", "threshold 1000 from the twin")
    rt.wait(lambda m: m["filter"].get("messagesIn", 0) >= 50, what="readings reach the filter")
    twin = twin_of(rt, "filter")
    assert twin["desired"] == {"TemperatureThreshold": 1000, "$version": 1}
    assert twin["reported"] == {"TemperatureThreshold": 1000, "$version": 2}
    assert rt.modules()["sink"].get("messagesIn", 0) == 0
    pid = rt.modules()["filter"]["pid"]
    # A new desired value reaches the running module: no restart.
    rt.deployment.write_text(json.dumps(twin_deployment(-1000)))
    rt.daemon.signal(signal.SIGHUP)
    rt.wait_log("filter", "threshold -1000 from the twin")
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 20, what="readings pass the new threshold")
    twin = twin_of(rt, "filter")
    assert twin["desired"] == {"TemperatureThreshold": -1000, "$version": 2}
    assert twin["reported"] == {"TemperatureThreshold": -1000, "$version": 3}
    assert rt.modules()["filter"]["pid"] == pid
    bad = rt.cli("twin", "nosuch")
    assert bad.returncode == 2 and "no module named 'nosuch'" in bad.stderr


def test_direct_methods(tmp_path, daemons):
    rt = deploy(tmp_path, daemons, {
        "echo": builtin("echo", order=1),
        "idle": builtin("echo", order=2, status="stopped"),
        "script": stdio_module("exec cat", order=3),
    }, {})
    rt.wait_status("echo", "running")
    r = rt.cli("call", "echo", "ping", '{"x":[1,2]}')
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == '{"module":"echo","payload":{"x":[1,2]}}'
    r = rt.cli("call", "echo", "reboot")
    assert r.returncode == 1 and "status 404" in r.stderr
    assert r.stdout.strip() == '{"message":"no method named reboot"}'
    r = rt.cli("call", "idle", "ping")
    assert r.returncode == 1 and "not running" in r.stderr
    rt.wait_status("script", "running")
    r = rt.cli("call", "script", "ping")
    assert r.returncode == 2 and "stdio modules have no direct methods" in r.stderr
    r = rt.cli("call", "echo", "ping", "{not json")
    assert r.returncode == 2 and "PAYLOAD is not valid JSON" in r.stderr
    r = rt.cli("call", "echo", "ping", "--timeout", "0")
    assert r.returncode == 2 and "--timeout '0'" in r.stderr
    # A module that does not dispatch never answers: the call times out.
    (tmp_path / "b").mkdir()
    rt2 = deploy(tmp_path / "b", daemons, {
        "deaf": builtin("counter", "--count", "1", order=1),
    }, {})
    rt2.wait_status("deaf", "running")
    r = rt2.cli("call", "deaf", "ping", "--timeout", "1")
    assert r.returncode == 1 and "did not answer within 1 s" in r.stderr


def test_twin_change_notifications_are_a_route_source(tmp_path, daemons):
    import json
    doc = twin_deployment(1000)
    doc["modulesContent"]["$edgeHub"]["properties.desired"]["routes"] = {
        "changes": 'FROM /twinChangeNotifications WHERE moduleId = \'filter\' '
                   'INTO BrokeredEndpoint("/modules/sink/inputs/twin")'}
    rt = Runtime.__new__(Runtime)
    rt.tmp, rt.state = tmp_path, tmp_path / "state"
    rt.config = write_json(tmp_path, "config.json", FAST_CONFIG)
    rt.deployment = write_json(tmp_path, "deployment.json", doc)
    rt.daemon = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                        "--state-dir", str(rt.state))
    assert rt.daemon.wait_for("agent: ready"), rt.daemon.text()
    # The filter reports its threshold: one notification.
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 1, what="a reported-change notification")
    doc["modulesContent"]["filter"]["properties.desired"]["TemperatureThreshold"] = 5000
    rt.deployment.write_text(json.dumps(doc))
    rt.daemon.signal(signal.SIGHUP)
    # A desired change, then the filter's new report: two more.
    rt.wait(lambda m: m["sink"].get("messagesIn", 0) >= 3, what="desired and reported changes")
    time.sleep(0.3)
    assert rt.modules()["sink"]["messagesIn"] == 3
    route = routes_by_name(rt)["changes"]
    assert route["matched"] == 3 and route["delivered"] == 3
