"""The built-in default: the daemon on a generated street scene, publishing to a broker of its own.

No microphone, no broker and no data needed: a subscriber prints every message as a controller would
receive it, then the run is compared with where the generated sirens really were.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from detector.broker import LocalBroker
from detector.config import load_config
from detector.daemon import Daemon
from detector.errors import ConfigError
from detector.sources import SyntheticSource
from detector.synth import SceneEvent

ONSET_TOLERANCE_S = 2.5
HEALTH_SHOWN = ("windows_processed", "inference_ms", "input_level_dbfs", "queued_events")


class PrintingSubscriber:
    """Subscribes to the device's topics and prints each message; keeps the event payloads."""

    def __init__(self, port: int, prefix: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="siren-demo-subscriber")
        self.client.on_connect = lambda client, *_: client.subscribe(f"{prefix}/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        text = message.payload.decode()
        if message.topic.endswith("/health"):
            figures = json.loads(text)
            text = json.dumps({key: figures[key] for key in HEALTH_SHOWN}) + " ..."
        elif message.topic.endswith("/event"):
            self.events.append(json.loads(text))
        print(f"  {message.topic}{' (retained)' if message.retain else ''}: {text}", flush=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def compare(truth: list[SceneEvent], events: list[dict[str, Any]]) -> tuple[int, int]:
    """Print each true siren beside the start event that matches it; return (found, false alarms)."""
    starts = [e for e in events if e["type"] == "start"]
    found = 0
    for siren in truth:
        match = next((e for e in starts if abs(e["start_offset_s"] - siren.start_s) <= ONSET_TOLERANCE_S), None)
        found += match is not None
        seen = (f"start at {match['start_offset_s']:6.1f} s, confidence {match['confidence']:.2f}" if match
                else "MISSED")
        print(f"  siren {siren.kind:<10} {siren.start_s:6.1f}-{siren.end_s:6.1f} s  ->  {seen}")
    false = [e for e in starts if not any(s.start_s - ONSET_TOLERANCE_S <= e["start_offset_s"] <= s.end_s
                                          for s in truth)]
    for event in false:
        print(f"  false alarm at {event['start_offset_s']:6.1f} s (confidence {event['confidence']:.2f})")
    return found, len(false)


def run_demo(config_path: Path, realtime: bool, embedded_broker: bool) -> int:
    """Exit 0 when every generated siren gave a start event within 2.5 s and nothing else did."""
    config = load_config(config_path)
    if config.audio.source != "synthetic":
        raise ConfigError(f"{config_path}: audio.source: the demo needs the synthetic source")
    with LocalBroker(embedded=True if embedded_broker else None) as broker:
        config = dataclasses.replace(
            config,
            audio=dataclasses.replace(config.audio, realtime=realtime),
            mqtt=dataclasses.replace(config.mqtt, host="127.0.0.1", port=broker.port, spool_dir=None),
        )
        daemon = Daemon(config)
        assert isinstance(daemon.source, SyntheticSource)
        prefix = f"{config.mqtt.topic_prefix}/{daemon.device_id}"
        scene = config.audio.synthetic
        print(f"demo: {scene.duration_s:.0f} s generated street scene (seed {scene.seed}, "
              f"{'real time' if realtime else 'as fast as possible'}), model {daemon.scorer.siren.identity.name}, "
              f"{broker.kind} broker on port {broker.port}; a subscriber to {prefix}/# receives:", flush=True)
        subscriber = PrintingSubscriber(broker.port, prefix)
        subscriber.subscribed.wait(5.0)
        code = daemon.run()
        time.sleep(0.5)  # let the last messages reach the subscriber
        subscriber.close()
    print("truth vs what the subscriber received:")
    found, false_alarms = compare(daemon.source.truth, subscriber.events)
    print(f"found {found} of {len(daemon.source.truth)} sirens, {false_alarms} false alarms")
    return code or (0 if found == len(daemon.source.truth) and not false_alarms else 1)
