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
    model_ms: dict[str, deque[float]] = field(default_factory=dict)  # per model: its features + inference
    yamnet_vetoes: int = 0  # siren onsets YAMNet did not confirm

    def window_done(self, window: np.ndarray, inference_ms: float, model_ms: dict[str, float] | None = None,
                    vetoed: bool = False) -> None:
        """`inference_ms`: the whole window (every model); `model_ms`: each model's share."""
        self.windows_processed += 1
        self.inference_ms.append(inference_ms)
        for name, ms in (model_ms or {}).items():
            self.model_ms.setdefault(name, deque(maxlen=LATENCY_SAMPLE)).append(ms)
        self.yamnet_vetoes += vetoed
        rms = float(np.sqrt(np.dot(window, window) / max(len(window), 1)))
        self.input_level_dbfs = round(20.0 * np.log10(max(rms, 1e-10)), 1)

    def audio_arrived(self) -> None:
        self.last_audio_time = time.monotonic()
        self.source_status = "ok"

    def figures(self, input_overflows: int, queued_events: int, broker: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "uptime_s": round(now - self.started, 1),
            "windows_processed": self.windows_processed,
            "input_overflows": input_overflows,
            "dropped_windows": self.dropped_windows,
            "inference_ms": _percentiles(self.inference_ms),
            "model_inference_ms": {name: _percentiles(times) for name, times in self.model_ms.items()},
            "yamnet_vetoes": self.yamnet_vetoes,
            "input_level_dbfs": self.input_level_dbfs,
            "queued_events": queued_events,
            "seconds_since_last_audio": None if self.last_audio_time is None
            else round(now - self.last_audio_time, 1),
            "audio_source": self.source_status,
            "audio_faults": self.audio_faults,
            "broker": broker,
            "version": __version__,
        }


def _percentiles(times_ms: deque[float]) -> dict[str, float | None]:
    values = np.array(times_ms) if times_ms else None
    return {"p50": None if values is None else round(float(np.percentile(values, 50)), 3),
            "p95": None if values is None else round(float(np.percentile(values, 95)), 3)}
