"""The shipped binary: static, small, self-describing."""
import os
import subprocess

from conftest import BIN, run


def test_binary_is_static():
    headers = subprocess.run(["readelf", "-l", BIN], capture_output=True, text=True, check=True).stdout
    assert "INTERP" not in headers, "a static binary has no program interpreter"
    dynamic = subprocess.run(["readelf", "-d", BIN], capture_output=True, text=True).stdout
    assert "NEEDED" not in dynamic
    assert "statically linked" in subprocess.run(["file", "-L", BIN], capture_output=True, text=True).stdout


def test_binary_is_stripped_with_debug_copy():
    symbols = subprocess.run(["readelf", "-S", BIN], capture_output=True, text=True, check=True).stdout
    assert ".symtab" not in symbols
    debug = os.path.join(os.path.dirname(BIN), "tinyedge.debug")
    assert ".symtab" in subprocess.run(["readelf", "-S", debug], capture_output=True, text=True).stdout


def test_version_names_commit_flags_and_dependencies():
    r = run("version")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0].startswith("tinyedge ")
    assert lines[1].startswith("commit: ") and len(lines[1]) > len("commit: ")
    assert "-Os" in lines[2] and "static" in lines[2]
    assert "lmdb 0.9.24" in lines[3] and "bearssl 0.6" in lines[3] and "jsmn 1.1.0" in lines[3]
    assert run("--version").stdout == r.stdout
