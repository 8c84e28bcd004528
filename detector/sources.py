"""Audio sources for the daemon: microphone, file replay and a generated street scene.

Every source delivers `Chunk`s of mono float32 at the model's rate, each stamped with its position in the
stream (the audio time every window and event carries) and the wall-clock time of its first sample, the
one place where wall-clock time enters. Replay as fast as possible therefore gives the same events as real
time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf

from detector.audio import open_audio_file, to_mono
from detector.config import AudioConfig, SyntheticConfig
from detector.errors import AudioError
from detector.resample import StreamResampler
from detector.ringbuffer import RingBuffer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Chunk:
    start: int  # stream index of the first sample, at the model's rate
    samples: np.ndarray
    wall_time: float  # time.time() of the first sample


SEGMENT_QUIET_TAIL_S = 8.0  # with random sirens starting >= 2 s into a segment: >= 10 s between sirens


class EndOfAudio(Exception):
    """A file or a finite synthetic scene has been delivered completely."""


class SourceFault(Exception):
    """The audio device failed or stopped delivering frames; the daemon reopens it."""


class Source(Protocol):
    overflows: int  # input overflows the device reported plus ring-buffer overruns (incidents, not frames)

    def open(self) -> None: ...

    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk, None if nothing arrived within `timeout_s`; EndOfAudio or SourceFault otherwise."""

    def close(self) -> None: ...


class _Pacer:
    """Releases generated or replayed audio no faster than real time when `realtime` is set."""

    def __init__(self, sample_rate: int, realtime: bool) -> None:
        self.sample_rate = sample_rate
        self.realtime = realtime
        self.origin = time.time()

    def wait(self, end_index: int, timeout_s: float) -> bool:
        """True once the audio up to `end_index` may be released; False if that is beyond `timeout_s`."""
        if not self.realtime:
            return True
        delay = self.origin + end_index / self.sample_rate - time.time()
        if delay > timeout_s:
            time.sleep(max(timeout_s, 0.0))
            return False
        if delay > 0:
            time.sleep(delay)
        return True


