"""Replay throughput: hours of audio through the whole detector per CPU-second on one core.

The daemon itself (`Daemon.run`) replays a WAV file as fast as possible: decoding, windowing, features,
the int8 model and the event tracker; MQTT is off, so the figure is the detector's own cost.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import write_scene
from detector.config import parse_config
from detector.daemon import Daemon


def run(hours: float, model_path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "replay.wav"
        sirens = write_scene(wav, hours * 3600, seed=11)
        config = parse_config({
            "audio": {"source": "file", "file": str(wav), "realtime": False, "block_s": 1.0},
            "detection": {"model": str(model_path)},
            "mqtt": {"enabled": False}, "stdout": False, "log_level": "WARNING",
        })
        daemon = Daemon(config)
        cpu_started, wall_started = time.process_time(), time.perf_counter()
        daemon.run()
        cpu_s, wall_s = time.process_time() - cpu_started, time.perf_counter() - wall_started
    return {"audio_hours": hours, "sirens_in_scene": len(sirens), "windows": daemon.health.windows_processed,
            "cpu_s": round(cpu_s, 2), "wall_s": round(wall_s, 2),
            "audio_hours_per_cpu_s": round(hours / cpu_s, 3), "times_real_time": round(hours * 3600 / cpu_s)}


def table(result: dict[str, Any]) -> str:
    return "\n".join([
        "Replay throughput, whole detector (file decode, windows, features, model, tracker), one core",
        "| audio | windows | CPU s | wall s | audio h per CPU s | × real time |", "|---:|---:|---:|---:|---:|---:|",
        f"| {result['audio_hours']:g} h | {result['windows']} | {result['cpu_s']} | {result['wall_s']} | "
        f"{result['audio_hours_per_cpu_s']} | {result['times_real_time']} |"])
