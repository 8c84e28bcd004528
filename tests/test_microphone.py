"""The microphone path through a real PortAudio stream, on a virtual ALSA capture device.

An ALSA `file` PCM, defined in a config the test writes and selects with ALSA_CONFIG_PATH, captures from a
raw file of generated street audio with a siren: 44.1 kHz, two channels, so the daemon's mix-down and
streaming resampler run too. ALSA's null slave has no clock, so PortAudio delivers frames faster than real
time and the ring buffer overwrites what the worker cannot take: the test also sees overflows counted.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from math import gcd
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.signal import resample_poly

from detector import synth

DEVICE_RATE = 44100
ALSA_CONF = "/usr/share/alsa/alsa.conf"


@pytest.fixture
def virtual_microphone(tmp_path: Path) -> dict[str, str]:
    if not Path(ALSA_CONF).is_file():
        pytest.fail(f"{ALSA_CONF} missing: install libasound2 (script/setup does)")
    audio = synth.generate_siren("wail", 30.0, np.random.default_rng(4)) * 0.3
    audio = audio + synth.generate_traffic(len(audio), np.random.default_rng(5), rms_dbfs=-30.0)
    divisor = gcd(DEVICE_RATE, 16000)
    resampled = resample_poly(audio, DEVICE_RATE // divisor, 16000 // divisor)
    raw = tmp_path / "capture.raw"
    np.stack([resampled, resampled], axis=1).astype("<f4").tofile(raw)
    config = tmp_path / "asound.conf"
    config.write_text(f'<{ALSA_CONF}>\npcm.sirentest {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
                      f'  infile "{raw}"\n  format "raw"\n}}\n')
    return {**os.environ, "ALSA_CONFIG_PATH": str(config)}


def test_devices_lists_the_virtual_capture_device(virtual_microphone: dict[str, str]) -> None:
    run = subprocess.run([sys.executable, "-m", "detector.cli", "devices", "--json"], capture_output=True, text=True,
                         env=virtual_microphone, timeout=60)
    assert run.returncode == 0, run.stderr
    devices = json.loads(run.stdout)
    names = [d["name"] for d in devices]
    assert any("sirentest" in name for name in names)
    assert 44100 in next(d for d in devices if "sirentest" in d["name"])["accepted_samplerates"]


def test_daemon_hears_a_siren_through_portaudio(virtual_microphone: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "audio": {"source": "microphone", "device": "sirentest", "sample_rate": DEVICE_RATE, "channels": 2,
                  "buffer_s": 20.0},
        "mqtt": {"enabled": False},
        "stdout": True,
        "health_interval_s": 1,
    }))
    process = subprocess.Popen([sys.executable, "-m", "detector.cli", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=virtual_microphone)
    messages = []
    deadline = time.monotonic() + 60
    try:
        assert process.stdout is not None
        for line in process.stdout:
            messages.append(json.loads(line))
            started = any(m["topic"].endswith("/event") and m["payload"]["type"] == "start" for m in messages)
            healthy = any(m["topic"].endswith("/health") and m["payload"]["windows_processed"] > 20
                          for m in messages)
            if (started and healthy) or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    events = [m["payload"] for m in messages if m["topic"].endswith("/event")]
    assert events and events[0]["type"] == "start" and events[0]["label"] == "emergency"
    health = [m["payload"] for m in messages if m["topic"].endswith("/health")]
    assert health[-1]["audio_source"] == "ok" and health[-1]["input_level_dbfs"] > -40
    assert health[-1]["input_overflows"] > 0 and health[-1]["dropped_windows"] > 0  # the clock-less device


def test_lost_input_stream_is_reported_and_reopened(virtual_microphone: dict[str, str], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The stream dies under the worker (as when a USB microphone is pulled): health says so, it is reopened."""
    import threading

    from detector.config import parse_config
    from detector.daemon import Daemon

    for key, value in virtual_microphone.items():
        monkeypatch.setenv(key, value)
    config = parse_config({"audio": {"source": "microphone", "device": "sirentest", "sample_rate": DEVICE_RATE,
                                     "channels": 2, "buffer_s": 10.0},
                           "mqtt": {"enabled": False}, "health_interval_s": 1})
    daemon = Daemon(config)
    health: list[dict] = []

    class HealthSink:
        def submit(self, message: object) -> None:
            if getattr(message, "kind", "") == "health":
                health.append(message.payload)  # type: ignore[attr-defined]

    daemon.sinks.append(HealthSink())
    worker = threading.Thread(target=daemon.run)
    worker.start()
    def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.1)

    try:
        wait_until(lambda: daemon.health.windows_processed >= 5)
        before = daemon.health.windows_processed
        daemon.source.close()  # the device vanishes
        wait_until(lambda: daemon.health.audio_faults > 0)
        wait_until(lambda: daemon.health.windows_processed > before + 5 and daemon.health.source_status == "ok")
    finally:
        daemon.stop_requested.set()
        worker.join(30)
    assert daemon.health.audio_faults == 1
    assert daemon.health.windows_processed > before + 5 and daemon.health.source_status == "ok"
    assert any(h["audio_source"].startswith("fault: the input stream stopped") for h in health)
