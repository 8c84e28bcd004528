"""The one feature implementation shared by training and the daemon (numpy only: scipy.signal and
scipy.fft would cost the Pi tens of MB of resident memory).

A model card carries a `FeatureRecipe`; the runtime rebuilds it from the card, so the model sees in the
field exactly the numbers it saw in training. Features are computed per window, so the same 2 s of audio
gives the same features whether it came from a file or from a stream in pieces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from functools import lru_cache
from typing import Any, Literal, get_args

import numpy as np

from detector.errors import ModelError

FeatureKind = Literal["waveform", "logspec", "logmel", "mfcc", "pcen", "logmel_pcen"]
KINDS = get_args(FeatureKind)
Standardise = Literal["none", "window", "band", "global"]


@dataclass(frozen=True)
class FeatureRecipe:
    """Everything needed to turn a window of samples into the model's input matrix (frames x bins).

    `waveform` passes the samples through as one column (for raw-waveform models); `logspec` is the seed
    recipe (log power spectrogram, 20 ms frames at a 10 ms hop); `logmel` maps the power spectrum
    onto `n_mels` triangular mel bands; `mfcc` takes the DCT-II of the log-mel bands; `pcen` replaces the
    log of the mel bands by per-channel energy normalisation (Wang et al. 2017): each band divided by its own
    energy smoothed over `pcen_time_constant` seconds to the power `pcen_gain`, then root-compressed,
    `(E / (floor + M) ** gain + bias) ** power - bias ** power`, `floor` being `log_floor`. A steady
    background (traffic rumble, wind, hum) sinks to a constant while what changes within a fraction of a
    second stands out. The smoother starts from each window's first frame, so a window's features depend
    on that window alone. `logmel_pcen` stacks the two, log-mel bands then PCEN bands (2 x `n_mels` bins):
    what one graph averaging a log-mel network with a PCEN network reads. Its log-mel half is standardised
    as `standardise` says, its PCEN half always per window (as every PCEN network here is trained).
    `standardise`: `window` scales each window to zero mean and unit variance; `band` first removes each
    band's mean over the window's frames (what stays put for 2 s: a steady hum, the microphone's colouring,
    the gain), then scales to unit variance; `global` subtracts the training set's `mean` and divides by
    its `std` (both stored here); `none` leaves the logs as they are.
    """

    kind: FeatureKind = "logmel"
    sample_rate: int = 16000
    frame_length: int = 400
    hop_length: int = 160
    n_fft: int = 512
    n_mels: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    n_mfcc: int = 40
    log_floor: float = 1e-6
    pcen_time_constant: float = 0.4
    pcen_gain: float = 0.98
    pcen_bias: float = 2.0
    pcen_power: float = 0.5
    standardise: Standardise = "global"
    mean: float = 0.0
    std: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ModelError(f"feature recipe: unknown kind {self.kind!r}")
        if self.standardise not in get_args(Standardise):
            raise ModelError(f"feature recipe: unknown standardise {self.standardise!r}")
        if not 0 < self.frame_length <= self.n_fft:
            raise ModelError("feature recipe: frame_length must be positive and at most n_fft")
        if self.hop_length <= 0 or self.std <= 0:
            raise ModelError("feature recipe: hop_length and std must be positive")
        if self.kind not in ("waveform", "logspec") and not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ModelError("feature recipe: need 0 <= fmin < fmax <= sample_rate / 2")
        if self.kind in ("pcen", "logmel_pcen") and not (self.pcen_time_constant > 0 and 0 <= self.pcen_gain <= 1
                                        and self.pcen_bias > 0 and 0 < self.pcen_power <= 1):
            raise ModelError("feature recipe: pcen needs time_constant > 0, 0 <= gain <= 1, bias > 0 and "
                             "0 < power <= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FeatureRecipe:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ModelError(f"feature recipe: unknown keys {', '.join(unknown)}")
        return cls(**values)

    def n_frames(self, window_samples: int) -> int:
        if self.kind == "waveform":
            return window_samples
        return 1 + (window_samples - self.frame_length) // self.hop_length

    @property
    def n_bins(self) -> int:
        return {"waveform": 1, "logspec": self.n_fft // 2 + 1, "logmel": self.n_mels, "mfcc": self.n_mfcc,
                "pcen": self.n_mels, "logmel_pcen": 2 * self.n_mels}[self.kind]

    def shape(self, window_samples: int) -> tuple[int, int]:
        """(frames, bins) of the matrix one window gives."""
        return self.n_frames(window_samples), self.n_bins


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(hz) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(mel) / 2595.0) - 1.0)


@lru_cache(maxsize=16)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """(n_fft//2+1, n_mels) triangular filters equally spaced on the HTK mel scale, peak 1."""
    bin_hz = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    lower, centre, upper = edges_hz[:-2], edges_hz[1:-1], edges_hz[2:]
    rising = (bin_hz[:, None] - lower) / (centre - lower)
    falling = (upper - bin_hz[:, None]) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank.setflags(write=False)
    return bank.astype(np.float32)


@lru_cache(maxsize=16)
def _analysis_window(frame_length: int) -> np.ndarray:
    # periodic Hann (scipy's get_window("hann", n, fftbins=True)): frames tile without a repeated sample
    window = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame_length) / frame_length)).astype(np.float32)
    window.setflags(write=False)
    return window


