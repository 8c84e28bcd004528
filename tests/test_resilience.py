"""Broker outages during a real-time replay: every event the daemon produced reaches a subscriber, in order.

The subscriber keeps a persistent session (mosquitto saves it every second), so messages the daemon
delivers before the subscriber has reconnected wait for it; what is measured is the daemon's delivery.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
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

SIRENS = [(5.0, 15.0), (22.0, 32.0), (45.0, 55.0), (65.0, 75.0)]
SCENE_S = 100.0


class PersistentSubscriber:
    def __init__(self, port: int) -> None:
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []  # time.monotonic() of each event's arrival
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="resilience-subscriber", clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda client, *_: client.subscribe("sirens/outage/event", qos=1)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.events.append(json.loads(message.payload))
            self.arrivals.append(time.monotonic())

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.slow
def test_events_survive_a_killed_broker_mid_event_and_a_minute_long_stop(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    audio, _truth = synth.generate_scene(SCENE_S, np.random.default_rng(21), siren_times=SIRENS)
    scene = tmp_path / "scene.wav"
    sf.write(scene, audio, 16000)
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "audio": {"source": "file", "file": str(scene), "realtime": True},
        "mqtt": {"host": "127.0.0.1", "port": port, "device_id": "outage", "keepalive_s": 5,
                 "reconnect_min_s": 1, "reconnect_max_s": 4, "spool_dir": str(tmp_path / "spool")},
        "stdout": True, "health_interval_s": 5,
    }))
    broker = LocalBroker(port=port, embedded=False, persistent=True).start()
    subscriber = PersistentSubscriber(port)
    time.sleep(1.5)  # the subscription is saved before the first outage
    began = time.monotonic()
    daemon = subprocess.Popen([sys.executable, "-m", "detector.cli", "run", "--config", str(config)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def at(seconds: float) -> None:
        time.sleep(max(0.0, began + seconds - time.monotonic()))

    try:
        at(23.0)  # siren 2 starts at 22 s: its start event is produced while the broker is dead
        broker.stop(kill=True)
        at(29.0)
        broker.start()
        back = [time.monotonic()]
        at(36.0)  # sirens 3 and 4 come and go while the broker is stopped for 60 s
        broker.stop(kill=False)
        at(96.0)
        broker.start()
        back.append(time.monotonic())
        out, err = daemon.communicate(timeout=90)
        time.sleep(2.0)
    finally:
        if daemon.poll() is None:
            daemon.kill()
        subscriber.close()
        broker.stop()
    assert daemon.returncode == 0, err
    messages = [json.loads(line) for line in out.splitlines()]
    produced = [m["payload"] for m in messages if m["topic"].endswith("/event")]
    assert [e["type"] for e in produced] == ["start", "end"] * len(SIRENS)
    first_arrivals: list[int] = []  # QoS 1 may deliver twice; the first arrivals must be every seq, in order
    for event in subscriber.events:
        if event["seq"] not in first_arrivals:
            first_arrivals.append(event["seq"])
    assert list((tmp_path / "spool").glob("*.json")) == [], "undelivered events left in the spool"
    assert first_arrivals == [e["seq"] for e in produced], err
    recovery = [min(t for t in subscriber.arrivals if t > restart) - restart for restart in back]
    print(f"\noutages: broker SIGKILLed 6 s mid-event, then stopped 60 s; {len(produced)} events produced, "
          f"all delivered in order; first spooled event delivered {recovery[0]:.1f} s and {recovery[1]:.1f} s "
          "after the broker came back")
