"""Directory and squashfs module images (docs/images.md), run for real:
test images are built here from test/images/probe.c (musl-gcc -static)
with mksquashfs (Debian squashfs-tools). Needs root, loop devices,
squashfs and overlayfs."""
import glob
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import ROOT, Runtime, run, write_json, manifest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mksquashfs") or not shutil.which("musl-gcc")
    or not os.path.exists("/dev/loop-control"),
    reason="needs root, mksquashfs, musl-gcc and loop devices")

FAST = {"restartBackoff": {"initialMs": 50, "maxMs": 200, "resetAfterSecs": 600}}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A tree with the probe (and the mount points a read-only image needs),
    and the same tree as a squashfs file."""
    d = tmp_path_factory.mktemp("images")
    tree = d / "tree"
    for sub in ("bin", "proc", "dev", "tmp", "data"):
        (tree / sub).mkdir(parents=True)
    subprocess.run(["musl-gcc", "-static", "-O1", "-o", str(tree / "bin" / "probe"),
                    os.path.join(ROOT, "test", "images", "probe.c")], check=True)
    sqfs = d / "img.sqfs"
    subprocess.run(["mksquashfs", str(tree), str(sqfs), "-noappend", "-quiet", "-no-progress"],
                   check=True, stdout=subprocess.DEVNULL)
    return tree, sqfs


def image_module(image, *args, writable=None, restart="always"):
    create = {"args": ["/bin/probe", *args, "/etc/hostname"], "user": "root",
              "stopTimeoutSecs": 2}
    if writable is not None:
        create["writable"] = writable
    return {"type": "native", "restartPolicy": restart,
            "settings": {"image": str(image), "createOptions": create}}


def probe_lines(rt, name, count=1, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line[line.index("{"):]) for line in rt.logs(name).splitlines()
                 if '{"root"' in line]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) >= count, rt.daemon.text()
            return lines


def image_mounts(pid, state):
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line for line in f if f"{state}/images/mnt/" in line]


def loops_backing(path):
    found = []
    for f in glob.glob("/sys/block/loop*/loop/backing_file"):
        try:
            if open(f).read().strip() == str(path):
                found.append(f)
        except OSError:
            pass
    return found


def wait_no_loop(path, timeout=10):
    deadline = time.monotonic() + timeout
    while loops_backing(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    return loops_backing(path)


def test_squashfs_image_is_the_read_only_root(tmp_path, daemons, images):
    _, sqfs = images
    rt = Runtime(tmp_path, daemons, {"p": image_module(sqfs)}, config=FAST)
    got = probe_lines(rt, "p")[0]
    assert sorted(got["root"]) == ["bin", "data", "dev", "proc", "tmp"]
    assert got["status"] and got["absent"], got    # /proc is there, the host's /etc is not
    assert got["tmp"] == 0                          # a private /tmp
    assert got["root_write"] == 30 and got["data"] == 30  # EROFS
    assert len(image_mounts(rt.daemon.proc.pid, rt.state)) == 1
    assert len(loops_backing(sqfs)) == 1


def test_writable_tmpfs_is_gone_after_a_restart(tmp_path, daemons, images):
    _, sqfs = images
    rt = Runtime(tmp_path, daemons, {"p": image_module(sqfs, "once", writable=True)}, config=FAST)
    first, second = probe_lines(rt, "p", 2)[:2]
    assert first["root_write"] == 0 and first["data"] == 0
    assert not first["data_before"] and not second["data_before"]
    assert "probe-root" not in first["root"] and "probe-root" not in second["root"]


def test_writable_volume_is_kept_across_restarts(tmp_path, daemons, images):
    _, sqfs = images
    rt = Runtime(tmp_path, daemons, {"p": image_module(sqfs, "once", writable="volume")},
                 config=FAST)
    first, second = probe_lines(rt, "p", 2)[:2]
    assert first["data"] == 0 and not first["data_before"]
    assert second["data_before"] and "probe-root" in second["root"]
    vol = rt.state / "volumes" / "p"
    assert (vol / "upper" / "data" / "mark").exists()
    assert oct(os.stat(vol).st_mode & 0o777) == "0o700"
    rt.daemon.stop()
    again = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                    "--state-dir", str(rt.state))
    assert again.wait_for("agent: ready"), again.text()
    rt.daemon = again
    assert probe_lines(rt, "p")[0]["data_before"]


def test_directory_image(tmp_path, daemons, images):
    tree, _ = images
    rt = Runtime(tmp_path, daemons, {"p": image_module(tree)}, config=FAST)
    got = probe_lines(rt, "p")[0]
    assert sorted(got["root"]) == ["bin", "data", "dev", "proc", "tmp"]
    assert got["absent"] and got["root_write"] == 30  # bound read-only
    assert image_mounts(rt.daemon.proc.pid, rt.state) == []
    assert not (tree / "probe-root").exists()


def test_two_modules_share_one_mount_released_on_removal(tmp_path, daemons, images):
    _, sqfs = images
    rt = Runtime(tmp_path, daemons, {"a": image_module(sqfs), "b": image_module(sqfs)},
                 config=FAST)
    probe_lines(rt, "a")
    probe_lines(rt, "b")
    assert len(image_mounts(rt.daemon.proc.pid, rt.state)) == 1
    assert len(loops_backing(sqfs)) == 1
    rt.redeploy({})
    rt.wait(lambda m: not m, what="modules removed")
    deadline = time.monotonic() + 10
    while image_mounts(rt.daemon.proc.pid, rt.state) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert image_mounts(rt.daemon.proc.pid, rt.state) == []
    assert wait_no_loop(sqfs) == []
    assert "released" in rt.daemon.text()


def test_kill_9_then_restart_cleans_the_stale_mount(tmp_path, daemons, images):
    _, sqfs = images
    rt = Runtime(tmp_path, daemons, {"p": image_module(sqfs)}, config=FAST)
    probe_lines(rt, "p")
    rt.daemon.proc.kill()
    rt.daemon.proc.wait()
    assert len(image_mounts("self", rt.state)) == 1   # left behind
    again = daemons(tmp_path, "-c", str(rt.config), "-m", str(rt.deployment),
                    "--state-dir", str(rt.state))
    assert again.wait_for("agent: ready"), again.text()
    rt.daemon = again
    assert "left by a previous run, released" in again.text()
    rt.wait_status("p", "running")
    probe_lines(rt, "p")
    assert len(image_mounts(again.proc.pid, rt.state)) == 1
    again.stop()
    assert image_mounts("self", rt.state) == []
    assert wait_no_loop(sqfs) == []


def test_corrupt_squashfs_fails_the_module_not_the_daemon(tmp_path, daemons, images):
    _, sqfs = images
    bad = tmp_path / "bad.sqfs"
    data = sqfs.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    rt = Runtime(tmp_path, daemons, {"bad": image_module(bad, restart="never"),
                                     "good": image_module(sqfs)}, config=FAST)
    m = rt.wait_status("bad", "failed")
    assert f"image {bad}" in m["statusDescription"]
    assert "bad squashfs superblock: truncated" in m["statusDescription"]
    assert probe_lines(rt, "good")[0]["absent"]
    assert rt.daemon.proc.poll() is None
    assert loops_backing(bad) == []


def test_check_reports_image_problems(tmp_path, images):
    tree, sqfs = images
    bad = tmp_path / "bad.sqfs"
    bad.write_bytes(sqfs.read_bytes()[:200])
    noproc = tmp_path / "noproc"
    shutil.copytree(tree, noproc)
    (noproc / "proc").rmdir()
    mods = {
        "missing": image_module(tmp_path / "nothing.sqfs"),
        "corrupt": image_module(bad),
        "noprog": {"type": "native", "settings": {"image": str(tree), "createOptions": {
            "args": ["/bin/none"]}}},
        "noproc": image_module(noproc),
        "okwritable": image_module(noproc, writable="tmpfs"),
        "ok": image_module(sqfs),
    }
    m = write_json(tmp_path, "m.json", manifest(mods))
    c = write_json(tmp_path, "c.json", {})
    r = run("check", "-c", str(c), "-m", str(m))
    assert r.returncode == 2, r.stderr
    assert f"module missing: image {tmp_path}/nothing.sqfs: No such file or directory" in r.stderr
    assert f"module corrupt: image {bad}: bad squashfs superblock" in r.stderr
    assert f"module noprog: image {tree}: /bin/none in the image: No such file or directory" in r.stderr
    assert f"module noproc: image {noproc}: a read-only image needs a /proc directory" in r.stderr
    assert "okwritable" not in r.stderr and "module ok:" not in r.stderr
    assert r.stderr.splitlines()[-1] == "tinyedge check: 4 problems found"


def test_manifest_errors_name_the_field(tmp_path, images):
    tree, sqfs = images
    mods = {"r": image_module(sqfs), "n": image_module(tree), "w": image_module("/bin/sh", writable="volume")}
    mods["r"]["settings"]["createOptions"]["rootfs"] = str(tree)
    mods["n"]["settings"]["createOptions"]["namespaces"] = ["pid"]
    m = write_json(tmp_path, "m.json", manifest(mods))
    r = run("check", "-c", str(write_json(tmp_path, "c.json", {})), "-m", str(m))
    assert r.returncode == 2
    assert "modules.r.settings.createOptions.rootfs: not with a squashfs image" in r.stderr
    assert "modules.n.settings.image: a directory or squashfs image needs the \"mount\" namespace" in r.stderr
    assert "modules.w.settings.createOptions.writable: /bin/sh is an executable" in r.stderr
