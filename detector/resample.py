"""Streaming polyphase resampling: chunks in, the same samples out as resampling the whole stream at once.

A microphone that only offers 44.1 or 48 kHz is read in blocks of any size; each block is resampled with
enough history and lookahead that the filter never sees a block edge, so streamed and whole-file audio
give the model the same windows.
"""

from __future__ import annotations

from math import ceil, gcd

import numpy as np
from scipy.signal import resample_poly

FILTER_HALF_WIDTH = 10  # scipy's resample_poly default: 10 taps per phase on each side


class StreamResampler:
    """Converts a stream from `source_rate` to `target_rate` with scipy's resample_poly filter."""

    def __init__(self, source_rate: int, target_rate: int) -> None:
        divisor = gcd(source_rate, target_rate)
        self.up = target_rate // divisor
        self.down = source_rate // divisor
        self.passthrough = self.up == self.down
        # input samples each output sample's filter reaches on either side, with one to spare
        self._reach = ceil(FILTER_HALF_WIDTH * max(self.up, self.down) / self.up) + 1
        self._buffer = np.zeros(0, dtype=np.float64)
        self._buffer_start = 0  # input index of self._buffer[0]; always a multiple of `down`
        self._received = 0  # input samples so far
        self._emitted = 0  # output samples so far

    def _input_position(self, output_index: int) -> float:
        return output_index * self.down / self.up

    def _resample_from_buffer(self, last_output: int) -> np.ndarray:
        """Outputs self._emitted .. last_output - 1, computed from the buffered input."""
        if last_output <= self._emitted:
            return np.zeros(0, dtype=np.float32)
        resampled = resample_poly(self._buffer, self.up, self.down)
        first = self._emitted - self._buffer_start * self.up // self.down
        out = resampled[first : first + last_output - self._emitted]
        self._emitted += len(out)
        keep_from = max(0, int((self._input_position(self._emitted) - self._reach) // self.down) * self.down)
        if keep_from > self._buffer_start:
            self._buffer = self._buffer[keep_from - self._buffer_start :]
            self._buffer_start = keep_from
        return out.astype(np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Resampled samples that are final now (the filter has seen everything they depend on)."""
        if self.passthrough:
            return chunk.astype(np.float32, copy=False)
        self._buffer = np.concatenate([self._buffer, chunk.astype(np.float64)])
        self._received += len(chunk)
        final_outputs = int(np.floor((self._received - self._reach) * self.up / self.down)) + 1
        return self._resample_from_buffer(max(final_outputs, self._emitted))

    def flush(self) -> np.ndarray:
        """The rest of the stream at its end, padded with silence as resample_poly pads a whole signal."""
        if self.passthrough:
            return np.zeros(0, dtype=np.float32)
        total = ceil(self._received * self.up / self.down)
        return self._resample_from_buffer(total)
