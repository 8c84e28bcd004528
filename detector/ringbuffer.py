"""The ring buffer between the audio callback and the worker.

The callback only copies frames in (never blocks, never allocates); the worker takes everything that has
arrived. When the worker falls behind by more than the capacity, the oldest frames are overwritten: fresh
audio matters more than old audio to a detector, and the loss is counted for the health topic.
"""

from __future__ import annotations

import threading

import numpy as np


class RingBuffer:
    def __init__(self, capacity_frames: int, channels: int) -> None:
        self._data = np.zeros((capacity_frames, channels), dtype=np.float32)
        self._capacity = capacity_frames
        self._written = 0  # frames ever written
        self._read = 0  # frames ever read or dropped
        self.dropped_frames = 0
        self.overruns = 0  # times the writer caught up with the reader
        self._dropped_unread = 0  # frames dropped since the last read
        self._lock = threading.Lock()
        self._arrived = threading.Event()

    def write(self, frames: np.ndarray) -> None:
        """Copy frames in; called from the audio callback."""
        count = len(frames)
        if count > self._capacity:
            frames = frames[-self._capacity :]
            count = self._capacity
        with self._lock:
            position = self._written % self._capacity
            first = min(count, self._capacity - position)
            self._data[position : position + first] = frames[:first]
            self._data[: count - first] = frames[first:]
            self._written += count
            overrun = self._written - self._read - self._capacity
            if overrun > 0:
                self._read += overrun
                self.dropped_frames += overrun
                self._dropped_unread += overrun
                self.overruns += 1
        self._arrived.set()

    def read(self, timeout_s: float) -> tuple[np.ndarray, int]:
        """Every frame not yet read (possibly none after `timeout_s`), oldest first, and how many frames were
        overwritten unread just before them."""
        self._arrived.wait(timeout_s)
        with self._lock:
            self._arrived.clear()
            count = self._written - self._read
            start = self._read % self._capacity
            indices = (start + np.arange(count)) % self._capacity
            frames = self._data[indices]
            self._read = self._written
            dropped, self._dropped_unread = self._dropped_unread, 0
        return frames, dropped
