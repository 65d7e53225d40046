"""A small Azure IoT Hub simulator over a plain MQTT broker (paho-mqtt 1.6).

IoT Hub is not a broker, but on mosquitto its device protocol is just
topics: the simulator connects as a second client, subscribes to what a
device publishes and publishes what a device subscribes to.

    sim = HubSim("127.0.0.1", port, "dev1", twin={"desired": {"x": 1}})
    sim.start()
    ...                      # the device connects and does its thing
    sim.set_desired({"x": 2})            # $iothub/twin/PATCH/properties/desired/?$version=2
    status, body = sim.invoke("reboot", {"delay": 0})
    sim.wait_telemetry(3)                # devices/dev1/messages/events/...
    sim.stop()

For one device (and optionally one module identity): twin GET answered
with 200 and the twin; reported patches merged, answered 204 with a new
$version; desired patches published with increasing $version; direct
methods invoked with $rid and their answers awaited; telemetry recorded
with its property bag decoded.

validate_sas() / validate_connect() check CONNECT credentials as IoT Hub
does. Run this file to self-test them (no broker needed).
"""
import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt

API_VERSION = "2021-04-12"


# --- credentials, checked as IoT Hub checks them ----------------------------

def url_encode(s):
    """RFC 3986: unreserved characters stay, everything else %XX upper-case."""
    return urllib.parse.quote(s, safe="-._~")


def resource_uri(host, device, module=None):
    r = f"{host}/devices/{device}"
    return f"{r}/modules/{module}" if module else r


def make_sas(key_b64, resource, expiry, key_name=None):
    """A SAS token, computed independently of the daemon's C code."""
    sr = url_encode(resource)
    mac = hmac.new(base64.b64decode(key_b64, validate=True),
                   f"{sr}\n{expiry}".encode(), hashlib.sha256).digest()
    token = (f"SharedAccessSignature sr={sr}&sig="
             f"{url_encode(base64.b64encode(mac).decode())}&se={expiry}")
    return token + (f"&skn={key_name}" if key_name else "")


def validate_sas(password, host, device, key_b64, module=None, now=None,
                 key_name=None):
    """Check a SAS token the way IoT Hub does for a device (or module)
    identity with a symmetric key: the "SharedAccessSignature " prefix,
    sr/sig/se each exactly once (any order), sr decoding to the identity's
    resource URI (host compared case-insensitively), se a decimal expiry
    still in the future, sig the base64 HMAC-SHA256 with the decoded key
    over the sr *as sent* + "\\n" + se, and skn only when a key name is
    expected. Returns the fields as a dict; raises ValueError naming the
    first problem."""
    prefix = "SharedAccessSignature "
    if not password.startswith(prefix):
        raise ValueError("not a SharedAccessSignature")
    fields = {}
    for part in password[len(prefix):].split("&"):
        k, eq, v = part.partition("=")
        if not eq or not k or not v:
            raise ValueError(f"malformed field {k!r}")
        if k in fields:
            raise ValueError(f"{k} appears twice")
        if k not in ("sr", "sig", "se", "skn"):
            raise ValueError(f"unknown field {k}")
        fields[k] = v
    for k in ("sr", "sig", "se"):
        if k not in fields:
            raise ValueError(f"missing {k}")
    want = resource_uri(host, device, module)
    sr = urllib.parse.unquote(fields["sr"], errors="strict")
    shost, _, spath = sr.partition("/")
    whost, _, wpath = want.partition("/")
    if shost.lower() != whost.lower() or spath != wpath:
        raise ValueError(f"sr {sr!r} is not {want!r}")
    if not fields["se"].isdigit():
        raise ValueError("se is not a number")
    if int(fields["se"]) <= (time.time() if now is None else now):
        raise ValueError("token expired")
    if fields.get("skn") != key_name:
        raise ValueError(f"skn {fields.get('skn')!r}, expected {key_name!r}")
    mac = hmac.new(base64.b64decode(key_b64, validate=True),
                   f"{fields['sr']}\n{fields['se']}".encode(), hashlib.sha256).digest()
    sig = urllib.parse.unquote(fields["sig"])
    if not hmac.compare_digest(sig.encode(), base64.b64encode(mac)):
        raise ValueError("signature does not match")
    return fields


def validate_connect(client_id, username, password, host, device, key_b64,
                     module=None, now=None):
    """The CONNECT packet's client id, username and SAS password."""
    ident = f"{device}/{module}" if module else device
    if client_id != ident:
        raise ValueError(f"client id {client_id!r}, expected {ident!r}")
    want = f"{host}/{ident}/?api-version="
    if not username.startswith(want):
        raise ValueError(f"username {username!r} does not start with {want!r}")
    return validate_sas(password, host, device, key_b64, module, now)


# --- the simulator ------------------------------------------------------------

