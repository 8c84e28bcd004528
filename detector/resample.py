"""Polyphase resampling, whole signals and streams, with numpy alone.

It computes exactly what scipy.signal.resample_poly computes (the same Kaiser-windowed sinc filter and
output alignment; the tests compare the two), because importing scipy.signal costs the Pi about 75 MB of
resident memory and a second of start-up. A microphone that only offers 44.1 or 48 kHz is read in blocks
of any size; each block is resampled with enough history and lookahead that the filter never sees a block
edge, so streamed and whole-file audio give the model the same windows.
"""

from __future__ import annotations

from functools import lru_cache
from math import ceil, gcd

import numpy as np

FILTER_HALF_WIDTH = 10  # resample_poly's filter: 10 zero crossings of the sinc on each side, per phase
KAISER_BETA = 5.0
OUTPUTS_PER_BLOCK = 32768  # bounds the gather matrix for long signals


@lru_cache(maxsize=8)
def _polyphase_filter(up: int, down: int) -> tuple[np.ndarray, int]:
    """The filter split into `up` phases (rows), and how many leading outputs to drop for alignment."""
    max_rate = max(up, down)
    half_len = FILTER_HALF_WIDTH * max_rate
    taps = np.arange(2 * half_len + 1) - half_len
    cutoff = 1.0 / max_rate
    h = cutoff * np.sinc(cutoff * taps) * np.kaiser(2 * half_len + 1, KAISER_BETA)
    h = h / h.sum() * up
    pre_pad = down - half_len % down
    h = np.concatenate([np.zeros(pre_pad), h])
    per_phase = ceil(len(h) / up)
    h = np.concatenate([h, np.zeros(per_phase * up - len(h))])
    return h.reshape(per_phase, up).T.copy(), (half_len + pre_pad) // down


def resample_polyphase(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """`x` (1-D) resampled by up/down (coprime), as scipy.signal.resample_poly(x, up, down) gives it."""
    phases, skip = _polyphase_filter(up, down)
    per_phase = phases.shape[1]
    n_out = len(x) * up // down + bool(len(x) * up % down)
    padded = np.concatenate([np.zeros(per_phase - 1), np.asarray(x, dtype=np.float64), np.zeros(per_phase)])
    out = np.empty(n_out, dtype=np.float64)
    back = np.arange(per_phase)
    for first in range(0, n_out, OUTPUTS_PER_BLOCK):
        t = (np.arange(first, min(first + OUTPUTS_PER_BLOCK, n_out)) + skip) * down  # upsampled-domain positions
        newest = t // up  # the newest input sample each output reaches
        gathered = padded[np.clip(newest[:, None] - back[None, :] + per_phase - 1, 0, len(padded) - 1)]
        out[first : first + len(t)] = np.einsum("ij,ij->i", phases[t % up], gathered)
    return out


class StreamResampler:
    """Converts a stream from `source_rate` to `target_rate`, sample for sample as `resample_polyphase`."""

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
        resampled = resample_polyphase(self._buffer, self.up, self.down)
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
