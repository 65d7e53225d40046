"""Every shell script in the repository parses (sh -n) and is shellcheck clean."""
import os
import re
import subprocess

import pytest

from conftest import ROOT

SKIP_DIRS = {".git", "build", "third_party"}
SHEBANG = re.compile(rb"^#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(sh|ash|dash)(\s|$)")
# rc.common scripts: "#!/bin/sh /etc/rc.common".
RC_COMMON = re.compile(rb"^#!/bin/sh /etc/rc\.common")
# Files that must be found, so that a broken walk cannot pass vacuously.
REQUIRED = {"scripts/deps.sh", "scripts/test.sh", ".ci/run", "rootfs/etc/init.d/tinyedge",
            "rootfs/etc/init.d/tinyedge.procd"}
# Shell fragments without a shebang (sourced by a script).
FRAGMENTS = ["rootfs/etc/default/tinyedge"]


def shell_scripts():
    found = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        rel_dir = os.path.relpath(dirpath, ROOT)
        dirnames[:] = [d for d in dirnames
                       if not (rel_dir == "." and d in SKIP_DIRS)]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                with open(path, "rb") as f:
                    first = f.readline()
            except OSError:
                continue
            if SHEBANG.match(first) or RC_COMMON.match(first):
                found.append(os.path.relpath(path, ROOT))
    return sorted(found) + FRAGMENTS


SCRIPTS = shell_scripts()


def test_the_walk_finds_the_known_scripts():
    assert REQUIRED <= set(SCRIPTS), sorted(REQUIRED - set(SCRIPTS))


@pytest.mark.parametrize("script", SCRIPTS)
def test_sh_n(script):
    for shell in ("/bin/sh", "/bin/busybox"):
        argv = [shell, "-n", script] if shell == "/bin/sh" else [shell, "sh", "-n", script]
        r = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, f"{shell}: {r.stderr}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_shellcheck(script):
    r = subprocess.run(["shellcheck", "-s", "sh", script], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_shellcheck_would_fail_a_bad_script(tmp_path):
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/sh\necho $1\n[ $x == y ]\n")
    r = subprocess.run(["shellcheck", "-s", "sh", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0 and "SC2086" in r.stdout
