"""The daemon end to end, as a subprocess, against a real mosquitto the test starts on a free loopback port."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
import soundfile as sf
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from detector import synth
from detector.broker import LocalBroker, find_mosquitto, free_port
from detector.config import parse_config
from detector.sources import SyntheticSource

PREFIX = "sirens/test"
ONSET_TOLERANCE_S = 2.5


@pytest.fixture(scope="module")
def broker() -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: .ci/run installs it with apt (apt-get install mosquitto)")
    with LocalBroker(embedded=False) as running:
        yield running


class Subscriber:
    """Records every message under the test prefix: (topic suffix, payload, retained)."""

    def __init__(self, port: int, prefix: str = PREFIX) -> None:
        self.messages: list[tuple[str, Any, bool]] = []
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.prefix = prefix
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda client, *_: client.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(5.0)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        text = message.payload.decode()
        payload = text if message.topic.endswith("/availability") else json.loads(text)
        with self.lock:
            self.messages.append((message.topic[len(self.prefix) + 1 :], payload, bool(message.retain)))

    def of(self, topic: str) -> list[Any]:
        with self.lock:
            return [payload for t, payload, _retained in self.messages if t == topic]

    def wait_for(self, topic: str, predicate: Any, timeout_s: float, after: int = 0) -> bool:
        """Whether a message on `topic` beyond the first `after` ones satisfies `predicate` within the time."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(predicate(p) for p in self.of(topic)[after:]):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def write_config(tmp_path: Path, port: int, audio: dict[str, Any], **mqtt_extra: Any) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "audio": audio,
        "mqtt": {"host": "127.0.0.1", "port": port, "topic_prefix": "sirens", "device_id": "test",
                 "keepalive_s": 5, "spool_dir": str(tmp_path / "spool"), **mqtt_extra},
        "health_interval_s": 2,
    }))
    return path


def daemon(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "detector.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str], timeout_s: float = 120) -> None:
    _out, err = process.communicate(timeout=timeout_s)
    assert process.returncode == 0, err
    assert "Traceback" not in err


def test_scene_with_sirens_gives_one_start_and_end_per_siren(broker: LocalBroker, tmp_path: Path) -> None:
    seed, duration = 7, 120.0
    source = SyntheticSource(parse_config({"audio": {"synthetic": {"duration_s": duration, "seed": seed}}}).audio
                             .synthetic, 16000, block_s=duration, realtime=False)
    source.read(1.0)  # generates the scene, and with it the truth
    truth = source.truth
    subscriber = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, {"source": "synthetic", "realtime": False,
                                                   "synthetic": {"duration_s": duration, "seed": seed}})
    finish(daemon(config))
    time.sleep(0.5)
    subscriber.close()
    events = subscriber.of("event")
    starts = [e for e in events if e["type"] == "start"]
    ends = [e for e in events if e["type"] == "end"]
    assert len(truth) == 3 and len(starts) == len(ends) == len(truth)
    for siren, start, end in zip(truth, starts, ends, strict=True):
        assert abs(start["start_offset_s"] - siren.start_s) <= ONSET_TOLERANCE_S
        assert end["event_id"] == start["event_id"] and end["duration_s"] > 3.0
        assert end["end"] > start["start"] and start["model"]["name"] == "emergency"
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert subscriber.of("availability")[0] == "online" and subscriber.of("availability")[-1] == "offline"
    assert [s["active"] for s in subscriber.of("state")] == [False] + [True, False] * len(truth)
    health = subscriber.of("health")[-1]
    assert health["windows_processed"] == duration - 1 and health["queued_events"] == 0

    late = Subscriber(broker.port)  # what a controller that connects afterwards sees: the retained topics
    assert late.wait_for("availability", lambda p: p == "offline", 5.0)
    assert late.wait_for("state", lambda p: p["active"] is False, 5.0)
    late.close()


def test_siren_free_scene_gives_no_event(broker: LocalBroker, tmp_path: Path) -> None:
    subscriber = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, {"source": "synthetic", "realtime": False,
                                                   "synthetic": {"duration_s": 300, "seed": 11, "sirens": False}})
    finish(daemon(config))
    time.sleep(0.5)
    subscriber.close()
    assert subscriber.of("event") == []
    assert subscriber.of("health")[-1]["windows_processed"] == 299


