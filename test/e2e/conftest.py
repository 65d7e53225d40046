"""Shared helpers for the end-to-end tests: they run the real static binary."""
import json
import os
import signal
import subprocess
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TINYEDGE_BIN", os.path.join(ROOT, "build", "tinyedge"))
SAMPLE_CONFIG = os.path.join(ROOT, "rootfs", "etc", "tinyedge", "config.json")
SAMPLE_DEPLOYMENT = os.path.join(ROOT, "rootfs", "etc", "tinyedge", "deployment.json")


def run(*args, env=None, input=None, timeout=30):
    """Run tinyedge with args; return CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    full_env.pop("TINYEDGE_STATE_DIR", None)
    if env:
        full_env.update(env)
    return subprocess.run([BIN, *args], capture_output=True, text=True,
                          env=full_env, input=input, timeout=timeout)


def sample_deployment(tmp_path):
    """The shipped sample deployment with its image pointed at this build."""
    with open(SAMPLE_DEPLOYMENT) as f:
        text = f.read().replace("/usr/bin/tinyedge", BIN)
    path = tmp_path / "deployment.json"
    path.write_text(text)
    return path


def write_json(tmp_path, name, doc):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2))
    return path


class Daemon:
    """A `tinyedge run` in the background with its stderr captured to a file."""

    def __init__(self, tmp_path, *args, env=None):
        self.log_path = tmp_path / f"daemon-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        full_env = dict(os.environ)
        full_env.pop("TINYEDGE_STATE_DIR", None)
        if env:
            full_env.update(env)
        self.proc = subprocess.Popen([BIN, "run", *args], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=full_env)

    def text(self):
        return self.log_path.read_text()

    def wait_for(self, needle, count=1, timeout=15):
        """Wait until needle appears count times in the log (or the daemon exits)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.text().count(needle) >= count:
                return True
            if self.proc.poll() is not None:
                return self.text().count(needle) >= count
            time.sleep(0.05)
        return False

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            self.log.close()


@pytest.fixture
def daemons():
    started = []

    def start(tmp_path, *args, env=None):
        d = Daemon(tmp_path, *args, env=env)
        started.append(d)
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait()
