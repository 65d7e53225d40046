"""tinyedge route test: debug a route against one message on a laptop."""
import pytest

from conftest import run

ROUTE = "FROM /messages/modules/sensor/outputs/* WHERE {} INTO $upstream"


@pytest.mark.parametrize("cond,args,expect", [
    ("as_number(temp) > 30", ["--prop", "temp=32.5"], "true"),
    ("as_number(temp) > 30", ["--prop", "temp=12"], "false"),
    ("as_number(temp) > 30", [], "undefined"),
    ("temp = '32.5' AND $connectionModuleId = 'sensor'",
     ["--prop", "temp=32.5", "--sys", "connectionModuleId=sensor"], "true"),
    ("$body.machine.temperature > 20",
     ["--sys", "contentType=application/json", "--sys", "contentEncoding=utf-8"], "true"),
    ("$body.machine.temperature > 20", [], "undefined"),
])
def test_evaluates_conditions(tmp_path, cond, args, expect):
    body = tmp_path / "body.json"
    body.write_text('{"machine": {"temperature": 21.5}}')
    r = run("route", "test", ROUTE.format(cond), "--body", str(body), *args)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expect + "\n"


def test_route_without_condition_is_true():
    r = run("route", "test", "FROM /messages/* INTO $upstream")
    assert (r.returncode, r.stdout) == (0, "true\n")


def test_compile_error_names_the_column():
    route = "FROM /messages/* WHERE as_numbr(temp) > 1 INTO $upstream"
    r = run("route", "test", route)
    assert r.returncode == 2
    assert "column 24" in r.stderr and "as_numbr" in r.stderr
    assert r.stderr.splitlines()[1] == " " * 23 + "^"


@pytest.mark.parametrize("args,message", [
    (["route"], "expected 'route test ROUTE"),
    (["route", "test"], "one ROUTE argument"),
    (["route", "test", "FROM /messages/* INTO $upstream", "--prop", "novalue"], "expected NAME=VALUE"),
    (["route", "test", "FROM /messages/* INTO $upstream", "--sys", "colour=red"], "not a system property"),
    (["route", "test", "FROM /messages/* INTO $upstream", "--body", "/nonexistent"], "/nonexistent"),
])
def test_usage_errors(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
