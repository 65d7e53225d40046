"""A scripted fake MQTT 3.1.1 broker for fault tests (plain TCP or TLS).

    fb = FakeBroker(tls=("server.pem", "server.key")).start()
    fb.plan("cut_puback", "malformed:rl5")   # the next two connections
    ...                                      # later ones behave ("normal")
    fb.seqs()                                # seq of every PUBLISH received
    fb.stop()

Normal behaviour: CONNACK to CONNECT, PUBACK to each QoS 1 PUBLISH, SUBACK
to SUBSCRIBE, PINGRESP to PINGREQ. A connection's behaviour is the next
entry of the plan when it is accepted (then `default`):

    normal              as above
    refuse              close at once after accept (and TLS handshake)
    cut_connack         half a CONNACK, then close
    cut_puback          after `after` PUBLISHes, half a PUBACK, then close
    stall_connect       read, never answer (not even CONNACK)
    stall_read          CONNACK, answer `after` PUBLISHes, then stop reading
                        and answering (the socket fills up)
    malformed:KIND      CONNACK (unless KIND replaces it), then the bytes of
                        MALFORMED[KIND] right after the SUBACK (the client
                        subscribes and starts publishing at CONNACK)

Everything received is recorded: `connects` (monotonic time, client id,
user name, password), `publishes` (time, packet id, payload), `events`
(time, connection number, what happened) so that a test can count what
was delivered and time the reconnects.
"""
import json
import socket
import ssl
import struct
import threading
import time


def _rl(n):
    out = bytearray()
    while True:
        b, n = n & 127, n >> 7
        out.append(b | (128 if n else 0))
        if not n:
            return bytes(out)


def packet(first, body=b""):
    return bytes([first]) + _rl(len(body)) + body


def _str(s):
    return struct.pack(">H", len(s)) + s


CONNACK = packet(0x20, b"\x00\x00")

