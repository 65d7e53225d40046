"""Module twins: kept in the store across daemon restarts, local desired
patches (`tinyedge twin NAME --desired`), the deployment's desired
properties recognised by their hash, /twinChangeNotifications."""
import json
import signal

from conftest import BIN, FAST_CONFIG, Runtime, manifest, sh_module, write_json


def builtin(name, *args, order=None):
    return {"type": "native", "restartPolicy": "always", "status": "running",
            "startupOrder": order,
            "settings": {"image": BIN, "createOptions": {"args": ["module", name, *args],
                                                         "stopTimeoutSecs": 2}}}


def deployment(threshold, extra_routes=None, watcher=False):
    """A filter whose desired TemperatureThreshold is threshold; with
    watcher, a stdio module that logs every message it gets."""
    modules = {"filter": builtin("filter", order=2)}
    routes = dict(extra_routes or {})
    if watcher:
        modules["watcher"] = sh_module("exec cat >&2", order=1, io="stdio")
    doc = manifest(modules, routes or None)
    doc["modulesContent"]["filter"] = {"properties.desired": {"TemperatureThreshold": threshold}}
    return doc


class Twins:
    """A daemon on a state dir that outlives it: start, stop, start again."""

    def __init__(self, tmp_path, daemons, doc):
        self.tmp, self.daemons = tmp_path, daemons
        self.rt = Runtime.__new__(Runtime)
        self.rt.tmp, self.rt.state = tmp_path, tmp_path / "state"
        self.rt.config = write_json(tmp_path, "config.json", FAST_CONFIG)
        self.rt.deployment = write_json(tmp_path, "deployment.json", doc)

    def start(self):
        rt = self.rt
        rt.daemon = self.daemons(self.tmp, "-c", str(rt.config), "-m", str(rt.deployment),
                                 "--state-dir", str(rt.state))
        assert rt.daemon.wait_for("agent: ready"), rt.daemon.text()
        return rt

    def stop(self):
        assert self.rt.daemon.stop() == 0, self.rt.daemon.text()

    def twin(self, name="filter"):
        r = self.rt.cli("twin", name)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def desired(self, patch, name="filter"):
        return self.rt.cli("twin", name, "--desired", patch)

    def wait_twin(self, pred, what):
        rt = self.rt
        rt.wait(lambda m: pred(self.twin()), what=what)
        return self.twin()


def test_reported_and_local_desired_survive_a_restart(tmp_path, daemons):
    tw = Twins(tmp_path, daemons, deployment(1000))
    rt = tw.start()
    rt.wait_log("filter", "threshold 1000 from the twin")
    twin = tw.wait_twin(lambda t: t["reported"]["$version"] == 2, "the filter's report")
    assert twin["desired"] == {"TemperatureThreshold": 1000, "$version": 1}
    assert twin["reported"] == {"TemperatureThreshold": 1000, "$version": 2}

    # A local patch: printed at once, reaches the running module (its
    # desired-patch callback), which reports the new value back.
    r = tw.desired('{"TemperatureThreshold": 42, "note": {"by": "test"}}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["desired"] == {
        "TemperatureThreshold": 42, "note": {"by": "test"}, "$version": 2}
    rt.wait_log("filter", "threshold 42 from the twin (a desired patch)")
    twin = tw.wait_twin(lambda t: t["reported"]["TemperatureThreshold"] == 42, "report of 42")
    assert twin["reported"]["$version"] == 3
    pid = rt.modules()["filter"]["pid"]
    assert pid and rt.modules()["filter"]["restartCount"] == 0

    # null deletes; the version goes on.
    r = tw.desired('{"note": null}')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["desired"] == {"TemperatureThreshold": 42, "$version": 3}
    # A patch that changes nothing is no new version.
    r = tw.desired('{"TemperatureThreshold": 42}')
    assert r.returncode == 0 and json.loads(r.stdout)["desired"]["$version"] == 3

    tw.stop()
    rt = tw.start()
    # The module starts from the stored twin, not the deployment's 1000.
    rt.wait_log("filter", "threshold 42 from the twin")
    twin = tw.wait_twin(lambda t: t["reported"]["$version"] == 4, "the report after restart")
    assert twin["desired"] == {"TemperatureThreshold": 42, "$version": 3}
    assert twin["reported"] == {"TemperatureThreshold": 42, "$version": 4}
    assert "threshold 1000" not in rt.logs("filter")


