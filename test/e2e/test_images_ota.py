"""Module images by URL in deployments (docs/images.md, "Images by URL in a deployment"): the
daemon pulls a squashfs image over HTTPS before the module starts; an
update downloads and verifies the new image before it stops the old
instance, and a failed download leaves the old one running (reported in
$edgeAgent's lastDesiredStatus for a cloud deployment); imagePullPolicy
never; a crash-looping update rolls back to the previous image, which the
cache kept."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import FAST_CONFIG, Runtime, manifest, run
from test_images_fetch import ImageServer, pki  # noqa: F401 (fixture)
from test_upstream import MOSQUITTO, Broker

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("mksquashfs") or not os.path.exists("/bin/busybox")
    or not os.path.exists("/dev/loop-control"),
    reason="needs root, mksquashfs, busybox-static and loop devices")


def squashfs(tmp, version):
    """A root with a static busybox; /version tells the images apart."""
    tree = tmp / f"tree-{version}"
    for sub in ("bin", "proc", "dev", "tmp"):
        (tree / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy("/bin/busybox", tree / "bin" / "busybox")
    (tree / "version").write_text(f"{version}\n")
    out = tmp / f"v{version}.sqfs"
    subprocess.run(["mksquashfs", str(tree), str(out), "-noappend", "-quiet", "-no-progress"],
                   check=True, stdout=subprocess.DEVNULL)
    return out.read_bytes()


SCRIPT = "echo version-$(/bin/busybox cat /version); exec /bin/busybox sleep 1000"


def url_module(url, script=SCRIPT, restart="always", pull=None):
    mod = {"type": "native", "restartPolicy": restart,
           "settings": {"image": url, "createOptions": {
               "args": ["/bin/busybox", "sh", "-c", script], "stopTimeoutSecs": 1}}}
    if pull:
        mod["imagePullPolicy"] = pull
    return mod


@pytest.fixture
def server(tmp_path, pki):  # noqa: F811
    s = ImageServer(tmp_path, pki)
    yield s
    s.stop()


def config(pki, **extra):  # noqa: F811
    return dict(FAST_CONFIG, images={"caFile": str(pki / "ca.pem")}, **extra)


def wait_log(rt, name, needle, timeout=30):
    rt.wait(lambda m: name in m, timeout=timeout, what=f"module {name}")
    return rt.wait_log(name, needle, timeout=timeout)


def cached(rt):
    r = rt.cli("images", "--json")
    assert r.returncode == 0, r.stderr
    return {i["sha256"]: i for i in json.loads(r.stdout)["images"]}


def test_a_url_image_is_pulled_then_run_and_an_update_swaps_it(tmp_path, daemons, server, pki):
    v1 = server.add("v1.sqfs", squashfs(tmp_path, 1))
    v2 = server.add("v2.sqfs", squashfs(tmp_path, 2))
    rt = Runtime(tmp_path, daemons, {"app": url_module(server.url("plain/v1.sqfs", v1))},
                 config=config(pki))
    wait_log(rt, "app", "version-1")
    assert cached(rt)[v1]["refs"] == 1
    assert rt.modules()["app"]["runtimeStatus"] == "running"
    # The update: the new image is pulled, verified, then the module swapped.
    rt.redeploy({"app": url_module(server.url("plain/v2.sqfs", v2))})
    wait_log(rt, "app", "version-2")
    images = cached(rt)
    assert images[v2]["refs"] == 1
    assert v1 in images, "the previous image is kept (a rollback may need it)"
    assert "pulling" in rt.daemon.text()


def test_a_failed_download_leaves_the_old_module_running(tmp_path, daemons, server, pki):
    v1 = server.add("v1.sqfs", squashfs(tmp_path, 1))
    v2 = server.add("v2.sqfs", squashfs(tmp_path, 2))
    rt = Runtime(tmp_path, daemons, {"app": url_module(server.url("plain/v1.sqfs", v1))},
                 config=config(pki))
    wait_log(rt, "app", "version-1")
    pid = rt.modules()["app"]["pid"]
    # A wrong sha256 (v1's for v2's file), then a truncated download.
    rt.redeploy({"app": url_module(server.url("plain/v2.sqfs", v1[:-4] + "0000"))})
    assert rt.daemon.wait_for("deployment not applied", timeout=30), rt.daemon.text()
    assert "sha256 mismatch" in rt.daemon.text()
    rt.redeploy({"app": url_module(server.url("truncate/v2.sqfs", v2))})
    assert rt.daemon.wait_for("deployment not applied", count=2, timeout=30), rt.daemon.text()
    time.sleep(0.5)
    app = rt.modules()["app"]
    assert app["pid"] == pid and app["runtimeStatus"] == "running", app
    assert v2 not in cached(rt)
    # The right one goes through.
    rt.redeploy({"app": url_module(server.url("plain/v2.sqfs", v2))})
    wait_log(rt, "app", "version-2")
    assert rt.modules()["app"]["pid"] != pid


def test_image_pull_policy_never_needs_a_cached_image(tmp_path, daemons, server, pki):
    v1 = server.add("v1.sqfs", squashfs(tmp_path, 1))
    url = server.url("plain/v1.sqfs", v1)
    rt = Runtime(tmp_path, daemons, {"app": url_module(url, pull="never")}, config=config(pki))
    assert rt.daemon.wait_for("imagePullPolicy is never"), rt.daemon.text()
    assert rt.modules() == {}
    assert server.requests() == []
    r = rt.cli("images", "pull", url, timeout=60)
    assert r.returncode == 0, r.stderr
    rt.redeploy({"app": url_module(url, pull="never")})
    wait_log(rt, "app", "version-1")
    assert len(server.requests()) == 1


def test_bad_image_urls_are_manifest_errors(tmp_path):
    doc = manifest({"app": url_module("https://localhost/x.sqfs")})
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(doc))
    r = run("check", "-m", str(path), "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "modules.app.settings.image" in r.stderr and "sha256" in r.stderr, r.stderr
    doc = manifest({"app": url_module("https://localhost/x.sqfs#sha256=" + "a" * 64, pull="later")})
    path.write_text(json.dumps(doc))
    r = run("check", "-m", str(path), "--state-dir", str(tmp_path / "s"))
    assert r.returncode == 2 and "imagePullPolicy" in r.stderr, r.stderr


@pytest.mark.skipif(not os.path.exists(MOSQUITTO), reason="mosquitto not installed")
def test_cloud_update_failure_is_reported_and_a_crash_loop_rolls_back(tmp_path, daemons,
                                                                       server, pki):
    import paho.mqtt.client as mqtt
    v1 = server.add("v1.sqfs", squashfs(tmp_path, 1))
    v2 = server.add("v2.sqfs", squashfs(tmp_path, 2))
    broker = Broker(tmp_path).start()
    got = []
    c = mqtt.Client(client_id="operator")
    c.on_message = lambda cl, u, m: got.append(json.loads(m.payload))
    c.connect("127.0.0.1", broker.port)
    c.subscribe("tinyedge/dev1/$edgeAgent/twin/reported/+", qos=1)
    c.loop_start()

    def deploy(version, module):
        doc = manifest({"app": module})
        doc["$version"] = version
        c.publish("tinyedge/dev1/deployment", json.dumps(doc), qos=1,
                  retain=True).wait_for_publish()

    def status(version, timeout=40):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for p in reversed(got):
                s = p.get("lastDesiredStatus")
                if s and p.get("lastDesiredVersion") == version:
                    return s
            time.sleep(0.1)
        raise AssertionError(f"no status for version {version}: {got}")

    try:
        cfg = config(pki, deviceId="dev1",
                     upstream={"protocol": "mqtt", "host": "127.0.0.1", "port": broker.port,
                               "tls": False},
                     deployment={"rollbackOnFailure": True, "probationSecs": 3})
        deploy(1, url_module(server.url("plain/v1.sqfs", v1)))
        rt = Runtime(tmp_path, daemons, {}, config=cfg)
        wait_log(rt, "app", "version-1")
        assert rt.daemon.wait_for("passed probation", timeout=20), rt.daemon.text()
        pid = rt.modules()["app"]["pid"]
        # A download that fails: 500, the old module untouched.
        deploy(2, url_module(server.url("status/404/v2.sqfs", v2)))
        s = status(2)
        assert s["code"] == 500 and "image download failed" in s["description"], s
        assert "404" in s["description"], s
        assert rt.modules()["app"]["pid"] == pid
        # An image that downloads but whose module crash-loops: rolled back
        # to version 1's image, still in the cache.
        deploy(3, url_module(server.url("plain/v2.sqfs", v2), script="exit 3"))
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            s = status(3)
            if s["code"] == 500:
                break
            time.sleep(0.2)
        assert s["code"] == 500 and "rolled back" in s["description"], s
        wait_log(rt, "app", "version-1")
        rt.wait(lambda m: m.get("app", {}).get("runtimeStatus") == "running", what="v1 again")
        assert v1 in cached(rt) and v2 in cached(rt)
    finally:
        c.loop_stop()
        c.disconnect()
        broker.stop()
