"""Image downloads into the cache (docs/images.md, "Download and cache"):
`tinyedge images pull URL` against test/images_server.py over HTTPS with
the test PKI, the checks that refuse an image, resume, redirects,
signatures, file:// and the cache's GC."""
import base64
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run, write_json

SERVER = os.path.join(ROOT, "test", "images_server.py")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    r = subprocess.run(["sh", os.path.join(ROOT, "test", "pki.sh"), str(d)], capture_output=True)
    assert r.returncode == 0, r.stderr
    return d


class ImageServer:
    def __init__(self, tmp, pki=None, cert="server"):
        tag = f"{cert}-{'tls' if pki else 'plain'}"
        self.root = tmp / f"www-{tag}"
        self.root.mkdir(exist_ok=True)
        self.log = tmp / f"requests-{tag}.log"
        args = [sys.executable, SERVER, "--root", str(self.root), "--log", str(self.log)]
        if pki:
            args += ["--cert", str(pki / f"{cert}.pem"), "--key", str(pki / f"{cert}.key")]
        self.scheme = "https" if pki else "http"
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())

    def add(self, name, data):
        (self.root / name).write_bytes(data)
        return hashlib.sha256(data).hexdigest()

    def url(self, path, sha, host="localhost"):
        return f"{self.scheme}://{host}:{self.port}/{path}#sha256={sha}"

    def requests(self):
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def servers():
    started = []

    def start(*args, **kw):
        s = ImageServer(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()


class Cache:
    """A daemon with an images config and the CLI on its state dir."""

    def __init__(self, tmp, daemons, images):
        self.state = tmp / "state"
        cfg = write_json(tmp, "config.json", {"images": images})
        self.daemon = daemons(tmp, "-c", str(cfg), "--state-dir", str(self.state))
        assert self.daemon.wait_for("agent: ready"), self.daemon.text()

    def cli(self, *args, timeout=60):
        return run("images", *args, "--state-dir", str(self.state), timeout=timeout)

    def pull(self, url):
        return self.cli("pull", url)

    def listing(self):
        r = self.cli("--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def cached(self):
        return sorted(i["sha256"] for i in self.listing()["images"])

    def files(self, sub):
        d = self.state / "images" / sub
        return sorted(os.listdir(d)) if d.exists() else []


MIB = 1 << 20


def blob(n, seed):
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d-%d" % (seed, i)).digest()
        i += 1
    return bytes(out[:n])


@pytest.fixture
def tls_cache(tmp_path, daemons, pki):
    return Cache(tmp_path, daemons, {"caFile": str(pki / "ca.pem"), "maxImageBytes": MIB,
                                     "timeoutSecs": 30})


def test_good_download_is_cached_and_listed(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    data = blob(300_000, 1)
    sha = srv.add("a.sqfs", data)
    r = tls_cache.pull(srv.url("plain/a.sqfs", sha))
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    assert path == str(tls_cache.state / "images" / "sha256" / sha)
    assert open(path, "rb").read() == data
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
    assert tls_cache.cached() == [sha]
    img = tls_cache.listing()["images"][0]
    assert img["size"] == len(data) and img["refs"] == 0 and "plain/a.sqfs" in img["url"]
    table = tls_cache.cli()
    assert table.returncode == 0 and sha[:12] in table.stdout and "300000" in table.stdout
    req = srv.requests()[0]
    assert req["ua"].startswith("tinyedge/") and req["range"] is None
    assert req["host"] == f"localhost:{srv.port}"
    # Pulled again: served from the cache, no new request.
    r = tls_cache.pull(srv.url("plain/a.sqfs", sha))
    assert r.returncode == 0 and len(srv.requests()) == 1


def test_chunked_and_no_length_bodies(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    sha1 = srv.add("c.sqfs", blob(100_000, 2))
    sha2 = srv.add("n.sqfs", blob(50_000, 3))
    assert tls_cache.pull(srv.url("chunked/c.sqfs", sha1)).returncode == 0
    r = tls_cache.pull(srv.url("nolength/n.sqfs", sha2))
    assert r.returncode == 0, r.stderr
    assert tls_cache.cached() == sorted([sha1, sha2])


def test_wrong_sha256_is_refused(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    real = srv.add("w.sqfs", blob(10_000, 4))
    wrong = hashlib.sha256(b"something else").hexdigest()
    r = tls_cache.pull(srv.url("plain/w.sqfs", wrong))
    assert r.returncode == 1
    assert f"sha256 mismatch: expected {wrong}, got {real}" in r.stderr
    assert tls_cache.cached() == [] and tls_cache.files("sha256") == []
    assert tls_cache.files("tmp") == []  # a wrong image is not kept to resume


def test_truncated_download_is_refused(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    sha = srv.add("t.sqfs", blob(200_000, 5))
    r = tls_cache.pull(srv.url("truncate/t.sqfs", sha))
    assert r.returncode == 1
    assert "closed the connection" in r.stderr and "bytes short" in r.stderr
    assert tls_cache.cached() == [] and tls_cache.files("sha256") == []


@pytest.mark.parametrize("cert,reason", [("wrongname", "does not match"),
                                         ("other", "not signed by a trusted CA")])
def test_wrong_certificate_is_refused(tmp_path, servers, pki, tls_cache, cert, reason):
    srv = servers(tmp_path, pki, cert=cert)
    sha = srv.add("x.sqfs", blob(1000, 6))
    r = tls_cache.pull(srv.url("plain/x.sqfs", sha))
    assert r.returncode == 1
    assert "TLS" in r.stderr and reason in r.stderr, r.stderr
    assert srv.requests() == []  # no request went out
    assert tls_cache.cached() == []


@pytest.mark.parametrize("kind,reason", [("plain", "over images.maxImageBytes"),
                                         ("nolength", "grows past images.maxImageBytes")])
def test_oversized_image_is_refused(tmp_path, servers, pki, tls_cache, kind, reason):
    srv = servers(tmp_path, pki)
    sha = srv.add("big.sqfs", blob(MIB + 4096, 7))
    r = tls_cache.pull(srv.url(f"{kind}/big.sqfs", sha))
    assert r.returncode == 1 and reason in r.stderr, r.stderr
    assert tls_cache.cached() == [] and tls_cache.files("tmp") == []


def test_cut_download_resumes_with_range(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    data = blob(400_000, 8)
    sha = srv.add("r.sqfs", data)
    r = tls_cache.pull(srv.url("cut/r.sqfs", sha))
    assert r.returncode == 0, r.stderr
    assert open(r.stdout.strip(), "rb").read() == data
    reqs = srv.requests()
    assert len(reqs) == 2 and reqs[0]["range"] is None
    assert reqs[1]["range"] == f"bytes={len(data) // 2}-"
    # Bytes served: half, then the other half: less than twice the image.
    n = len(data)
    assert f"({n} bytes, {n} transferred, 2 requests)" in tls_cache.daemon.text()


def test_resume_across_pulls_keeps_the_part(tmp_path, servers, pki, tls_cache):
    """A cut that retries cannot fix (no Range support) keeps the part; a
    later pull from a server that honours Range resumes it."""
    srv = servers(tmp_path, pki)
    data = blob(300_000, 9)
    sha = srv.add("p.sqfs", data)
    r = tls_cache.pull(srv.url("truncate/p.sqfs", sha))
    assert r.returncode == 1
    assert tls_cache.files("tmp") == [f"{sha}.part"]
    r = tls_cache.pull(srv.url("plain/p.sqfs", sha))
    assert r.returncode == 0, r.stderr
    last = srv.requests()[-1]
    assert last["path"] == "/plain/p.sqfs" and last["range"] == f"bytes={len(data) // 2}-"
    assert tls_cache.files("tmp") == []


def test_redirects(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    sha = srv.add("d.sqfs", blob(5000, 10))
    r = tls_cache.pull(srv.url("redirect/5/d.sqfs", sha))
    assert r.returncode == 0, r.stderr
    paths = [q["path"] for q in srv.requests()]
    assert paths == [f"/redirect/{n}/d.sqfs" for n in range(5, -1, -1)]
    r = tls_cache.pull(srv.url("redirect/6/e.sqfs", hashlib.sha256(b"e").hexdigest()))
    assert r.returncode == 1 and "too many redirects" in r.stderr


def test_http_allowed_but_no_downgrade_from_https(tmp_path, servers, pki, tls_cache):
    plain = servers(tmp_path, None)
    srv = servers(tmp_path, pki)
    sha = plain.add("h.sqfs", b"x" * 100)
    srv.add("h.sqfs", b"x" * 100)
    r = tls_cache.pull(srv.url(f"to/http/{plain.port}/h.sqfs", sha))
    assert r.returncode == 1 and "https:// to http:// refused" in r.stderr, r.stderr
    assert plain.requests() == []
    r = tls_cache.pull(srv.url("status/404/h.sqfs", sha))
    assert r.returncode == 1 and "HTTP status 404" in r.stderr
    r = tls_cache.pull(plain.url("plain/h.sqfs", sha))
    assert r.returncode == 0, r.stderr  # http:// with a sha256 is allowed


def test_bad_urls_are_usage_errors(tmp_path, tls_cache):
    for url in ["https://localhost/x", "https://localhost/x#sha256=12",
                "ftp://localhost/x#sha256=" + "0" * 64, "https://:80/x#sha256=" + "0" * 64,
                "https://localhost/x#sha256=" + "0" * 64 + "&foo=1"]:
        r = tls_cache.pull(url)
        assert r.returncode == 2 and "image URL" in r.stderr, (url, r.stderr)


def test_file_url(tmp_path, tls_cache):
    f = tmp_path / "local.sqfs"
    data = blob(70_000, 11)
    f.write_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    r = tls_cache.pull(f"file://{f}#sha256={sha}")
    assert r.returncode == 0, r.stderr
    assert open(r.stdout.strip(), "rb").read() == data
    r = tls_cache.pull(f"file://{tmp_path}/missing#sha256={sha[::-1]}")
    assert r.returncode == 1 and "No such file" in r.stderr


def openssl(*args, input=None):
    r = subprocess.run(["openssl", *args], capture_output=True, input=input)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_signatures(tmp_path, servers, pki, daemons):
    key, other = tmp_path / "sign.key", tmp_path / "other.key"
    for k in (key, other):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(k))
    pub = tmp_path / "sign.pub"
    openssl("pkey", "-in", str(key), "-pubout", "-out", str(pub))
    cache = Cache(tmp_path, daemons, {"caFile": str(pki / "ca.pem"), "trustedKeys": [str(pub)]})
    srv = servers(tmp_path, pki)
    data = blob(20_000, 12)
    sha = srv.add("s.sqfs", data)
    img = srv.root / "s.sqfs"

    def sig(k, urlsafe=False):
        raw = openssl("dgst", "-sha256", "-sign", str(k), str(img))
        return (base64.urlsafe_b64encode(raw).rstrip(b"=") if urlsafe
                else base64.b64encode(raw)).decode()

    r = cache.pull(srv.url("plain/s.sqfs", sha))
    assert r.returncode == 1 and "signature required" in r.stderr
    r = cache.pull(srv.url("plain/s.sqfs", sha) + "&sig=" + sig(other))
    assert r.returncode == 1 and "signature check failed" in r.stderr
    assert srv.requests() == []  # refused before any download
    r = cache.pull(srv.url("plain/s.sqfs", sha) + "&sig=" + sig(key, urlsafe=True))
    assert r.returncode == 0, r.stderr
    assert cache.cached() == [sha]


def test_signature_without_keys_is_refused(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    sha = srv.add("k.sqfs", b"k" * 100)
    r = tls_cache.pull(srv.url("plain/k.sqfs", sha) + "&sig=" + base64.b64encode(b"x" * 70).decode())
    assert r.returncode == 1 and "trustedKeys is empty" in r.stderr


def test_bad_trusted_key_disables_the_cache(tmp_path, daemons):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key\n")
    cache = Cache(tmp_path, daemons, {"trustedKeys": [str(bad)]})
    r = cache.cli()
    assert r.returncode == 1 and "not available" in r.stderr
    assert "no PEM \"PUBLIC KEY\"" in cache.daemon.text()


def test_gc_grace_and_restart(tmp_path, daemons):
    files = []
    for i in range(2):
        f = tmp_path / f"g{i}.sqfs"
        f.write_bytes(blob(10_000, 20 + i))
        files.append((f, hashlib.sha256(f.read_bytes()).hexdigest()))
    cache = Cache(tmp_path, daemons, {"gcGraceSecs": 3})
    for f, sha in files:
        assert cache.pull(f"file://{f}#sha256={sha}").returncode == 0
    before = {i["sha256"]: i["lastUsed"] for i in cache.listing()["images"]}
    r = cache.cli("gc")
    assert r.returncode == 0 and "0 images removed" in r.stdout
    # The index survives a restart, last-used times included.
    cache.daemon.stop()
    again = Cache(tmp_path, daemons, {"gcGraceSecs": 3})
    assert {i["sha256"]: i["lastUsed"] for i in again.listing()["images"]} == before
    time.sleep(3.5)
    r = again.cli("gc")
    assert r.returncode == 0 and "2 images removed" in r.stdout
    assert all(sha in r.stdout for _, sha in files)
    assert again.cached() == [] and again.files("sha256") == [] and again.files("meta") == []


def test_gc_quota_removes_least_recently_used(tmp_path, daemons):
    cache = Cache(tmp_path, daemons, {"cacheBytes": MIB, "gcGraceSecs": 86400})
    shas = []
    for i in range(3):
        f = tmp_path / f"q{i}.sqfs"
        f.write_bytes(blob(400_000, 30 + i))
        shas.append(hashlib.sha256(f.read_bytes()).hexdigest())
        assert cache.pull(f"file://{f}#sha256={shas[-1]}").returncode == 0
        time.sleep(1.1)  # last-used times are seconds
    # 1.2 MB > 1 MiB: the pull's GC removed the oldest one.
    assert cache.cached() == sorted(shas[1:])
    assert "removed " + shas[0] in cache.daemon.text()


def test_oversized_response_head_is_refused(tmp_path, servers, pki, tls_cache):
    srv = servers(tmp_path, pki)
    sha = srv.add("hh.sqfs", b"h")
    r = tls_cache.pull(srv.url("hugehead/hh.sqfs", sha))
    assert r.returncode == 1 and "response head over 16384 bytes" in r.stderr, r.stderr
    assert tls_cache.cli().returncode == 0  # the daemon is fine
    assert tls_cache.daemon.proc.poll() is None