# What a broker must never send, each a past bug class of embedded clients.
MALFORMED = {
    "rl5": bytes([0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),            # remaining length > 4 bytes
    "topic_past_end": packet(0x30, b"\x00\x09abc"),                 # topic length 9 in 5 bytes
    "truncated_connack": bytes([0x20, 0x01, 0x00]),                 # CONNACK claiming 1 byte
    "unknown_type": bytes([0xF0, 0x00]),                            # type 15 (reserved in 3.1.1)
    "type_zero": bytes([0x00, 0x00]),                               # type 0 (reserved)
    "huge_length": bytes([0x30, 0xFF, 0xFF, 0xFF, 0x7F]) + b"x" * 64,  # claims 256 MiB
    "bad_utf8": packet(0x30, _str(b"a\xff\xfeb") + b"payload"),     # topic not UTF-8
    "nul_in_topic": packet(0x30, _str(b"a\x00b") + b"payload"),     # U+0000 in a topic
    "publish_pid0": packet(0x32, _str(b"t") + b"\x00\x00" + b"p"),  # QoS 1 with packet id 0
    "puback_pid0": packet(0x40, b"\x00\x00"),                       # PUBACK for packet id 0
    "puback_long": packet(0x40, b"\x00\x05\x00"),                   # PUBACK of 3 bytes
    "pingresp_body": packet(0xD0, b"\x00"),                          # PINGRESP with a body
    "second_connack": CONNACK,                                       # CONNACK once online
    "qos3_publish": packet(0x36, _str(b"t") + b"\x00\x01p"),        # QoS 3
}
# Replace the CONNACK rather than follow it.
BEFORE_CONNACK = {"truncated_connack"}
# Not a protocol violation: the session goes on.
HARMLESS = {"puback_unknown": packet(0x40, b"\xbe\xef")}           # PUBACK for an unknown id


class FakeBroker:
    def __init__(self, port=0, tls=None, default="normal", after=5, weak_ok=False):
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.ctx = None
        if tls:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            if weak_ok:  # serve what OpenSSL's default level refuses (RSA-1024)
                self.ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            self.ctx.load_cert_chain(*tls)
        self.default, self.after = default, after
        self.lock = threading.Lock()
        self.queue = []
        self.connects, self.publishes, self.events = [], [], []
        self.accepted = 0          # TCP connections
        self.handshakes = 0        # TLS handshakes completed (or plain accepts)
        self.handshake_errors = []
        self.stopping = threading.Event()
        self.conns = []
        self.threads = []

    # --- the test's side ---

    def start(self):
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def stop(self):
        self.stopping.set()
        try:
            self.srv.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(timeout=5)

    def plan(self, *modes):
        with self.lock:
            self.queue.extend(modes)

    def seqs(self):
        out = []
        with self.lock:
            pubs = list(self.publishes)
        for _, _, payload in pubs:
            try:
                out.append(json.loads(payload[:payload.index(b"}") + 1])["seq"])
            except (ValueError, KeyError):
                pass
        return out

    def event_times(self, what):
        with self.lock:
            return [t for t, _, w in self.events if w == what]

    def wait(self, predicate, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)

    # --- the broker's side ---

    def _event(self, n, what):
        with self.lock:
            self.events.append((time.monotonic(), n, what))

    def _accept_loop(self):
        self.srv.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
                n = self.accepted
                mode = self.queue.pop(0) if self.queue else self.default
                self.conns.append(c)
            t = threading.Thread(target=self._serve, args=(c, n, mode), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, c, n, mode):
        self._event(n, "accept:" + mode)
        try:
            c.settimeout(30)
            if self.ctx:
                try:
                    c = self.ctx.wrap_socket(c, server_side=True)
                except (ssl.SSLError, OSError) as e:
                    with self.lock:
                        self.handshake_errors.append(str(e))
                    self._event(n, "tls-failed")
                    return
                with self.lock:
                    self.conns.append(c)
            with self.lock:
                self.handshakes += 1
            if mode == "refuse":
                return
            self._session(c, n, mode)
        except (OSError, ValueError, ssl.SSLError):
            pass
        finally:
            self._event(n, "closed")
            try:
                c.close()
            except OSError:
                pass

    def _read(self, c, buf, k):
        while len(buf) < k:
            d = c.recv(65536)
            if not d:
                raise ConnectionError("peer closed")
            buf += d
        return buf

    def _packet(self, c, buf):
        """One whole packet from c: (first byte, body, rest of buf)."""
        buf = self._read(c, buf, 2)
        rl, mult, i = 0, 1, 1
        while True:
            buf = self._read(c, buf, i + 1)
            b = buf[i]
            rl += (b & 127) * mult
            mult *= 128
            i += 1
            if not b & 128:
                break
            if i > 4:
                raise ValueError("bad remaining length from the client")
        buf = self._read(c, buf, i + rl)
        return buf[0], bytes(buf[i:i + rl]), buf[i + rl:]

    def _session(self, c, n, mode):
        kind = mode.split(":", 1)[1] if mode.startswith("malformed:") else None
        buf, pubs = b"", 0
        while not self.stopping.is_set():
            first, body, buf = self._packet(c, buf)
            ptype = first >> 4
            if ptype == 1:
                self._on_connect(n, body)
                if mode == "stall_connect":
                    self._event(n, "stalled")
                    self._stall(c)
                    return
                if mode == "cut_connack":
                    c.sendall(CONNACK[:2])
                    self._event(n, "cut")
                    return
                if kind in BEFORE_CONNACK:
                    c.sendall(MALFORMED[kind])
                    self._event(n, "fault")
                    self._drain(c)
                    return
                c.sendall(CONNACK)
                self._event(n, "connack")
            elif ptype == 3:
                qos = (first >> 1) & 3
                tlen = struct.unpack(">H", body[:2])[0]
                pid = struct.unpack(">H", body[2 + tlen:4 + tlen])[0] if qos else 0
                payload = body[2 + tlen + (2 if qos else 0):]
                with self.lock:
                    self.publishes.append((time.monotonic(), pid, payload))
                pubs += 1
                if mode == "cut_puback" and pubs >= self.after:
                    c.sendall(packet(0x40, struct.pack(">H", pid))[:3])
                    self._event(n, "cut")
                    return
                if mode == "stall_read" and pubs >= self.after:
                    self._event(n, "stalled")
                    self._stall(c)
                    return
                if qos == 1:
                    c.sendall(packet(0x40, struct.pack(">H", pid)))
            elif ptype == 8:
                pid = body[:2]
                count = 0
                rest = body[2:]
                while rest:
                    tl = struct.unpack(">H", rest[:2])[0]
                    rest = rest[3 + tl:]
                    count += 1
                c.sendall(packet(0x90, pid + b"\x01" * count))
                if kind:
                    self._send_fault(c, n, kind)
            elif ptype == 12:
                self._event(n, "pingreq")
                c.sendall(packet(0xD0))
            elif ptype == 14:
                self._event(n, "disconnect")
                return

    def _send_fault(self, c, n, kind):
        data = MALFORMED.get(kind) or HARMLESS[kind]
        c.sendall(data)
        self._event(n, "fault")

    def _on_connect(self, n, body):
        def field(p):
            k = struct.unpack(">H", body[p:p + 2])[0]
            return body[p + 2:p + 2 + k], p + 2 + k
        _, p = field(0)
        flags = body[p + 1]
        p += 4
        cid, p = field(p)
        user, p = field(p) if flags & 0x80 else (b"", p)
        pw, p = field(p) if flags & 0x40 else (b"", p)
        with self.lock:
            self.connects.append((time.monotonic(), cid.decode(), user.decode(), pw.decode()))
        self._event(n, "connect")

    def _stall(self, c):
        """Keep the connection open, read nothing, answer nothing."""
        while not self.stopping.is_set():
            time.sleep(0.1)
            try:
                if c.fileno() < 0:
                    return
            except OSError:
                return
        return

    def _drain(self, c):
        """Read until the client goes (its verdict on what we sent)."""
        c.settimeout(30)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
