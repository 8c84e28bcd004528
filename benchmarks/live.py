"""Live cost: CPU share of one core and resident memory over 60 s of real-time audio.

The daemon (`siren-detector run`) replays a street scene in real time (the file source paces it like a
microphone) and publishes to a local mosquitto; the tutorial-style pipeline (`benchmarks.tutorial_live`)
replays the same file. Both are measured from /proc over the same span, after start-up.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import cpu_seconds, memory_mb, write_scene
from detector.broker import LocalBroker

WARM_UP_S = 5.0


def _measure(command: list[str], seconds: float, ready_line: str | None) -> dict[str, Any]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if ready_line is not None:
            assert process.stdout is not None
            while process.stdout.readline().strip() != ready_line:
                if process.poll() is not None:
                    raise RuntimeError(f"{command} exited with {process.returncode} before it was ready")
        time.sleep(WARM_UP_S)
        cpu_before, wall_before = cpu_seconds(process.pid), time.monotonic()
        time.sleep(seconds)
        cpu_s, wall_s = cpu_seconds(process.pid) - cpu_before, time.monotonic() - wall_before
        memory = memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {"seconds": round(wall_s, 1), "cpu_percent_of_one_core": round(100 * cpu_s / wall_s, 2), **memory}


def run(seconds: float, model_path: Path) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "live.wav"
        write_scene(wav, seconds + WARM_UP_S + 30, seed=12)
        broker = LocalBroker()
        broker.start()
        try:
            config = Path(folder) / "live.yaml"
            config.write_text(yaml.safe_dump({
                "audio": {"source": "file", "file": str(wav), "realtime": True},
                "detection": {"model": str(model_path.resolve())},
                "mqtt": {"host": "127.0.0.1", "port": broker.port, "device_id": "bench",
                         "spool_dir": str(Path(folder) / "spool")},
                "health_interval_s": 10, "log_level": "WARNING",
            }))
            # the daemon reports ready to systemd, not on stdout: its start-up is over well within the warm-up
            daemon = _measure([sys.executable, "-m", "detector.cli", "run", "--config", str(config)], seconds,
                              ready_line=None)
            tutorial = _measure([sys.executable, "-m", "benchmarks.tutorial_live", str(wav), str(seconds + 60)],
                                seconds, ready_line="ready")
        finally:
            broker.stop()
    return {"daemon (siren-detector run, MQTT on)": daemon,
            "tutorial-style (TensorFlow + Keras predict per window)": tutorial}


def table(result: dict[str, Any]) -> str:
    lines = ["Live cost over real-time audio", "| process | seconds | CPU % of one core | RSS MB | peak RSS MB |",
             "|---|---:|---:|---:|---:|"]
    for name, row in result.items():
        lines.append(f"| {name} | {row['seconds']} | {row['cpu_percent_of_one_core']} | {row['rss_mb']} | "
                     f"{row['peak_rss_mb']} |")
    return "\n".join(lines)