def merge_patch(doc, patch):
    """JSON merge patch (RFC 7386), as twins apply it: null deletes."""
    for k, v in patch.items():
        if v is None:
            doc.pop(k, None)
        elif isinstance(v, dict) and isinstance(doc.get(k), dict):
            merge_patch(doc[k], v)
        else:
            doc[k] = v
    return doc


def parse_query(q):
    """'$rid=1&$version=2' -> {'$rid': '1', '$version': '2'}."""
    out = {}
    for part in q.split("&") if q else ():
        k, _, v = part.partition("=")
        out[urllib.parse.unquote(k)] = urllib.parse.unquote(v)
    return out


class Telemetry:
    def __init__(self, topic, body, system, app):
        self.topic, self.body, self.system, self.app = topic, body, system, app

    def __repr__(self):
        return f"Telemetry({self.topic!r}, {self.body!r})"


def parse_bag(bag):
    """The property bag: system ($.xx) and application properties, decoded."""
    system, app = {}, {}
    for part in bag.split("&") if bag else ():
        k, _, v = part.partition("=")
        (system if k.startswith("$.") else app)[urllib.parse.unquote(k)] = \
            urllib.parse.unquote(v)
    return system, app


class HubSim:
    """The hub side of one device (or module) identity on a plain broker."""

    def __init__(self, host, port, device, module=None, twin=None, ca=None,
                 client_id="hubsim", username=None, password=None):
        self.host, self.port, self.ca = host, port, ca
        self.device, self.module = device, module
        twin = twin or {}
        self.desired = dict(twin.get("desired", {}))
        self.reported = dict(twin.get("reported", {}))
        self.desired.setdefault("$version", 1)
        self.reported.setdefault("$version", 1)
        self.get_status = 200          # set e.g. 500 to fail twin GETs
        self.twin_gets = []            # rids of GET requests, in order
        self.reported_patches = []     # (rid, patch) in order
        self.telemetry = []
        self._methods = {}             # rid -> [status, body] once answered
        self._next_rid = 1
        self._cond = threading.Condition()
        self._client = mqtt.Client(client_id=client_id, clean_session=True,
                                   protocol=mqtt.MQTTv311)
        if username:
            self._client.username_pw_set(username, password)
        if ca:
            self._client.tls_set(ca_certs=ca)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._sub_mid = None
        self._connected = threading.Event()

    @property
    def events_prefix(self):
        m = f"/modules/{self.module}" if self.module else ""
        return f"devices/{self.device}{m}/messages/events/"

    def start(self, timeout=10):
        self._client.connect(self.host, self.port, keepalive=30)
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self.stop()
            raise TimeoutError("hubsim: no CONNACK/SUBACK from the broker")
        return self

    def stop(self):
        self._client.loop_stop()
        self._client.disconnect()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def twin(self):
        with self._cond:
            return {"desired": json.loads(json.dumps(self.desired)),
                    "reported": json.loads(json.dumps(self.reported))}

    # hub -> device

    def set_desired(self, patch, version=None):
        """Merge patch into desired and publish it with the next $version
        (or the given one, to test stale patches). Returns the version."""
        with self._cond:
            merge_patch(self.desired, dict(patch))
            v = version if version is not None else self.desired["$version"] + 1
            self.desired["$version"] = max(v, self.desired["$version"])
            body = dict(patch, **{"$version": v})
        self._publish(f"$iothub/twin/PATCH/properties/desired/?$version={v}", body)
        return v

    def invoke(self, name, payload=None, timeout=10):
        """Invoke a direct method; (status, body) of the device's answer
        (body parsed as JSON when it is, else bytes). TimeoutError if none."""
        with self._cond:
            rid = str(self._next_rid)
            self._next_rid += 1
        self._publish(f"$iothub/methods/POST/{url_encode(name)}/?$rid={rid}",
                      payload if payload is not None else {})
        with self._cond:
            if not self._cond.wait_for(lambda: rid in self._methods, timeout):
                raise TimeoutError(f"method {name} (rid {rid}): no answer")
            return tuple(self._methods.pop(rid))

    def wait_telemetry(self, count, timeout=10):
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.telemetry) >= count, timeout):
                raise TimeoutError(f"{len(self.telemetry)} of {count} messages")
            return list(self.telemetry)

    def wait_for(self, predicate, timeout=10):
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    # plumbing

    def _publish(self, topic, body, wait=True):
        """Publish at QoS 1; wait for the PUBACK unless called from paho's
        network thread (a callback), which would wait for itself."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self._client.publish(topic, data, qos=1)
        if wait:
            info.wait_for_publish(timeout=10)

    def _on_connect(self, client, userdata, flags, rc):
        if rc != 0:
            return
        subs = [("$iothub/twin/GET/#", 1),
                ("$iothub/twin/PATCH/properties/reported/#", 1),
                ("$iothub/methods/res/#", 1),
                (self.events_prefix + "#", 1)]
        _, self._sub_mid = client.subscribe(subs)

    def _on_subscribe(self, client, userdata, mid, granted_qos):
        if mid == self._sub_mid:
            self._connected.set()

    def _on_message(self, client, userdata, msg):
        topic = msg.topic
        try:
            if topic.startswith("$iothub/twin/GET/?"):
                self._twin_get(parse_query(topic.partition("?")[2]))
            elif topic.startswith("$iothub/twin/PATCH/properties/reported/?"):
                self._reported(parse_query(topic.partition("?")[2]), msg.payload)
            elif topic.startswith("$iothub/methods/res/"):
                self._method_res(topic, msg.payload)
            elif topic.startswith(self.events_prefix):
                self._telemetry(topic, msg.payload)
        except Exception as e:  # a test sees it as a missing answer
            print(f"hubsim: {topic}: {e!r}")

    def _twin_get(self, q):
        rid = q["$rid"]
        with self._cond:
            self.twin_gets.append(rid)
            body = self.twin() if self.get_status == 200 else {}
            self._cond.notify_all()
        self._publish(f"$iothub/twin/res/{self.get_status}/?$rid={rid}", body, wait=False)

    def _reported(self, q, payload):
        rid = q["$rid"]
        patch = json.loads(payload)
        with self._cond:
            merge_patch(self.reported, patch)
            self.reported["$version"] += 1
            v = self.reported["$version"]
            self.reported_patches.append((rid, patch))
            self._cond.notify_all()
        self._publish(f"$iothub/twin/res/204/?$rid={rid}&$version={v}", b"", wait=False)

    def _method_res(self, topic, payload):
        status, _, q = topic[len("$iothub/methods/res/"):].partition("/?")
        try:
            body = json.loads(payload) if payload else None
        except ValueError:
            body = payload
        with self._cond:
            self._methods[parse_query(q)["$rid"]] = [int(status), body]
            self._cond.notify_all()

    def _telemetry(self, topic, payload):
        system, app = parse_bag(topic[len(self.events_prefix):])
        with self._cond:
            self.telemetry.append(Telemetry(topic, payload, system, app))
            self._cond.notify_all()


# --- self-test of the credential checks -------------------------------------

KAT_KEY = "+XLy+MVZ+aTeOnVzN2kLeB16O+kSxmz6g3rS6fAf6rw="
KAT_HOST = "iot-hub-for-test.azure-devices.net"
KAT_DEVICE = "iot-device-for-test"
KAT_EXPIRY = 1471940363


def self_test():
    tok = make_sas(KAT_KEY, resource_uri(KAT_HOST, KAT_DEVICE), KAT_EXPIRY)
    assert "sig=SIumZ1ACqqPJZ2okHDlW9MSYKykEpqsQY3z6FMOICd4%3D" in tok, tok
    now = KAT_EXPIRY - 60
    validate_sas(tok, KAT_HOST, KAT_DEVICE, KAT_KEY, now=now)
    validate_sas(tok, KAT_HOST.upper(), KAT_DEVICE, KAT_KEY, now=now)
    mod = make_sas(KAT_KEY, resource_uri(KAT_HOST, KAT_DEVICE, "m1"), KAT_EXPIRY)
    validate_connect(f"{KAT_DEVICE}/m1", f"{KAT_HOST}/{KAT_DEVICE}/m1/?api-version={API_VERSION}",
                     mod, KAT_HOST, KAT_DEVICE, KAT_KEY, module="m1", now=now)
    other_key = base64.b64encode(b"k" * 32).decode()
    bad = {
        "expired": (tok, dict(now=KAT_EXPIRY)),
        "wrong key": (tok, dict(now=now, key_b64=other_key)),
        "other device": (make_sas(KAT_KEY, resource_uri(KAT_HOST, "x"), KAT_EXPIRY), dict(now=now)),
        "module token for the device": (mod, dict(now=now)),
        "tampered se": (tok.replace("se=1471940363", "se=1471940364"), dict(now=now)),
        "no prefix": (tok[len("SharedAccessSignature "):], dict(now=now)),
        "skn not expected": (tok + "&skn=owner", dict(now=now)),
        "sig twice": (tok + "&sig=abc", dict(now=now)),
        "lower-case escapes": (tok.replace("%2F", "%2f"), dict(now=now)),
    }
    for what, (t, kw) in bad.items():
        kw.setdefault("key_b64", KAT_KEY)
        try:
            validate_sas(t, KAT_HOST, KAT_DEVICE, **kw)
        except ValueError:
            continue
        raise AssertionError(f"accepted: {what}")
    assert parse_bag("$.mid=a%20b&$.ct=application%2Fjson&k%26=v%3D") == \
        ({"$.mid": "a b", "$.ct": "application/json"}, {"k&": "v="})
    return True


if __name__ == "__main__":
    self_test()
    print("hubsim: self-test ok")
