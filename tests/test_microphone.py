"""The microphone path through real PortAudio streams, on two virtual capture devices.

A clocked one: a private PulseAudio server whose null sink plays generated street audio with a siren, in
real time, at 44.1 kHz stereo; its monitor is the default source, which ALSA's `pulse` PCM (and so
PortAudio) records. The daemon's mix-down and streaming resampler run, and it must hear the siren.

A clock-less one: an ALSA `file` PCM, defined in a config the test writes and selects with
ALSA_CONFIG_PATH, whose null slave has no clock, so PortAudio delivers frames as fast as it can and the
ring buffer overwrites what the worker cannot take. What it delivers after the file's end is stale buffer
content, so it is only good for the overflow accounting and the lost-stream test, not for detection.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from scipy.signal import resample_poly

from detector import synth

DEVICE_RATE = 44100
ALSA_CONF = "/usr/share/alsa/alsa.conf"


def street_audio_at_device_rate(seconds: float) -> np.ndarray:
    """A wail 10 dB over traffic, as two identical channels at the device rate."""
    audio = synth.generate_siren("wail", seconds, np.random.default_rng(4)) * 0.3
    audio = audio + synth.generate_traffic(len(audio), np.random.default_rng(5), rms_dbfs=-30.0)
    divisor = gcd(DEVICE_RATE, 16000)
    resampled = resample_poly(audio, DEVICE_RATE // divisor, 16000 // divisor)
    return np.stack([resampled, resampled], axis=1).astype("<f4")


@pytest.fixture
def virtual_microphone(tmp_path: Path) -> dict[str, str]:
    """The clock-less ALSA `file` capture device `sirentest`."""
    if not Path(ALSA_CONF).is_file():
        pytest.fail(f"{ALSA_CONF} missing: install libasound2 (script/setup does)")
    raw = tmp_path / "capture.raw"
    street_audio_at_device_rate(30.0).tofile(raw)
    config = tmp_path / "asound.conf"
    config.write_text(f'<{ALSA_CONF}>\npcm.sirentest {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
                      f'  infile "{raw}"\n  format "raw"\n}}\n')
    return {**os.environ, "ALSA_CONFIG_PATH": str(config)}


@pytest.fixture
def street_microphone(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The clocked device: ALSA's `pulse` PCM on a private PulseAudio server playing a siren in real time."""
    missing = [program for program in ("pulseaudio", "pacat") if shutil.which(program) is None]
    if missing or not Path("/usr/share/alsa/alsa.conf.d/50-pulseaudio.conf").is_file():
        pytest.fail("pulseaudio, pacat or ALSA's pulse plugin missing: install pulseaudio pulseaudio-utils "
                    "libasound2-plugins (script/setup does as root)")
    runtime = tmp_path / "pulse"
    runtime.mkdir()
    env = {**os.environ, "PULSE_RUNTIME_PATH": str(runtime)}
    script = tmp_path / "street.pa"
    script.write_text("load-module module-native-protocol-unix auth-anonymous=1\n"
                      f"load-module module-null-sink sink_name=street rate={DEVICE_RATE} channels=2\n"
                      "set-default-source street.monitor\n")
    server = subprocess.Popen(["pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=no",
                               "-F", str(script)], env={**env, "HOME": str(tmp_path)},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    raw = tmp_path / "street.raw"
    street_audio_at_device_rate(90.0).tofile(raw)
    player: subprocess.Popen[Any] | None = None
    try:
        deadline = time.monotonic() + 20
        while not (runtime / "native").exists():
            assert server.poll() is None and time.monotonic() < deadline, "the PulseAudio server did not start"
            time.sleep(0.1)
        player = subprocess.Popen(["pacat", "--playback", "--device=street", f"--rate={DEVICE_RATE}",
                                   "--channels=2", "--format=float32le", "--raw", str(raw)], env=env)
        yield env
    finally:
        for process in (player, server):
            if process is not None:
                process.terminate()
                process.wait(10)


def run_daemon_until(env: dict[str, str], config: Path, done: Callable[[list[dict[str, Any]]], bool],
                     timeout_s: float = 60.0) -> tuple[list[dict[str, Any]], subprocess.CompletedProcess[str]]:
    """Run `siren-detector run` until its stdout messages satisfy `done` (or time runs out), then SIGTERM it."""
    process = subprocess.Popen([sys.executable, "-m", "detector.cli", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        assert process.stdout is not None
        for line in process.stdout:
            messages.append(json.loads(line))
            if done(messages) or time.monotonic() > deadline:
                break
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    return messages, subprocess.CompletedProcess(process.args, process.returncode, out, err)


def daemon_config(tmp_path: Path, device: str) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "audio": {"source": "microphone", "device": device, "sample_rate": DEVICE_RATE, "channels": 2,
                  "buffer_s": 20.0},
        "mqtt": {"enabled": False},
        "stdout": True,
        "health_interval_s": 1,
    }))
    return config


def payloads(messages: list[dict[str, Any]], topic_end: str) -> list[dict[str, Any]]:
    return [m["payload"] for m in messages if m["topic"].endswith(topic_end)]


def test_devices_lists_the_virtual_capture_device(virtual_microphone: dict[str, str]) -> None:
    run = subprocess.run([sys.executable, "-m", "detector.cli", "devices", "--json"], capture_output=True, text=True,
                         env=virtual_microphone, timeout=60)
    assert run.returncode == 0, run.stderr
    devices = json.loads(run.stdout)
    names = [d["name"] for d in devices]
    assert any("sirentest" in name for name in names)
    assert 44100 in next(d for d in devices if "sirentest" in d["name"])["accepted_samplerates"]


def test_daemon_hears_a_siren_through_portaudio(street_microphone: dict[str, str], tmp_path: Path) -> None:
    def heard(messages: list[dict[str, Any]]) -> bool:
        return (any(p["type"] == "start" for p in payloads(messages, "/event"))
                and any(p["windows_processed"] >= 5 for p in payloads(messages, "/health")))

    messages, run = run_daemon_until(street_microphone, daemon_config(tmp_path, "pulse"), heard)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    events = payloads(messages, "/event")
    assert events and events[0]["type"] == "start" and events[0]["label"] == "emergency"
    health = payloads(messages, "/health")
    assert health[-1]["audio_source"] == "ok" and health[-1]["input_level_dbfs"] > -40


def test_capture_faster_than_the_worker_is_counted_not_fatal(virtual_microphone: dict[str, str],
                                                             tmp_path: Path) -> None:
    def busy(messages: list[dict[str, Any]]) -> bool:
        return any(p["windows_processed"] > 20 for p in payloads(messages, "/health"))

    messages, run = run_daemon_until(virtual_microphone, daemon_config(tmp_path, "sirentest"), busy)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    health = payloads(messages, "/health")
    assert health[-1]["audio_source"] == "ok" and health[-1]["windows_processed"] > 20
    assert health[-1]["input_overflows"] > 0 and health[-1]["dropped_windows"] > 0


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
