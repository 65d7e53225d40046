"""The agent's built-in direct methods ($edgeAgent: ping, RestartModule,
GetModuleLogs, GetTaskStatus) through `tinyedge call '$edgeAgent' ...`
against a real daemon (docs/methods.md)."""
import datetime
import json
import time

from conftest import BIN, Runtime, sh_module

AGENT = "$edgeAgent"


def sim_sensor():
    return {"type": "native", "status": "running", "restartPolicy": "always",
            "settings": {"image": BIN, "createOptions": {
                "args": ["module", "sim-sensor"], "stopTimeoutSecs": 2}}}


def call(rt, method, payload=None):
    """(exit code, the printed payload as JSON, stderr)."""
    args = ["call", AGENT, method] + ([json.dumps(payload)] if payload is not None else [])
    r = rt.cli(*args)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def get_logs(rt, items, content_type="text", **extra):
    rc, answer, err = call(rt, "GetModuleLogs", dict(
        {"schemaVersion": "1.0", "items": items, "encoding": "none",
         "contentType": content_type}, **extra))
    assert rc == 0, err
    return {e["id"]: e["payload"] for e in answer}


def lines(payload):
    return payload.splitlines()


def logging_runtime(tmp_path, daemons):
    rt = Runtime(tmp_path, daemons, {
        "sensor-a": sh_module('echo "<6>a info one"; echo "<3>a error two"; '
                              'echo "a plain stderr" >&2; echo "<7>a debug three"; exec sleep 1000'),
        "sensor-b": sh_module('echo "b info one"; echo "<4>b warning"; exec sleep 1000'),
        "other": sh_module('echo "other line"; exec sleep 1000'),
        "sim": sim_sensor(),
    })
    rt.wait_log("sensor-a", "a debug three")
    rt.wait_log("sensor-b", "b warning")
    rt.wait_log("other", "other line")
    return rt


def test_ping_unknown_method_and_task_status(tmp_path, daemons):
    rt = logging_runtime(tmp_path, daemons)
    assert call(rt, "ping")[:2] == (0, None)
    assert call(rt, "ping", {})[:2] == (0, None)
    rc, answer, err = call(rt, "Reboot", {})
    assert rc == 1 and "$edgeAgent answered status 400" in err
    assert "Command 'Reboot' not found" in answer["message"]
    rc, answer, err = call(rt, "GetTaskStatus",
                           {"schemaVersion": "1.0", "correlationId": "no-such-task"})
    assert rc == 0, err
    assert answer == {"status": "Unknown", "message": "", "correlationId": "no-such-task"}
    rc, answer, err = call(rt, "GetTaskStatus", {"schemaVersion": "1.0"})
    assert rc == 1 and "status 400" in err and "correlationId" in answer["message"]


def test_get_module_logs_filters(tmp_path, daemons):
    rt = logging_runtime(tmp_path, daemons)
    # The id is a regular expression, matched without case: two modules.
    got = get_logs(rt, [{"id": "^SENSOR"}])
    assert set(got) == {"sensor-a", "sensor-b"}
    # (stdout and stderr are separate pipes: their lines' order is not known.)
    a = lines(got["sensor-a"])
    assert sorted(l.split(" ", 1)[1] for l in a) == [
        "stderr a plain stderr", "stdout <3> a error two", "stdout <6> a info one",
        "stdout <7> a debug three"]
    assert [l.split(" ", 1)[1] for l in lines(got["sensor-b"])] == [
        "stdout b info one", "stdout <4> b warning"]

    got = get_logs(rt, [{"id": "sensor-b", "filter": {"tail": 1}}])
    assert [l.split(" ", 2)[2] for l in lines(got["sensor-b"])] == ["<4> b warning"]
    got = get_logs(rt, [{"id": "^sensor", "filter": {"regex": "error|warning"}}])
    assert "a error two" in got["sensor-a"] and len(lines(got["sensor-a"])) == 1
    assert "b warning" in got["sensor-b"] and len(lines(got["sensor-b"])) == 1
    # loglevel: at most 3; an unprefixed stderr line is level 3, stdout 6.
    got = get_logs(rt, [{"id": "^sensor", "filter": {"loglevel": 3}}])
    assert sorted(l.split(" ", 2)[2] for l in lines(got["sensor-a"])) == ["<3> a error two",
                                                                           "a plain stderr"]
    assert got["sensor-b"] == ""

    hour_ago = int(time.time()) - 3600
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1))
    for since, count in (("1 hour", 4), ("2 hours 30 minutes", 4), (hour_ago, 4),
                         (later.strftime("%Y-%m-%dT%H:%M:%SZ"), 0)):
        got = get_logs(rt, [{"id": "sensor-a", "filter": {"since": since}}])
        assert len(lines(got["sensor-a"])) == count, since
    got = get_logs(rt, [{"id": "sensor-a", "filter": {"until": str(hour_ago)}}])
    assert got["sensor-a"] == ""

    # contentType json: as edgeAgent, the payload is a string holding a JSON
    # array of ModuleLogMessage objects.
    got = get_logs(rt, [{"id": "sensor-a"}], "json")
    msgs = json.loads(got["sensor-a"])
    assert sorted((m["text"], m["stream"], m["loglevel"]) for m in msgs) == [
        ("a debug three", "stdout", 7), ("a error two", "stdout", 3),
        ("a info one", "stdout", 6), ("a plain stderr", "stderr", 3)]
    assert set(msgs[0]) == {"iothub", "device", "id", "stream", "loglevel", "text", "timestamp"}
    assert all(m["id"] == "sensor-a" and m["timestamp"].endswith("Z") for m in msgs)

    rc, answer, err = call(rt, "GetModuleLogs", {"schemaVersion": "1.0",
                                                 "items": [{"id": ".*"}], "encoding": "gzip"})
    assert rc == 1 and "status 400" in err and "gzip is not supported" in answer["message"]
    rc, answer, err = call(rt, "GetModuleLogs", {"schemaVersion": "1.0", "items": [
        {"id": "sensor-a", "filter": {"since": "last tuesday"}}]})
    assert rc == 1 and "items[0].filter.since" in answer["message"]


def test_restart_module(tmp_path, daemons):
    rt = logging_runtime(tmp_path, daemons)
    before = rt.wait_status("sim", "running")
    rc, answer, err = call(rt, "RestartModule", {"schemaVersion": "1.0", "id": "sim"})
    assert (rc, answer) == (0, None), err
    after = rt.wait(lambda m: m["sim"]["runtimeStatus"] == "running" and
                    m["sim"]["pid"] != before["pid"], what="sim restarted")["sim"]
    assert after["restartCount"] == before["restartCount"] + 1

    rc, answer, err = call(rt, "RestartModule", {"schemaVersion": "1.0", "id": "nobody"})
    assert rc == 1 and "status 500" in err
    assert answer == {"message": "Module nobody not found in the current environment"}
    rc, answer, err = call(rt, "RestartModule", {"schemaVersion": "1.0"})
    assert rc == 1 and "status 400" in err and answer["message"] == "id: missing"
    rc, answer, err = call(rt, "RestartModule", {"schemaVersion": "2.0", "id": "sim"})
    assert rc == 1 and "status 400" in err and "schemaVersion" in answer["message"]
