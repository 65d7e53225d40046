#!/usr/bin/env python3
"""A test HTTP(S) server for image downloads, with knobs in the path.

    images_server.py --root DIR [--cert PEM --key PEM] [--log FILE]

Serves the files of DIR over HTTP/1.1 (HTTPS with --cert/--key) on a free
port of 127.0.0.1 and prints the port on the first line of stdout. Every
request is appended to --log as one JSON line {"path", "range"}.

The first path segments choose a behaviour; the last one names the file:
    /plain/NAME          200 with Content-Length; Range is honoured (206)
    /norange/NAME        200 with Content-Length; Range is ignored
    /chunked/NAME        200 with Transfer-Encoding: chunked
    /nolength/NAME       200 without a length; the end is the close
    /truncate/NAME       Content-Length, half the body, close; no Range
    /cut/NAME            the first request gets half the body then a
                         close; later ones honour Range
    /redirect/N/NAME     N redirects (302, relative and absolute in turn),
                         then /redirect/0/NAME serves as /plain/NAME
    /status/CODE/NAME    that status, empty body
    /to/http/PORT/NAME   302 to http://localhost:PORT/plain/NAME
    /hugehead/NAME       a response head over 16 KiB
"""
import argparse
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CUT_SEEN = set()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def record(self):
        with LOCK, open(self.server.log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "range": self.headers.get("Range"),
                                "ua": self.headers.get("User-Agent"),
                                "host": self.headers.get("Host")}) + "\n")

    def body_of(self, name):
        path = os.path.join(self.server.root, os.path.basename(name))
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return None

    def head(self, code, headers):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Connection", "close")
        self.end_headers()

    def range_start(self):
        r = self.headers.get("Range")
        if r and r.startswith("bytes=") and r.endswith("-"):
            return int(r[6:-1])
        return None

    def serve_range(self, data):
        start = self.range_start()
        if start is None:
            self.head(200, [("Content-Length", str(len(data)))])
            self.wfile.write(data)
        elif start >= len(data):
            self.head(416, [("Content-Range", f"bytes */{len(data)}"), ("Content-Length", "0")])
        else:
            part = data[start:]
            self.head(206, [("Content-Length", str(len(part))),
                            ("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")])
            self.wfile.write(part)

    def do_GET(self):
        self.record()
        self.close_connection = True
        parts = self.path.split("/")[1:]
        kind, name = parts[0], parts[-1]
        if kind == "status":
            self.head(int(parts[1]), [("Content-Length", "0")])
            return
        if kind == "to":
            target = f"{parts[1]}://localhost:{parts[2]}/plain/{name}"
            self.head(302, [("Location", target), ("Content-Length", "0")])
            return
        if kind == "redirect" and int(parts[1]) > 0:
            n = int(parts[1])
            if n % 2:
                target = f"../{n - 1}/{name}"  # relative
            else:
                scheme = "https" if self.server.tls else "http"
                target = f"{scheme}://localhost:{self.server.server_port}/redirect/{n - 1}/{name}"
            self.head(302, [("Location", target), ("Content-Length", "0")])
            return
        data = self.body_of(name)
        if data is None:
            self.head(404, [("Content-Length", "0")])
            return
        if kind in ("plain", "redirect"):
            self.serve_range(data)
        elif kind == "norange":
            self.head(200, [("Content-Length", str(len(data)))])
            self.wfile.write(data)
        elif kind == "chunked":
            self.head(200, [("Transfer-Encoding", "chunked")])
            for i in range(0, len(data), 7000):
                piece = data[i:i + 7000]
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "nolength":
            self.head(200, [])
            self.wfile.write(data)
        elif kind == "truncate":
            self.head(200, [("Content-Length", str(len(data)))])
            self.wfile.write(data[:len(data) // 2])
        elif kind == "cut":
            with LOCK:
                first = self.path not in CUT_SEEN
                CUT_SEEN.add(self.path)
            if first:
                self.head(200, [("Content-Length", str(len(data)))])
                self.wfile.write(data[:len(data) // 2])
            else:
                self.serve_range(data)
        elif kind == "hugehead":
            self.head(200, [("X-Filler", "x" * 8000), ("X-Filler2", "y" * 8000),
                            ("X-Filler3", "z" * 8000), ("Content-Length", "0")])
        else:
            self.head(404, [("Content-Length", "0")])

    def finish(self):
        try:
            super().finish()
        finally:
            # An abrupt close (no close_notify), as a cut network would.
            try:
                self.connection.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--log", default=os.devnull)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.root, srv.log_path, srv.tls = a.root, a.log, bool(a.cert)
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print(srv.server_port, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
