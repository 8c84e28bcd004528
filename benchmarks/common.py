"""What the benchmarks share: the machine's description, one-core pinning, statistics, scenes, /proc figures."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import soundfile as sf

from detector.sources import SEGMENT_QUIET_TAIL_S
from detector.synth import SceneEvent, generate_scene
from detector.windows import WindowSpec, cut_windows

SAMPLE_RATE = 16000
RESULTS_DIR = Path(__file__).parent / "results"


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                if line.startswith("model name")), "") if cpuinfo.exists() else ""
    return (f"{cpu or platform.processor()}, {os.cpu_count()} cores, {platform.machine()}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}")


def pin_to_one_core(core: int) -> None:
    """Run this process (and the threads it starts later) on one core: 'per core' figures mean one."""
    os.sched_setaffinity(0, {core})


def summary_ms(values_ms: list[float] | np.ndarray) -> dict[str, float]:
    values = np.asarray(values_ms, dtype=np.float64)
    return {"median_ms": round(float(np.median(values)), 3), "p95_ms": round(float(np.percentile(values, 95)), 3),
            "n": len(values)}


def scene_windows(count: int, seed: int = 0) -> np.ndarray:
    """`count` 2 s windows at a 1 s hop of a generated street scene with sirens (the same in every run)."""
    audio, _ = generate_scene(count + 2.0, np.random.default_rng(seed), SAMPLE_RATE)
    windows, _ = cut_windows(audio, WindowSpec.from_seconds(SAMPLE_RATE, 2.0, 1.0))
    return windows[:count]


def write_scene(path: Path, duration_s: float, seed: int, siren_times: list[tuple[float, float]] | None = None,
                segment_s: float = 300.0) -> list[SceneEvent]:
    """A generated scene as a 16-bit WAV, made `segment_s` at a time; returns its sirens (absolute times)."""
    rng = np.random.default_rng(seed)
    truth: list[SceneEvent] = []
    with sf.SoundFile(path, "w", SAMPLE_RATE, 1, "PCM_16") as out:
        done = 0.0
        while done < duration_s:
            length = min(segment_s, duration_s - done)
            times = None if siren_times is None else [
                (s - done, e - done) for s, e in siren_times if done <= s and e <= done + length]
            tail_s = 0.0 if siren_times is not None else min(SEGMENT_QUIET_TAIL_S, length / 4)
            audio, events = generate_scene(length, rng, SAMPLE_RATE, siren_times=times, quiet_tail_s=tail_s)
            out.write(audio)
            truth += [SceneEvent(e.kind, e.start_s + done, e.end_s + done) for e in events]
            done += length
    return truth


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory now and its peak, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = round(int(rest.split()[0]) / 1024, 1)
    return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}
