"""Cutting audio into fixed analysis windows, identically for whole files and for streams.

A window is identified by the sample index where it starts, counted from the beginning of the source:
that index is the audio time every score and event carries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowSpec:
    """Window and hop lengths in samples at `sample_rate`."""

    sample_rate: int
    window: int
    hop: int

    @classmethod
    def from_seconds(cls, sample_rate: int, window_s: float, hop_s: float) -> WindowSpec:
        return cls(sample_rate, round(window_s * sample_rate), round(hop_s * sample_rate))


def window_starts(n_samples: int, spec: WindowSpec) -> list[int]:
    """Start indices of the complete windows in `n_samples`; one (zero-padded) window if shorter."""
    if n_samples <= spec.window:
        return [0]
    return list(range(0, n_samples - spec.window + 1, spec.hop))


def window_view(samples: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """All windows of a clip as a (count, window) read-only view of `samples` (no copy: a day of audio is
    11 GB as windows), and their start indices; a clip shorter than a window is zero-padded to one."""
    starts = window_starts(len(samples), spec)
    if len(samples) < spec.window:
        padded = np.zeros(spec.window, dtype=np.float32)
        padded[: len(samples)] = samples
        return padded[None, :], np.array(starts)
    return np.lib.stride_tricks.sliding_window_view(samples, spec.window)[:: spec.hop], np.array(starts)


def cut_windows(samples: np.ndarray, spec: WindowSpec) -> tuple[np.ndarray, np.ndarray]:
    """All windows of a clip as a (count, window) float32 array, and their start indices."""
    windows, starts = window_view(samples, spec)
    return np.ascontiguousarray(windows, dtype=np.float32), starts


class StreamWindower:
    """Turns chunks of any size into the same windows `cut_windows` gives for the whole stream.

    `start` is the stream index of the first sample pushed (a stream resumed after a gap starts later).
    """

    def __init__(self, spec: WindowSpec, start: int = 0) -> None:
        self.spec = spec
        self._buffer = np.zeros(0, dtype=np.float32)
        self._buffer_start = start  # stream index of self._buffer[0]
        self._next_start = start

    def push(self, chunk: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
        """Add samples; yield (start index, window) for every window now complete."""
        self._buffer = np.concatenate([self._buffer, chunk.astype(np.float32, copy=False)])
        while self._next_start + self.spec.window <= self._buffer_start + len(self._buffer):
            offset = self._next_start - self._buffer_start
            yield self._next_start, self._buffer[offset : offset + self.spec.window].copy()
            self._next_start += self.spec.hop
        drop = self._next_start - self._buffer_start
        if drop > 0:
            self._buffer = self._buffer[drop:]
            self._buffer_start += drop