def test_unchanged_deployment_keeps_the_twin_a_changed_one_wins(tmp_path, daemons):
    tw = Twins(tmp_path, daemons, deployment(1000))
    rt = tw.start()
    tw.wait_twin(lambda t: t["reported"]["$version"] == 2, "the filter's report")
    assert tw.desired('{"extra": 1}').returncode == 0
    # A reload of the same deployment (written another way) keeps the
    # local patch: the deployment is recognised by its compact JSON's hash.
    rt.deployment.write_text(json.dumps(deployment(1000), indent=8))
    rt.daemon.signal(signal.SIGHUP)
    assert rt.daemon.wait_for("SIGHUP: reloading"), rt.daemon.text()
    assert tw.twin()["desired"] == {"TemperatureThreshold": 1000, "extra": 1, "$version": 2}
    tw.stop()

    rt = tw.start()
    assert tw.twin()["desired"] == {"TemperatureThreshold": 1000, "extra": 1, "$version": 2}
    tw.stop()

    # The deployment's desired properties changed while the daemon was down:
    # they replace the twin's, as a new version; reported properties stay.
    tw.rt.deployment.write_text(json.dumps(deployment(-5)))
    rt = tw.start()
    twin = tw.twin()
    assert twin["desired"] == {"TemperatureThreshold": -5, "$version": 3}
    assert twin["reported"]["$version"] >= 3
    rt.wait_log("filter", "threshold -5 from the twin")
    assert "the deployment's desired properties changed: desired version 3" in rt.daemon.text()


def test_desired_change_is_a_twin_change_notification(tmp_path, daemons):
    route = {"changes": "FROM /twinChangeNotifications WHERE moduleId = 'filter' "
                        'INTO BrokeredEndpoint("/modules/watcher/inputs/twin")'}
    tw = Twins(tmp_path, daemons, deployment(1000, route, watcher=True))
    rt = tw.start()
    rt.wait_status("watcher", "running")
    tw.wait_twin(lambda t: t["reported"]["$version"] == 2, "the filter's report")
    r = tw.desired('{"TemperatureThreshold": 7}')
    assert r.returncode == 0, r.stderr

    def notifications():
        out = []
        for line in rt.logs("watcher").splitlines():
            start = line.find("{")
            if start >= 0 and '"input":"twin"' in line:
                msg = json.loads(line[start:])
                out.append((msg["properties"], json.loads(msg["body"])))
        return out

    rt.wait(lambda m: any("desired" in b["properties"] for _, b in notifications()),
            what="a desired-change notification")
    props, body = next(n for n in notifications() if "desired" in n[1]["properties"])
    assert body == {"version": 2, "properties": {"desired": {"TemperatureThreshold": 7,
                                                             "$version": 2}}}
    assert props["opType"] == "updateTwin" and props["moduleId"] == "filter"
    # The filter's report of the new value follows as a reported change.
    rt.wait(lambda m: any(b["properties"].get("reported", {}).get("TemperatureThreshold") == 7
                          for _, b in notifications()), what="the reported change")


def test_bad_patches_exit_2_and_change_nothing(tmp_path, daemons):
    tw = Twins(tmp_path, daemons, deployment(1000))
    rt = tw.start()
    tw.wait_twin(lambda t: t["reported"]["$version"] == 2, "the filter's report")
    deep = '{"a":' * 11 + "1" + "}" * 11  # 11 levels
    cases = [
        ("{not json", "invalid desired patch: patch:1:2"),
        ("[1, 2]", "a patch must be a JSON object"),
        ('{"$version": 9}', "$version is set by the daemon"),
        ('{"a.b": 1}', "contains '.'"),
        (deep, "deeper than 10"),
        ('{"big": "' + "x" * 33000 + '"}', "over 32768 bytes"),
    ]
    for patch, message in cases:
        r = tw.desired(patch)
        assert r.returncode == 2, (patch[:40], r.returncode, r.stderr)
        assert message in r.stderr, (patch[:40], r.stderr)
        assert r.stdout == ""
    assert tw.twin()["desired"] == {"TemperatureThreshold": 1000, "$version": 1}
    r = rt.cli("twin", "filter", "--desired", "")
    assert r.returncode == 2 and "--desired needs a JSON object" in r.stderr
    r = rt.cli("twin", "nosuch", "--desired", "{}")
    assert r.returncode == 2 and "no module named 'nosuch'" in r.stderr
    # 10 levels are fine.
    ok = '{"a":' * 10 + "1" + "}" * 10
    assert tw.desired(ok).returncode == 0


def test_a_removed_module_keeps_its_twin(tmp_path, daemons):
    tw = Twins(tmp_path, daemons, deployment(1000))
    rt = tw.start()
    tw.wait_twin(lambda t: t["reported"]["$version"] == 2, "the filter's report")
    assert tw.desired('{"kept": true}').returncode == 0
    without = deployment(1000)
    del without["modulesContent"]["filter"]
    without["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]["other"] = \
        without["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"].pop("filter")
    rt.deployment.write_text(json.dumps(without))
    rt.daemon.signal(signal.SIGHUP)
    rt.wait(lambda m: "filter" not in m, what="filter removed")
    assert rt.cli("twin", "filter").returncode == 2
    rt.deployment.write_text(json.dumps(deployment(1000)))
    rt.daemon.signal(signal.SIGHUP)
    rt.wait_status("filter", "running")
    # Back under the same name: the stored twin, local patch and versions.
    twin = tw.wait_twin(lambda t: t["reported"]["$version"] == 3, "the filter's new report")
    assert twin["desired"] == {"TemperatureThreshold": 1000, "kept": True, "$version": 2}
    assert twin["reported"] == {"TemperatureThreshold": 1000, "$version": 3}
