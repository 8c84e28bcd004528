"""Detection latency: siren onset in the audio -> start event at an MQTT subscriber, in real-time replay.

Each stream is a street scene with sirens at known times (8 s sirens every 18 s), replayed in real time by
its own `siren-detector run` against one local mosquitto; several streams run side by side to collect the
onsets sooner (each daemon uses about 1 % of a core, so they barely compete). The audio time of the true
onset becomes wall time through the daemon's own clock: an event's `start` minus its `start_offset_s` is
the wall time at which the file's first sample played.
"""

from __future__ import annotations

import datetime
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import yaml

from benchmarks.common import write_scene
from detector.broker import LocalBroker
from detector.synth import SceneEvent, periodic_siren_times


class Arrivals:
    """Start events as they reach a subscriber, with the wall time each arrived."""

    def __init__(self, port: int) -> None:
        self.lock = threading.Lock()
        self.starts: list[tuple[str, float, dict[str, Any]]] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._received
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("bench/+/event", qos=1)
        self.client.loop_start()

    def _received(self, _client: Any, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrived = time.time()
        payload = json.loads(message.payload)
        if payload["type"] == "start":
            with self.lock:
                self.starts.append((message.topic.split("/")[1], arrived, payload))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wall(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _latencies(starts: list[tuple[str, float, dict[str, Any]]], truth: dict[str, list[SceneEvent]]
               ) -> tuple[list[float], int, int]:
    """Latency of the first start event inside each true siren; missed sirens; starts outside any siren."""
    latencies, false_starts = [], 0
    caught: set[tuple[str, int]] = set()
    for device, arrived, payload in sorted(starts, key=lambda s: s[1]):
        origin = _wall(payload["start"]) - payload["start_offset_s"]
        offset = payload["start_offset_s"]
        index = next((i for i, siren in enumerate(truth[device])
                      if siren.start_s - 3.0 <= offset <= siren.end_s), None)
        if index is None:
            false_starts += 1
        elif (device, index) not in caught:
            caught.add((device, index))
            latencies.append(arrived - (origin + truth[device][index].start_s))
    missed = sum(len(sirens) for sirens in truth.values()) - len(caught)
    return latencies, missed, false_starts


def run(onsets: int, streams: int, hops: tuple[float, ...], model_path: Path, yamnet: Path | None = None
        ) -> dict[str, Any]:
    """Latency per hop with the card's tracker; with `yamnet`, also at a 1 s hop with YAMNet confirming onsets."""
    siren_times, duration = periodic_siren_times(math.ceil(onsets / streams))
    results: dict[str, Any] = {}
    runs: list[tuple[str, str, float, dict[str, Any]]] = [(f"{hop:g}", f"hop{hop:g}", hop, {}) for hop in hops]
    if yamnet is not None:
        runs.append(("1 + YAMNet veto", "hop1-veto", 1.0, {"yamnet": str(yamnet.resolve()), "yamnet_urban": False,
                                                                "yamnet_confirm": True}))
    with tempfile.TemporaryDirectory() as folder:
        broker = LocalBroker()
        broker.start()
        arrivals = Arrivals(broker.port)
        truth: dict[str, list[SceneEvent]] = {}
        processes = []
        try:
            for _name, slug, hop, extra in runs:
                for stream in range(streams):
                    device = f"{slug}-{stream}"
                    wav = Path(folder) / f"{device}.wav"
                    truth[device] = write_scene(wav, duration, seed=100 + stream, siren_times=siren_times)
                    config = Path(folder) / f"{device}.yaml"
                    config.write_text(yaml.safe_dump({
                        "audio": {"source": "file", "file": str(wav), "realtime": True},
                        "detection": {"model": str(model_path.resolve()), "hop_s": hop, **extra},
                        "mqtt": {"host": "127.0.0.1", "port": broker.port, "topic_prefix": "bench",
                                 "device_id": device, "spool_dir": str(Path(folder) / device / "spool")},
                        "log_level": "WARNING",
                    }))
            for device in truth:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "detector.cli", "run", "--config", str(Path(folder) / f"{device}.yaml")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for process in processes:
                process.wait(timeout=duration + 120)
            time.sleep(1.0)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
            arrivals.close()
            broker.stop()
    for name, slug, _hop, _extra in runs:
        devices = {d: t for d, t in truth.items() if d.rsplit("-", 1)[0] == slug}
        latencies, missed, false_starts = _latencies([s for s in arrivals.starts if s[0] in devices], devices)
        values = np.asarray(latencies)
        results[name] = {
            "onsets": sum(len(t) for t in devices.values()), "detected": len(latencies), "missed": missed,
            "false_starts": false_starts, "streams": streams,
            "p50_s": round(float(np.median(values)), 2) if len(values) else None,
            "p95_s": round(float(np.percentile(values, 95)), 2) if len(values) else None,
            "max_s": round(float(values.max()), 2) if len(values) else None,
        }
    return results


def table(result: dict[str, Any]) -> str:
    lines = ["Onset -> MQTT start event at a subscriber, real-time replay",
             "| hop s (tracker) | onsets | detected | missed | false starts | p50 s | p95 s | max s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for hop, row in result.items():
        lines.append(f"| {hop} | {row['onsets']} | {row['detected']} | {row['missed']} | {row['false_starts']} | "
                     f"{row['p50_s']} | {row['p95_s']} | {row['max_s']} |")
    return "\n".join(lines)
