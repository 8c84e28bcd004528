"""A capture stream that silently stops delivering frames, through real PortAudio and ALSA.

An ALSA `file` PCM reads its capture data from a FIFO the test writes in real time. When the test stops
writing (keeping the FIFO open), ALSA blocks in read and PortAudio goes quiet without an error, as it does
when a USB microphone is pulled. The daemon must say so on health ("no audio frames for N s"); while it is
stuck in the blocked device, its worker stops pinging the systemd watchdog, so systemd would restart it;
when audio flows again, the blocked read returns, the stream is reopened and capture and pings resume.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

ALSA_CONF = "/usr/share/alsa/alsa.conf"
RATE = 16000


class FifoMicrophone:
    """Writes generated audio into the FIFO in real time; `pause` stops writing but keeps it open."""

    def __init__(self, fifo: Path) -> None:
        self.fifo = fifo
        self.writing = threading.Event()
        self.writing.set()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        block = (np.random.default_rng(1).standard_normal(RATE // 10) * 0.05).astype("<f4").tobytes()
        while not self.done.is_set():
            fd = os.open(self.fifo, os.O_WRONLY)  # waits for a reader: PortAudio opens and closes it while probing
            try:
                while not self.done.is_set():
                    if self.writing.is_set():
                        os.write(fd, block)
                    time.sleep(0.1)
            except BrokenPipeError:
                pass  # the reader closed it; open again for the next reader
            finally:
                os.close(fd)

    def close(self) -> None:
        self.done.set()
        self.writing.set()
        with contextlib.suppress(OSError):  # unblock a writer waiting in open
            os.close(os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK))


@pytest.mark.slow
def test_silent_stall_is_reported_and_stops_the_watchdog(tmp_path: Path) -> None:
    if not Path(ALSA_CONF).is_file():
        pytest.fail(f"{ALSA_CONF} missing: install libasound2 (script/setup does)")
    fifo = tmp_path / "capture.fifo"
    os.mkfifo(fifo)
    alsa = tmp_path / "asound.conf"
    alsa.write_text(f'<{ALSA_CONF}>\npcm.stalltest {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
                    f'  infile "{fifo}"\n  format "raw"\n}}\n')
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "audio": {"source": "microphone", "device": "stalltest", "sample_rate": RATE, "stall_timeout_s": 2.0},
        "mqtt": {"enabled": False}, "stdout": True, "health_interval_s": 1,
    }))
    microphone = FifoMicrophone(fifo)
    address = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(address)
    notify.settimeout(0.2)
    env = {**os.environ, "ALSA_CONFIG_PATH": str(alsa), "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen([sys.executable, "-m", "detector.cli", "run", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    health: list[dict] = []
    pings: list[float] = []

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            message = json.loads(line)
            if message["topic"].endswith("/health"):
                health.append(message["payload"])

    def read_notify() -> None:
        while process.poll() is None:
            try:
                if notify.recv(1024).decode() == "WATCHDOG=1":
                    pings.append(time.monotonic())
            except (TimeoutError, OSError):
                continue

    threads = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_notify, daemon=True)]
    for thread in threads:
        thread.start()

    def wait_until(condition: Callable[[], bool], timeout_s: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if condition():
                return True
            time.sleep(0.1)
        return False

    try:
        assert wait_until(lambda: any(h["windows_processed"] >= 3 for h in health)), "no audio through the FIFO"
        microphone.writing.clear()  # the microphone goes silent: no error, no frames
        stalled_at = time.monotonic()
        assert wait_until(lambda: any(h["audio_source"].startswith("fault: no audio frames") for h in health), 20)
        fault = next(h for h in health if h["audio_source"].startswith("fault: no audio frames"))
        assert fault["audio_faults"] >= 1 and fault["seconds_since_last_audio"] >= 2.0
        reported_at = time.monotonic()
        time.sleep(5.0)
        silent_pings = [t for t in pings if t > reported_at + 1.0]
        assert not silent_pings, "the worker is stuck in the blocked device yet still pings the watchdog"
        assert pings and pings[-1] < reported_at + 1.0 and reported_at - stalled_at < 20
        before = max(h["windows_processed"] for h in health)
        microphone.writing.set()  # audio flows again: the blocked read returns, the stream is reopened
        assert wait_until(lambda: health[-1]["audio_source"] == "ok" and health[-1]["windows_processed"] > before + 3,
                          30), f"capture did not resume: {health[-1]}"
        assert wait_until(lambda: len([t for t in pings if t > reported_at + 6.0]) >= 2, 10)
    finally:
        process.kill()
        process.wait(timeout=30)
        microphone.close()
        notify.close()
