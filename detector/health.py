"""Figures for the health topic: is audio arriving, is the worker keeping up, is the broker reachable."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detector import __version__

LATENCY_SAMPLE = 1000  # inference times kept for the percentiles


@dataclass
class HealthMonitor:
    """Mutable counters the worker updates; `figures` is the health payload."""

    started: float = field(default_factory=time.monotonic)
    windows_processed: int = 0
    dropped_windows: int = 0
    audio_faults: int = 0
    source_status: str = "starting"
    input_level_dbfs: float | None = None
    last_audio_time: float | None = None  # monotonic
    inference_ms: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLE))

    def window_done(self, window: np.ndarray, inference_ms: float) -> None:
        self.windows_processed += 1
        self.inference_ms.append(inference_ms)
        rms = float(np.sqrt(np.mean(np.square(window, dtype=np.float64))))
        self.input_level_dbfs = round(20.0 * np.log10(max(rms, 1e-10)), 1)

    def audio_arrived(self) -> None:
        self.last_audio_time = time.monotonic()
        self.source_status = "ok"

    def figures(self, input_overflows: int, queued_events: int, broker: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        times = np.array(self.inference_ms) if self.inference_ms else None
        return {
            "uptime_s": round(now - self.started, 1),
            "windows_processed": self.windows_processed,
            "input_overflows": input_overflows,
            "dropped_windows": self.dropped_windows,
            "inference_ms": {
                "p50": None if times is None else round(float(np.percentile(times, 50)), 3),
                "p95": None if times is None else round(float(np.percentile(times, 95)), 3),
            },
            "input_level_dbfs": self.input_level_dbfs,
            "queued_events": queued_events,
            "seconds_since_last_audio": None if self.last_audio_time is None
            else round(now - self.last_audio_time, 1),
            "audio_source": self.source_status,
            "audio_faults": self.audio_faults,
            "broker": broker,
            "version": __version__,
        }
