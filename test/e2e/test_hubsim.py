"""The hub simulator against a real mosquitto, with paho as the device: the
peer the upstream's e2e tests rely on must itself be right."""
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse

import paho.mqtt.client as mqtt
import pytest

import hubsim

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def broker(tmp_path):
    """mosquitto on 127.0.0.1, a free port, plain TCP, anonymous."""
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto not installed")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                    f"persistence false\nlog_dest file {tmp_path}/mosquitto.log\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("mosquitto did not start")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)


class Device:
    """paho as the device: the three IoT Hub subscriptions, a queue of what
    arrives, and a method handler that echoes."""

    def __init__(self, port, device="dev1"):
        self.got = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(client_id=device, protocol=mqtt.MQTTv311)
        self.c.on_message = self.on_message
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        self.c.subscribe([("$iothub/twin/res/#", 1),
                          ("$iothub/twin/PATCH/properties/desired/#", 1),
                          ("$iothub/methods/POST/#", 1)])
        assert subscribed.wait(10)

    def on_message(self, client, userdata, msg):
        if msg.topic.startswith("$iothub/methods/POST/"):
            name, _, q = msg.topic[len("$iothub/methods/POST/"):].partition("/?")
            rid = hubsim.parse_query(q)["$rid"]
            body = json.dumps({"method": urllib.parse.unquote(name),
                               "echo": json.loads(msg.payload)})
            client.publish(f"$iothub/methods/res/201/?$rid={rid}", body, qos=1)
        with self.cond:
            self.got.append((msg.topic, msg.payload))
            self.cond.notify_all()

    def wait(self, prefix, timeout=10):
        """The first message whose topic starts with prefix; removed."""
        with self.cond:
            def find():
                return next((m for m in self.got if m[0].startswith(prefix)), None)
            assert self.cond.wait_for(find, timeout), f"nothing on {prefix}"
            m = find()
            self.got.remove(m)
            return m

    def publish(self, topic, payload):
        self.c.publish(topic, payload, qos=1).wait_for_publish(timeout=10)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def test_credentials_self_test():
    assert hubsim.self_test()


def test_hubsim_twin_methods_telemetry(broker):
    twin = {"desired": {"TemperatureThreshold": 30}, "reported": {}}
    with hubsim.HubSim("127.0.0.1", broker, "dev1", twin=twin) as sim:
        dev = Device(broker)
        try:
            # twin GET -> 200 with the whole twin
            dev.publish("$iothub/twin/GET/?$rid=1", b"")
            topic, body = dev.wait("$iothub/twin/res/")
            assert topic == "$iothub/twin/res/200/?$rid=1"
            doc = json.loads(body)
            assert doc["desired"] == {"TemperatureThreshold": 30, "$version": 1}

            # reported patch -> 204 with the next $version, merged
            dev.publish("$iothub/twin/PATCH/properties/reported/?$rid=2",
                        json.dumps({"fw": "1.0", "gone": None}))
            topic, body = dev.wait("$iothub/twin/res/")
            assert topic == "$iothub/twin/res/204/?$rid=2&$version=2"
            assert body == b""
            assert sim.twin()["reported"] == {"fw": "1.0", "$version": 2}
            assert sim.reported_patches == [("2", {"fw": "1.0", "gone": None})]

            # desired patches, increasing $version, also in the body
            assert sim.set_desired({"TemperatureThreshold": 31}) == 2
            topic, body = dev.wait("$iothub/twin/PATCH/properties/desired/")
            assert topic == "$iothub/twin/PATCH/properties/desired/?$version=2"
            assert json.loads(body) == {"TemperatureThreshold": 31, "$version": 2}
            sim.set_desired({"x": 1}, version=1)  # a stale one, on request
            topic, _ = dev.wait("$iothub/twin/PATCH/properties/desired/")
            assert topic.endswith("?$version=1")

            # direct method: POST with a $rid, the answer awaited
            status, answer = sim.invoke("set speed", {"rpm": 5})
            assert status == 201
            assert answer == {"method": "set speed", "echo": {"rpm": 5}}
            assert dev.wait("$iothub/methods/POST/")[0] == \
                "$iothub/methods/POST/set%20speed/?$rid=1"

            # telemetry with its property bag decoded
            dev.publish("devices/dev1/messages/events/$.mid=m%201&$.ct=application%2Fjson"
                        "&temp%20unit=%C2%B0C&outputName=alerts", b'{"t": 21}')
            dev.publish("devices/dev1/messages/events/", b"bare")
            msgs = sim.wait_telemetry(2)
            assert msgs[0].system == {"$.mid": "m 1", "$.ct": "application/json"}
            assert msgs[0].app == {"temp unit": "°C", "outputName": "alerts"}
            assert msgs[0].body == b'{"t": 21}'
            assert (msgs[1].system, msgs[1].app, msgs[1].body) == ({}, {}, b"bare")
        finally:
            dev.close()


def test_hubsim_failing_get_and_no_answer(broker):
    with hubsim.HubSim("127.0.0.1", broker, "dev1") as sim:
        sim.get_status = 500
        dev = Device(broker)
        try:
            dev.publish("$iothub/twin/GET/?$rid=x", b"")
            assert dev.wait("$iothub/twin/res/")[0] == "$iothub/twin/res/500/?$rid=x"
            dev.c.on_message = lambda *a: None   # the device stops answering
            with pytest.raises(TimeoutError):
                sim.invoke("reboot", timeout=0.5)
        finally:
            dev.close()
