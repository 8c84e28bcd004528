"""Reading audio files of any format, rate and channel count into 16 kHz-style mono float32."""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from detector.errors import AudioError
from detector.resample import resample_polyphase


@dataclass(frozen=True)
class Audio:
    """Mono float32 samples at `sample_rate`, plus what the file originally was."""

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    source_channels: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) from one integer rate to another."""
    if source_rate == target_rate:
        return samples.astype(np.float32, copy=False)
    divisor = gcd(source_rate, target_rate)
    resampled = resample_polyphase(samples, target_rate // divisor, source_rate // divisor)
    return resampled.astype(np.float32)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels: a street microphone's channels hear the same scene."""
    if samples.ndim == 1:
        return samples
    if samples.shape[1] == 1:
        return samples[:, 0]
    return samples.mean(axis=1)


def unreadable(path: Path, error: Exception) -> AudioError:
    """The one-line error for a file libsndfile cannot decode."""
    reason = str(error).splitlines()[0] if str(error) else type(error).__name__
    return AudioError(f"{path}: not a readable audio file ({reason})")


def open_audio_file(path: Path) -> sf.SoundFile:
    """An open soundfile handle, or AudioError naming the file: missing, a directory, unreadable, empty."""
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise unreadable(path, error) from None
    if handle.frames == 0:
        handle.close()
        raise AudioError(f"{path}: the file holds no audio samples")
    return handle


def read_audio(path: str | Path, target_rate: int, max_duration_s: float | None = None) -> Audio:
    """Decode a WAV/FLAC/OGG file to mono float32 at `target_rate`, or raise AudioError naming the file."""
    path = Path(path)
    with open_audio_file(path) as handle:
        duration_s = handle.frames / handle.samplerate
        if max_duration_s is not None and duration_s > max_duration_s:
            raise AudioError(f"{path}: {duration_s:.0f} s of audio is longer than the limit of {max_duration_s:.0f} s")
        try:
            samples = handle.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
            raise unreadable(path, error) from None
        source_rate = handle.samplerate
    if samples.shape[0] == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{path}: the audio holds NaN or infinite samples")
    mono = to_mono(samples)
    return Audio(
        samples=resample(mono, int(source_rate), target_rate),
        sample_rate=target_rate,
        source_rate=int(source_rate),
        source_channels=int(samples.shape[1]),
    )