@lru_cache(maxsize=16)
def _dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The first `n_out` orthonormal DCT-II basis vectors as columns (scipy.fft.dct(type=2, norm="ortho"))."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    matrix = np.sqrt(2.0 / n_in) * np.cos(np.pi * (2 * n + 1) * k / (2 * n_in))
    matrix[:, 0] /= np.sqrt(2.0)
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def power_spectrogram(windows: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """(..., frames, n_fft//2+1) power spectra of Hann-windowed frames, normalised by the frame energy."""
    frames = np.lib.stride_tricks.sliding_window_view(windows, recipe.frame_length, axis=-1)
    frames = frames[..., :: recipe.hop_length, :] * _analysis_window(recipe.frame_length)
    spectrum = np.fft.rfft(frames, n=recipe.n_fft, axis=-1)
    power = spectrum.real**2 + spectrum.imag**2
    return (power / np.sum(_analysis_window(recipe.frame_length) ** 2)).astype(np.float32)


@lru_cache(maxsize=16)
def _smoothing_matrix(frames: int, weight: float) -> np.ndarray:
    """(frames, frames): `matrix @ energy` is the one-pole low-pass M[t] = (1 - w) M[t-1] + w E[t] with
    M[0] = E[0], unrolled (M[t] = (1 - w)^t E[0] + sum over 0 < j <= t of w (1 - w)^(t - j) E[j]): one matrix
    product instead of a loop over frames."""
    t = np.arange(frames)
    lag = t[:, None] - t[None, :]
    matrix = np.where(lag >= 0, weight * (1.0 - weight) ** np.maximum(lag, 0), 0.0)
    matrix[:, 0] = (1.0 - weight) ** t
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)
    return matrix


def pcen(mel_power: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """Per-channel energy normalisation of (..., frames, bands) mel power (see `FeatureRecipe`)."""
    frame_s = recipe.hop_length / recipe.sample_rate
    weight = float(1.0 - np.exp(-frame_s / recipe.pcen_time_constant))
    smoothed = _smoothing_matrix(mel_power.shape[-2], weight) @ mel_power
    normalised = mel_power / (recipe.log_floor + smoothed) ** recipe.pcen_gain
    return (normalised + recipe.pcen_bias) ** recipe.pcen_power - recipe.pcen_bias**recipe.pcen_power


def compute_features(windows: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """Features of one window (samples,) -> (frames, bins), or of a batch (n, samples) -> (n, frames, bins)."""
    windows = np.asarray(windows, dtype=np.float32)
    if recipe.kind == "waveform":
        return windows[..., None].copy()
    power = power_spectrogram(windows, recipe)
    if recipe.kind == "logspec":
        return _standardised(np.log(power + recipe.log_floor), recipe)
    mel_power = power @ mel_filterbank(recipe.sample_rate, recipe.n_fft, recipe.n_mels, recipe.fmin, recipe.fmax)
    if recipe.kind == "logmel_pcen":  # each half standardised as its network was trained
        per_window = replace(recipe, standardise="window")
        return np.concatenate([_standardised(np.log(mel_power + recipe.log_floor), recipe),
                               _standardised(pcen(mel_power, recipe), per_window)], axis=-1)
    if recipe.kind == "pcen":
        return _standardised(pcen(mel_power, recipe), recipe)
    values = np.log(mel_power + recipe.log_floor)
    if recipe.kind == "mfcc":
        values = values @ _dct_matrix(recipe.n_mels, recipe.n_mfcc)
    return _standardised(values, recipe)


def _standardised(values: np.ndarray, recipe: FeatureRecipe) -> np.ndarray:
    """`values` (..., frames, bins) standardised as `recipe.standardise` says, as float32."""
    if recipe.standardise == "band":  # each band's level over the window removed: steady hum, mic colouring
        values = values - values.mean(axis=-2, keepdims=True)
        values = values / np.maximum(values.std(axis=(-2, -1), keepdims=True), 1e-3)
    elif recipe.standardise == "window":
        mean = values.mean(axis=(-2, -1), keepdims=True)
        std = values.std(axis=(-2, -1), keepdims=True)
        values = (values - mean) / np.maximum(std, 1e-3)
    elif recipe.standardise == "global":
        values = (values - recipe.mean) / recipe.std
    return values.astype(np.float32)
