"""make install DESTDIR=...: the exact tree, its modes, and installed files that work."""
import json
import os
import shutil
import stat
import subprocess

import pytest

from conftest import BIN, ROOT, run

BASE = {
    "etc": 0o755,
    "etc/tinyedge": 0o755,
    "etc/tinyedge/config.json": 0o600,
    "etc/tinyedge/deployment.json": 0o644,
    "usr": 0o755,
    "usr/bin": 0o755,
    "usr/bin/tinyedge": 0o755,
    "usr/include": 0o755,
    "usr/include/tinyedge": 0o755,
    "usr/include/tinyedge/module.h": 0o644,
    "usr/include/tinyedge/wire.h": 0o644,
    "usr/lib": 0o755,
    "usr/lib/libtinyedge-module.a": 0o644,
    "var": 0o755,
    "var/lib": 0o755,
    "var/lib/tinyedge": 0o700,
}

SERVICE = {
    "sysv": {
        "etc/init.d": 0o755,
        "etc/init.d/tinyedge": 0o755,
        "etc/default": 0o755,
        "etc/default/tinyedge": 0o644,
    },
    "procd": {
        "etc/init.d": 0o755,
        "etc/init.d/tinyedge": 0o755,
        "etc/config": 0o755,
        "etc/config/tinyedge": 0o644,
    },
    "systemd": {
        "usr/lib/systemd": 0o755,
        "usr/lib/systemd/system": 0o755,
        "usr/lib/systemd/system/tinyedge.service": 0o644,
    },
    "none": {},
}

# The service file each INIT installs, from rootfs/.
SOURCE = {
    "sysv": ("etc/init.d/tinyedge", "etc/init.d/tinyedge"),
    "procd": ("etc/init.d/tinyedge.procd", "etc/init.d/tinyedge"),
    "systemd": ("lib/systemd/system/tinyedge.service", "usr/lib/systemd/system/tinyedge.service"),
}


def make_install(destdir, *extra):
    """make -s install against the already built binary; CompletedProcess."""
    return subprocess.run(["make", "-s", "-C", ROOT, "install", f"DESTDIR={destdir}",
                           f"BUILD={os.path.dirname(BIN)}", *extra],
                          capture_output=True, text=True, timeout=600)


def tree(root):
    """{relative path: permission bits} of everything under root."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.lstat(path).st_mode)
    return found


def fmt(modes):
    return "\n".join(f"{m:04o} {p}" for p, m in sorted(modes.items()))


@pytest.mark.parametrize("init", ["sysv", "procd", "systemd", "none"])
def test_install_tree_and_modes(tmp_path, init):
    dest = tmp_path / "root"
    r = make_install(dest, f"INIT={init}")
    assert r.returncode == 0, r.stdout + r.stderr
    want = dict(BASE, **SERVICE[init])
    assert fmt(tree(dest)) == fmt(want)
    # install(1) gives the installing user's ids (root here), not the tree's.
    st = os.stat(dest / "usr/bin/tinyedge")
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    with open(BIN, "rb") as a, open(dest / "usr/bin/tinyedge", "rb") as b:
        assert a.read() == b.read()
    if init in SOURCE:
        src, dst = SOURCE[init]
        with open(os.path.join(ROOT, "rootfs", src)) as f:
            assert (dest / dst).read_text() == f.read(), "PREFIX=/usr must install it unchanged"


def test_installed_json_passes_check(tmp_path):
    dest = tmp_path / "root"
    r = make_install(dest)
    assert r.returncode == 0, r.stdout + r.stderr
    # The deployment names /usr/bin/tinyedge: check it against this build.
    dep = tmp_path / "deployment.json"
    dep.write_text((dest / "etc/tinyedge/deployment.json").read_text()
                   .replace("/usr/bin/tinyedge", BIN))
    r = run("check", "-c", str(dest / "etc/tinyedge/config.json"), "-m", str(dep))
    assert r.returncode == 0, r.stdout + r.stderr


def test_prefix_rewrites_service_paths(tmp_path):
    dest = tmp_path / "root"
    r = make_install(dest, "PREFIX=/opt/te", "INIT=systemd")
    assert r.returncode == 0, r.stdout + r.stderr
    unit = (dest / "opt/te/lib/systemd/system/tinyedge.service").read_text()
    assert "ExecStart=/opt/te/bin/tinyedge run" in unit
    assert "/usr/bin/tinyedge" not in unit
    assert (dest / "opt/te/bin/tinyedge").exists()


@pytest.mark.parametrize("init", ["bogus", "sysv procd", "SYSV"])
def test_unknown_init_is_an_error(tmp_path, init):
    dest = tmp_path / "root"
    r = make_install(dest, f"INIT={init}")
    assert r.returncode != 0
    assert "INIT must be one of sysv procd systemd none" in r.stderr
    assert not dest.exists(), "nothing may be installed"


@pytest.mark.parametrize("mode,secret,warns", [
    (0o644, True, True), (0o640, True, True), (0o600, True, False), (0o644, False, False)])
def test_daemon_warns_about_a_readable_config_with_secrets(tmp_path, daemons, mode, secret, warns):
    up = {"protocol": "mqtt", "host": "127.0.0.1", "port": 1, "tls": False}
    if secret:
        up.update(username="edge", password="s3cret")
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"upstream": up}))
    os.chmod(cfg, mode)
    d = daemons(tmp_path, "-c", str(cfg), "--state-dir", str(tmp_path / "state"),
                "--module", f"a={BIN}:module:sink")
    assert d.wait_for("agent: ready"), d.text()
    line = f"WARN config: {cfg} holds a secret (upstream.password) but is mode {mode:04o}"
    assert (line in d.text()) == warns, d.text()
    if warns:
        assert f"chmod 600 {cfg}" in d.text()
    assert "s3cret" not in d.text()
    assert d.stop() == 0


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="no systemd-analyze")
def test_systemd_unit_verifies(tmp_path):
    """systemd's own parser accepts every line of the unit (it is not run:
    there is no systemd as PID 1 here)."""
    unit = tmp_path / "tinyedge.service"
    with open(os.path.join(ROOT, "rootfs/lib/systemd/system/tinyedge.service")) as f:
        unit.write_text(f.read().replace("/usr/bin/tinyedge", BIN))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    for line in ("ExecReload=/bin/kill -HUP $MAINPID", "KillMode=mixed", "Delegate=yes",
                 "Restart=on-failure"):
        assert line in unit.read_text()