def test_sigkill_gives_the_last_will_and_restart_says_online(broker: LocalBroker, tmp_path: Path) -> None:
    subscriber = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, {"source": "synthetic", "realtime": True,
                                                   "synthetic": {"duration_s": None}})
    process = daemon(config)
    try:
        assert subscriber.wait_for("availability", lambda p: p == "online", 30.0)
        seen = len(subscriber.of("availability"))
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        assert subscriber.wait_for("availability", lambda p: p == "offline", 15.0, after=seen)  # 1.5 x keepalive
        seen = len(subscriber.of("availability"))
        restarted = daemon(config)
        assert subscriber.wait_for("availability", lambda p: p == "online", 30.0, after=seen)
        restarted.send_signal(signal.SIGTERM)
        finish(restarted, 30)
        assert subscriber.of("availability")[-1] == "offline"
    finally:
        if process.poll() is None:
            process.kill()
        subscriber.close()


def test_events_made_while_the_broker_is_down_are_delivered_in_order_after(tmp_path: Path) -> None:
    """First connection fails; the events wait in the spool across a daemon restart, then arrive in order."""
    port = free_port()
    audio, truth = synth.generate_scene(40.0, np.random.default_rng(5), siren_times=[(5.0, 14.0), (24.0, 34.0)])
    scene = tmp_path / "scene.wav"
    sf.write(scene, audio, 16000)
    config = write_config(tmp_path, port, {"source": "file", "file": str(scene), "realtime": False},
                          reconnect_max_s=2)
    first = daemon(config)
    finish(first)  # the broker never came: everything is spooled on disk
    assert len(list((tmp_path / "spool").glob("*.json"))) >= 4
    with LocalBroker(port=port, embedded=False):
        subscriber = Subscriber(port)
        quiet = tmp_path / "quiet.wav"
        sf.write(quiet, synth.generate_traffic(16000 * 5, np.random.default_rng(1)), 16000)
        config = write_config(tmp_path, port, {"source": "file", "file": str(quiet), "realtime": False})
        finish(daemon(config))
        time.sleep(0.5)
        subscriber.close()
    events = subscriber.of("event")
    assert [e["type"] for e in events] == ["start", "end", "start", "end"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert all(abs(e["start_offset_s"] - t.start_s) <= ONSET_TOLERANCE_S for e, t in zip(events[::2], truth,
                                                                                         strict=True))
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_daemon_reconnects_when_the_broker_comes_up_late(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, port, {"source": "synthetic", "realtime": True, "synthetic": {"duration_s": None}},
                          reconnect_max_s=1)
    process = daemon(config)
    try:
        time.sleep(3.0)
        with LocalBroker(port=port, embedded=False):
            subscriber = Subscriber(port)
            assert subscriber.wait_for("availability", lambda p: p == "online", 20.0)
            assert subscriber.wait_for("health", lambda p: p["broker"]["connected"] is True, 10.0)
            process.send_signal(signal.SIGTERM)
            finish(process, 30)
            subscriber.close()
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.parametrize("broker_flag", [[], ["--embedded-broker"]], ids=["mosquitto", "embedded"])
def test_demo_command_runs_with_its_own_broker(broker_flag: list[str]) -> None:
    run = subprocess.run([sys.executable, "-m", "detector.cli", "demo", *broker_flag], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "sirens/demo/event" in run.stdout and "found 3 of 3 sirens, 0 false alarms" in run.stdout


def test_mqtt5_with_home_assistant_discovery_and_scores(broker: LocalBroker, tmp_path: Path) -> None:
    subscriber = Subscriber(broker.port)
    discovery = Subscriber(broker.port, prefix="homeassistant")
    config = write_config(tmp_path, broker.port, {"source": "synthetic", "realtime": False,
                                                   "synthetic": {"duration_s": 10, "seed": 1}},
                          protocol="5", home_assistant_discovery=True)
    text = yaml.safe_load(config.read_text())
    text["detection"] = {"publish_scores": True}
    config.write_text(yaml.safe_dump(text))
    finish(daemon(config))
    time.sleep(0.5)
    subscriber.close()
    discovery.close()
    announced = discovery.of("binary_sensor/siren_detector_test/config")
    assert announced and announced[0]["device_class"] == "sound" and announced[0]["state_topic"] == f"{PREFIX}/state"
    scores = subscriber.of("scores")
    assert len(scores) == 9 and set(scores[0]["scores"]) == {"non_emergency", "emergency"}
    assert subscriber.of("availability")[-1] == "offline"
