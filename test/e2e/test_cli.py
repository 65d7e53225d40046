"""Command-line usage: exit codes and messages that name the problem."""
import pytest

from conftest import run, write_json

VERBS = ["run", "check", "list", "logs", "start", "stop", "restart", "route", "module", "metrics",
         "version", "help"]


def test_no_command_prints_usage_and_exits_2():
    r = run()
    assert r.returncode == 2
    assert "usage: tinyedge COMMAND" in r.stderr


def test_unknown_command():
    r = run("frobnicate")
    assert r.returncode == 2
    assert "unknown command 'frobnicate'" in r.stderr


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_has_help(verb):
    r = run(verb, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"usage: tinyedge {verb}")


def test_top_level_help_lists_every_verb():
    r = run("--help")
    assert r.returncode == 0
    for verb in VERBS:
        assert f"tinyedge {verb}" in r.stdout


def test_help_for_unknown_command():
    r = run("help", "nope")
    assert r.returncode == 2
    assert "unknown command 'nope'" in r.stderr


@pytest.mark.parametrize("args,message", [
    (["run", "--bogus"], "unknown option '--bogus'"),
    (["run", "--route"], "option '--route' needs a value"),
    (["run", "-m"], "option '-m' needs a value"),
    (["run", "extra"], "unexpected argument 'extra'"),
    (["run", "--state-dir", "relative/dir"], "--state-dir must be an absolute path"),
    (["check", "--log-level", "info"], "unknown option '--log-level'"),
    (["version", "--json"], "unknown option '--json'"),
])
def test_usage_errors_name_the_flag(args, message):
    r = run(*args)
    assert r.returncode == 2
    assert message in r.stderr
    assert f"Try 'tinyedge {args[0]} --help'" in r.stderr


@pytest.mark.parametrize("flag,value,message", [
    ("--log-level", "loud", "--log-level: expected error, warn, info or debug, got 'loud'"),
    ("--upstream", "http://x", "--upstream: expected none, mqtt://HOST[:PORT] or mqtts://HOST[:PORT]"),
    ("--upstream", "mqtt://host:99999", "is not a valid URL"),
    ("--upstream", "mqtt://:1883", "is not a valid URL"),
    ("--module", "noequals", "--module 'noequals': expected NAME=PATH[:ARG...]"),
    ("--module", "a=relative/path", "PATH must be absolute"),
    ("--module", "bad name=/bin/true", "the name must be"),
])
def test_invalid_flag_values_exit_2(tmp_path, flag, value, message):
    cfg = write_json(tmp_path, "config.json", {})
    r = run("run", "-c", str(cfg), "--state-dir", str(tmp_path / "s"),
            "--module", "x=/bin/true", flag, value)
    assert r.returncode == 2
    assert message in r.stderr