class FileSource:
    """Replays an audio file block by block (mixed down, resampled), in real time or as fast as possible."""

    def __init__(self, path: Path, sample_rate: int, block_s: float, realtime: bool) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.block_s = block_s
        self.realtime = realtime
        self.overflows = 0
        self._file: sf.SoundFile | None = None
        self._resampler: StreamResampler | None = None
        self._position = 0
        self._pacer = _Pacer(sample_rate, realtime)
        self._pending: np.ndarray | None = None
        self._finished = False

    def open(self) -> None:
        self._file = open_audio_file(self.path)
        self._resampler = StreamResampler(self._file.samplerate, self.sample_rate)
        self._pacer = _Pacer(self.sample_rate, self.realtime)

    def _next_samples(self) -> np.ndarray:
        assert self._file is not None and self._resampler is not None
        if self._finished:
            raise EndOfAudio
        try:
            frames = self._file.read(max(1, round(self.block_s * self._file.samplerate)), dtype="float32",
                                     always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioError(f"{self.path}: the file is damaged after {self._position / self.sample_rate:.1f} s "
                             f"({error})") from None
        if len(frames) == 0:
            self._finished = True
            return self._resampler.flush()
        mono = to_mono(frames)
        if not np.all(np.isfinite(mono)):
            raise AudioError(f"{self.path}: the audio holds NaN or infinite samples "
                             f"near {self._position / self.sample_rate:.1f} s")
        return self._resampler.push(mono)

    def read(self, timeout_s: float) -> Chunk | None:
        if self._pending is None:
            self._pending = self._next_samples()
        samples = self._pending
        if not self._pacer.wait(self._position + len(samples), timeout_s):
            return None
        self._pending = None
        chunk = Chunk(self._position, samples, self._pacer.origin + self._position / self.sample_rate)
        self._position += len(samples)
        return chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class SyntheticSource:
    """A generated street scene (traffic, wind, sirens at seeded random times), finite or endless.

    It is generated `segment_s` at a time, so a day-long scene never sits in memory whole; with
    `unique_segments` it replays that many distinct segments in a seeded random order (cheap soak tests).
    """

    def __init__(self, config: SyntheticConfig, sample_rate: int, block_s: float, realtime: bool) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.block = max(1, round(block_s * sample_rate))
        self.overflows = 0
        self.truth: list[Any] = []  # synth.SceneEvents generated so far, in audio time
        self._rng = np.random.default_rng(config.seed)
        self._segment = np.zeros(0, dtype=np.float32)
        self._pool: list[tuple[np.ndarray, list[Any]]] = []  # distinct segments, when unique_segments is set
        self._segment_start = 0
        self._position = 0
        self._pacer = _Pacer(sample_rate, realtime)
        self._realtime = realtime

    def open(self) -> None:
        self._pacer = _Pacer(self.sample_rate, self._realtime)

    def _generate_segment(self) -> None:
        """The next `segment_s` of scene (shorter at the end of a finite one), new or replayed from the pool."""
        from detector.synth import SceneEvent, generate_scene  # scipy.signal: only for the generated scene

        config = self.config
        elapsed_s = self._segment_start / self.sample_rate
        if config.duration_s is not None and elapsed_s >= config.duration_s - 1e-9:
            raise EndOfAudio
        length_s = config.segment_s if config.duration_s is None else min(config.segment_s,
                                                                          config.duration_s - elapsed_s)
        pooled = config.unique_segments is not None and abs(length_s - config.segment_s) < 1e-9
        if pooled and len(self._pool) >= (config.unique_segments or 0):
            audio, events = self._pool[int(self._rng.integers(len(self._pool)))]
        else:
            audio, events = generate_scene(length_s, self._rng, self.sample_rate,
                                           siren_times=None if config.sirens else [], quiet_tail_s=SEGMENT_QUIET_TAIL_S)
            if pooled:
                self._pool.append((audio, events))
        self.truth.extend(SceneEvent(e.kind, e.start_s + elapsed_s, e.end_s + elapsed_s) for e in events)
        self._segment = audio

    def read(self, timeout_s: float) -> Chunk | None:
        if self._position >= self._segment_start + len(self._segment):
            self._segment_start = self._position
            self._generate_segment()
        end = min(self._position + self.block, self._segment_start + len(self._segment))
        if not self._pacer.wait(end, timeout_s):
            return None
        offset = self._position - self._segment_start
        samples = self._segment[offset : offset + end - self._position]
        chunk = Chunk(self._position, samples, self._pacer.origin + self._position / self.sample_rate)
        self._position = end
        return chunk

    def close(self) -> None:
        """Nothing to release: the scene lives in memory."""


class MicrophoneSource:
    """A sounddevice InputStream whose callback only copies frames into the ring buffer.

    The worker mixes down and resamples. A device that errors or stops delivering frames for
    `stall_timeout_s` (PortAudio often says nothing when a USB microphone is unplugged) raises SourceFault;
    after `open` again, the stream position continues by the wall time that passed, so audio time stays
    close to wall time.
    """

    def __init__(self, config: AudioConfig, sample_rate: int) -> None:
        self.config = config
        self.sample_rate = sample_rate
        self.overflows = 0
        self._stream: Any = None
        self._buffer: RingBuffer | None = None
        self._resampler: StreamResampler | None = None
        self._position = 0
        self._last_frame_time = 0.0
        self._closed_at: float | None = None
        self._callback_overflows = 0
        self._device_rate = sample_rate

    def open(self) -> None:
        import sounddevice

        device = self.config.device
        try:
            rate = self.config.sample_rate or self._rate_for(sounddevice, device)
            self._buffer = RingBuffer(round(self.config.buffer_s * rate), self.config.channels)
            self._resampler = StreamResampler(rate, self.sample_rate)
            self._device_rate = rate
            self._stream = sounddevice.InputStream(
                device=device, samplerate=rate, channels=self.config.channels, dtype="float32",
                blocksize=max(1, round(self.config.block_s * rate)), callback=self._callback)
            self._stream.start()
        except (sounddevice.PortAudioError, ValueError) as error:
            self._stream = None
            raise SourceFault(f"cannot open input device {device!r}: {error}") from None
        if self._closed_at is not None:
            self._position += round((time.time() - self._closed_at) * self.sample_rate)
            self._closed_at = None
        self._last_frame_time = time.time()
        log.info("microphone open: %s at %d Hz, %d channel(s)", self._stream.device, rate, self.config.channels)

    def _rate_for(self, sounddevice: Any, device: str | int | None) -> int:
        """The model's rate if the device accepts it (no resampling needed), else the device's default."""
        try:
            sounddevice.check_input_settings(device=device, samplerate=self.sample_rate,
                                             channels=self.config.channels, dtype="float32")
            return self.sample_rate
        except (sounddevice.PortAudioError, ValueError):
            return int(sounddevice.query_devices(device, "input")["default_samplerate"])

    def _callback(self, indata: np.ndarray, _frames: int, _time: Any, status: Any) -> None:
        if status.input_overflow:
            self._callback_overflows += 1
        assert self._buffer is not None
        self._buffer.write(indata)

    def read(self, timeout_s: float) -> Chunk | None:
        assert self._buffer is not None and self._resampler is not None
        if self._stream is None or not self._stream.active:
            raise SourceFault("the input stream stopped")
        frames, dropped = self._buffer.read(timeout_s)
        now = time.time()
        self.overflows = self._callback_overflows + self._buffer.overruns
        if dropped:  # the worker fell behind: skip the lost audio so the daemon sees a gap, not a splice
            self._position += round(dropped * self.sample_rate / self._device_rate)
            self._resampler = StreamResampler(self._device_rate, self.sample_rate)
        if len(frames) == 0:
            if now - self._last_frame_time > self.config.stall_timeout_s:
                raise SourceFault(f"no audio frames for {now - self._last_frame_time:.1f} s")
            return None
        self._last_frame_time = now
        mono = np.nan_to_num(to_mono(frames), nan=0.0, posinf=1.0, neginf=-1.0)
        samples = self._resampler.push(mono)
        chunk = Chunk(self._position, samples, now - len(samples) / self.sample_rate)
        self._position += len(samples)
        return chunk

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception as error:  # a vanished device may fail in any way on close; it is gone either way
                log.warning("closing the input stream: %s", error)
            self._stream = None
        self._closed_at = time.time()


def make_source(config: AudioConfig, sample_rate: int) -> FileSource | SyntheticSource | MicrophoneSource:
    if config.source == "file":
        assert config.file is not None
        return FileSource(config.file, sample_rate, config.block_s, config.realtime)
    if config.source == "synthetic":
        return SyntheticSource(config.synthetic, sample_rate, config.block_s, config.realtime)
    return MicrophoneSource(config, sample_rate)
