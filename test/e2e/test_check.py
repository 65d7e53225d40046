"""tinyedge check: every problem with file:line:col, exit 2; else a summary."""
import json

from conftest import SAMPLE_CONFIG, run, sample_deployment, write_json


def check(tmp_path, *args):
    return run("check", "--state-dir", str(tmp_path / "state"), *args)


def test_sample_deployment_is_valid(tmp_path):
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(sample_deployment(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert "manifest" in r.stdout and "2 modules, 2 routes" in r.stdout
    assert "module sim-sensor" in r.stdout and "module filter" in r.stdout


def test_json_summary(tmp_path):
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(sample_deployment(tmp_path)), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["problems"] == []
    assert [m["name"] for m in doc["modules"]] == ["sim-sensor", "filter"]
    assert doc["modules"][0]["startupOrder"] == 1
    assert doc["modules"][1]["restartPolicy"] == "on-failure"
    routes = {r["name"]: r for r in doc["routes"]}
    assert routes["filterToUpstream"]["priority"] == 1


BROKEN = """{
  "modulesContent": {
    "$edgeAgent": {
      "properties.desired": {
        "modules": {
          "a": {
            "type": "docker",
            "restartPolicy": "sometimes",
            "settings": { "image": "/bin/true" }
          },
          "b": {
            "type": "native",
            "settings": { "image": "relative" },
            "colour": "blue"
          }
        }
      }
    }
  }
}
"""


def test_reports_every_problem_with_position(tmp_path):
    m = write_json(tmp_path, "broken.json", BROKEN)
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m))
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert f"{m}:7:21: modules.a.type: only \"native\" modules are supported" in r.stderr
    assert (f"{m}:8:30: modules.a.restartPolicy must be one of never, on-failure, "
            "on-unhealthy, always") in lines
    assert f"{m}:13:36: modules.b.settings.image must be an absolute path" in r.stderr
    assert f"{m}:14:13: unknown key \"colour\" in modules.b" in r.stderr
    assert lines[-1] == "tinyedge check: 4 problems found"


def test_json_lists_problems(tmp_path):
    m = write_json(tmp_path, "broken.json", BROKEN)
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m), "--json")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert doc["ok"] is False
    assert len(doc["problems"]) == 4
    first = doc["problems"][0]
    assert first["file"] == str(m) and first["line"] == 7 and first["column"] == 21


def test_malformed_json_names_line_and_column(tmp_path):
    m = write_json(tmp_path, "bad.json", '{\n  "modulesContent": {\n    "$edgeAgent": {},\n  }\n}\n')
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m))
    assert r.returncode == 2
    assert r.stderr.startswith(f"{m}:4:")


def test_missing_named_file(tmp_path):
    r = check(tmp_path, "-c", str(tmp_path / "nope.json"))
    assert r.returncode == 2
    assert f"{tmp_path}/nope.json: No such file or directory" in r.stderr


def test_config_unknown_key_and_bad_values(tmp_path):
    c = write_json(tmp_path, "config.json", '{\n  "deviceID": "x",\n  "logLevel": "loud",\n'
                   '  "upstream": {"protocol": "mqtt", "port": 0}\n}\n')
    r = check(tmp_path, "-c", str(c), "--module", "x=/bin/true")
    assert r.returncode == 2
    assert f"{c}:2:3: unknown key \"deviceID\"" in r.stderr
    assert f"{c}:3:15: logLevel must be one of error, warn, info, debug" in r.stderr
    assert "upstream.port must be an integer from 1 to 65535" in r.stderr


def test_host_problems(tmp_path):
    c = write_json(tmp_path, "config.json", {})
    plain = tmp_path / "plain-file"
    plain.write_text("not a program\n")
    plain.chmod(0o644)
    r = check(tmp_path, "-c", str(c), "--module", f"x={tmp_path}/missing-binary",
              "--module", f"y={plain}", "--module", f"z={tmp_path}")
    assert r.returncode == 2
    assert f"module x: image {tmp_path}/missing-binary: No such file or directory" in r.stderr
    assert f"module y: image {plain} is not an executable file" in r.stderr
    assert f"module z: image {tmp_path} is not an executable file" in r.stderr
    assert r.stderr.splitlines()[-1] == "tinyedge check: 3 problems found"


def test_create_options_string_errors_point_inside_the_string(tmp_path):
    doc = {"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {
        "m": {"type": "native", "settings": {"image": "/bin/true",
                                             "createOptions": "{\"args\": [1]}"}}}}}}}
    m = write_json(tmp_path, "d.json", doc)
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m))
    assert r.returncode == 2
    assert "createOptions:1:11: " in r.stderr and "args[0] must be a string" in r.stderr


def test_unknown_user_is_a_host_problem(tmp_path):
    doc = {"modulesContent": {"$edgeAgent": {"properties.desired": {"modules": {
        "m": {"type": "native", "settings": {"image": "/bin/true",
                                             "createOptions": {"user": "no-such-user"}}}}}}}}
    m = write_json(tmp_path, "d.json", doc)
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m))
    assert r.returncode == 2
    assert f"{m}:6:11: module m: user no-such-user: not found in /etc/passwd" in r.stderr



def test_desired_properties_follow_the_twin_naming_rules(tmp_path):
    doc = {"modulesContent": {
        "$edgeAgent": {"properties.desired": {"modules": {
            "m": {"type": "native", "settings": {"image": "/bin/true"}}}}},
        "$edgeHub": {"properties.desired": {"routes": {
            "r": {"route": "FROM /messages/* INTO $upstream", "overflow": "sometimes"}}}},
        "m": {"properties.desired": {"ok": {"a.b": 1}}}}}
    m = write_json(tmp_path, "d.json", doc)
    r = check(tmp_path, "-c", SAMPLE_CONFIG, "-m", str(m))
    assert r.returncode == 2
    assert 'modulesContent.m["properties.desired"]: property name "a.b" contains \'.\'' in r.stderr, r.stderr
    assert "routes.r.overflow" in r.stderr and "drop-oldest" in r.stderr, r.stderr


def test_upstream_tls_files_must_load(tmp_path):
    cfg = write_json(tmp_path, "c.json", {"upstream": {
        "protocol": "mqtt", "host": "localhost", "caFile": str(tmp_path / "missing.pem")}})
    r = check(tmp_path, "-c", str(cfg), "-m", str(sample_deployment(tmp_path)))
    assert r.returncode == 2
    assert f"upstream: {tmp_path}/missing.pem: No such file or directory" in r.stderr, r.stderr
