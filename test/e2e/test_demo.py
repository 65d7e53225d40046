"""make demo (scripts/demo.sh) runs the whole product against a local
mosquitto over TLS and stops cleanly: what it claims to show, it shows."""
import os
import re
import subprocess

from conftest import pids_matching

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_demo_runs_offline_then_drains_to_the_broker_and_stops_cleanly():
    binary = os.environ["TINYEDGE_BIN"]
    build = os.path.relpath(os.path.dirname(binary), ROOT)
    r = subprocess.run(["sh", "scripts/demo.sh"], cwd=ROOT, env=dict(os.environ, BUILD=build),
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    # Offline first: messages waited in the store...
    offline = out[out.index("== tinyedge queue: offline"):out.index("== mosquitto comes up")]
    waiting = re.search(r"^\$upstream\s+1\s+(\d+)", offline, re.M)
    assert waiting and int(waiting.group(1)) > 0, offline
    # ...then reached the broker over TLS, and the queue emptied.
    assert re.search(r"upstream: online: localhost:\d+ as demo-gw \(TLS handshake", out), out
    received = re.findall(r"^tinyedge/demo-gw/filter/output1 \{.*\"seq\":\d+\}$", out, re.M)
    assert len(received) == 3, out
    drained = out[out.index("queue drained"):out.index("== tinyedge stats")]
    assert re.search(r"^\$upstream\s+1\s+0\s+0\s", drained, re.M), drained
    # The twin patch reached the module, which reported it back.
    assert '"reported":{"TemperatureThreshold":30' in out, out
    assert '{"module":"filter","payload":{"hello":"tinyedge"}}' in out
    assert "daemon exited with status 0" in out
    assert not pids_matching("tinyedge-demo."), "demo left processes behind"
