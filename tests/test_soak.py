"""Soak: 24 hours of generated street audio through the whole daemon, as fast as possible, against mosquitto.

Every siren must come out as exactly one start/end pair with its onset within 2.5 s, resident memory may
grow at most 5 MB after warm-up, and no file descriptor may leak. The scene replays 10 distinct
one-minute segments (sirens at seeded random times) in a seeded random order, so generating the audio
does not dominate the run; the daemon sees 24 h of audio time, 86,399 windows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from detector.broker import LocalBroker, find_mosquitto
from detector.config import parse_config
from detector.sources import EndOfAudio, SyntheticSource

HOURS = 24.0
SYNTHETIC = {"duration_s": HOURS * 3600, "seed": 5, "segment_s": 60.0, "unique_segments": 10}


def resident_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def long_lived_fds(pid: int, transient_dir: Path) -> int:
    """Open descriptors, leaving out the spool files being written at that instant."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed while we looked
        count += not target.startswith(str(transient_dir))
    return count


def scene_truth() -> list:
    """The sirens of the same scene, from the same source class the daemon uses."""
    source = SyntheticSource(parse_config({"audio": {"synthetic": SYNTHETIC}}).audio.synthetic, 16000, 60.0, False)
    try:
        while source.read(1.0) is not None:
            pass
    except EndOfAudio:
        pass
    return source.truth


@pytest.mark.slow
def test_a_day_of_audio_gives_one_event_pair_per_siren_without_leaks(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    truth = scene_truth()
    with LocalBroker(embedded=False) as broker:
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({
            "audio": {"source": "synthetic", "realtime": False, "block_s": 1.0, "synthetic": SYNTHETIC},
            "mqtt": {"host": "127.0.0.1", "port": broker.port, "device_id": "soak",
                     "spool_dir": str(tmp_path / "spool")},
            "stdout": True, "log_level": "WARNING", "health_interval_s": 3600,
        }))
        began = time.monotonic()
        daemon = subprocess.Popen([sys.executable, "-m", "detector.cli", "run", "--config", str(config)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert daemon.stdout is not None
        samples: list[tuple[float, int, int]] = []  # (audio hours, resident kB, open fds)
        events = []
        for line in daemon.stdout:
            message = json.loads(line)
            if message["topic"].endswith("/event"):
                events.append(message["payload"])
                hours = message["payload"]["start_offset_s"] / 3600
                if not samples or hours - samples[-1][0] >= 1.0:
                    samples.append((hours, resident_kb(daemon.pid), long_lived_fds(daemon.pid, tmp_path)))
        _out, err = daemon.communicate(timeout=60)
        elapsed = time.monotonic() - began
    assert daemon.returncode == 0, err
    print(f"\nsoak: {HOURS:g} h of audio in {elapsed:.0f} s ({HOURS * 3600 / elapsed:.0f}x real time); "
          f"resident {samples[1][1] / 1024:.1f} MB at {samples[1][0]:.1f} h -> {samples[-1][1] / 1024:.1f} MB at "
          f"{samples[-1][0]:.1f} h; fds {samples[1][2]} -> {samples[-1][2]}; {len(truth)} sirens")
    starts = [e for e in events if e["type"] == "start"]
    ends = [e for e in events if e["type"] == "end"]
    assert len(starts) == len(ends) == len(truth)
    for siren, start, end in zip(truth, starts, ends, strict=True):
        assert abs(start["start_offset_s"] - siren.start_s) <= 2.5, (siren, start)
        assert end["event_id"] == start["event_id"]
    warm = samples[1]  # after the first hour: every distinct segment generated, every code path taken
    assert samples[-1][1] - warm[1] <= 5 * 1024
    assert samples[-1][2] == warm[2]
