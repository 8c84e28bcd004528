"""Augmentation of 2 s training windows: put clean sirens in a street, and give negatives the same channel.

The real sirens are mostly close-up web and surveillance recordings; the microphone at a signal hears
them far away, under traffic and wind, through its own colouring and converter. Every channel effect
(colouring, band limit, gain, noise floor, shift, distance, reverb) is applied to negatives with the same
probabilities as to positives, so the processing itself can never become a siren cue: the SESA sirens'
8-bit hiss at -48 dBFS is the case in point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, sosfilt

from detector import synth
from detector.audio import resample

_EPS = 1e-10


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities (`p_*`) and ranges of the street chain; the defaults are what training uses."""

    snr_db: tuple[float, float] = (-10.0, 20.0)
    p_distance: float = 0.3
    distance_m: tuple[float, float] = (10.0, 300.0)
    p_reverb: float = 0.3
    reverb_wet: tuple[float, float] = (0.1, 0.6)
    p_shift: float = 0.3
    p_extra_background: float = 0.5
    p_colouring: float = 0.5
    p_band_limit: float = 0.5
    p_gain: float = 0.8
    gain_db: tuple[float, float] = (-30.0, 6.0)
    p_noise_floor: float = 0.5
    noise_floor_dbfs: tuple[float, float] = (-70.0, -45.0)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _limit(x: np.ndarray) -> np.ndarray:
    """Float32 with peak <= 1, scaled down rather than clipped (clipping would be a cue of its own)."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x / peak if peak > 1.0 else x).astype(np.float32)


def mix_at_snr(signal: np.ndarray, background: np.ndarray, snr_db: float) -> np.ndarray:
    """`signal` over `background` at an RMS signal-to-noise ratio of `snr_db`.

    The louder of the two keeps its level and the other is scaled to it, so the mix is never much
    quieter than its inputs. A silent input contributes nothing; the result is scaled to peak <= 1.
    """
    s = np.asarray(signal, dtype=np.float64)
    b = np.asarray(background, dtype=np.float64)
    if s.shape != b.shape:
        raise ValueError(f"signal and background differ in shape: {s.shape} vs {b.shape}")
    s_rms, b_rms = _rms(s), _rms(b)
    if s_rms < _EPS or b_rms < _EPS:
        return _limit(s + b)
    ratio = 10.0 ** (snr_db / 20.0)
    mixed = s + b * (s_rms / (ratio * b_rms)) if snr_db >= 0 else b + s * (ratio * b_rms / s_rms)
    return _limit(mixed)


def random_gain(
    x: np.ndarray, rng: np.random.Generator, db_range: tuple[float, float] = (-30.0, 6.0)
) -> np.ndarray:
    """A random level change: microphones, preamps and distances differ. Never clips (see `_limit`)."""
    return _limit(np.asarray(x, dtype=np.float64) * 10.0 ** (rng.uniform(*db_range) / 20.0))


def band_limit(x: np.ndarray, rng: np.random.Generator, sample_rate: int = synth.SAMPLE_RATE) -> np.ndarray:
    """A random pass band (high-pass 50-300 Hz, low-pass 2.5-7.5 kHz), like cheap microphones and codecs."""
    low = rng.uniform(50.0, 300.0)
    high = min(rng.uniform(2500.0, 7500.0), 0.45 * sample_rate)
    sos = butter(int(rng.integers(1, 3)), [low, high], "bandpass", fs=sample_rate, output="sos")
    return _limit(sosfilt(sos, np.asarray(x, dtype=np.float64)))


def _biquad(kind: str, freq: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One RBJ-cookbook section ("low_shelf", "peak" or "high_shelf") as an sos row."""
    a = 10.0 ** (gain_db / 40.0)
    w0 = 2.0 * np.pi * freq / sample_rate
    cos_w, alpha = np.cos(w0), np.sin(w0) / (2.0 * q)
    if kind == "peak":
        b_coef = (1 + alpha * a, -2 * cos_w, 1 - alpha * a)
        a_coef = (1 + alpha / a, -2 * cos_w, 1 - alpha / a)
    else:
        sign = 1.0 if kind == "low_shelf" else -1.0
        root = 2.0 * np.sqrt(a) * alpha
        b_coef = (
            a * ((a + 1) - sign * (a - 1) * cos_w + root),
            sign * 2 * a * ((a - 1) - sign * (a + 1) * cos_w),
            a * ((a + 1) - sign * (a - 1) * cos_w - root),
        )
        a_coef = (
            (a + 1) + sign * (a - 1) * cos_w + root,
            -sign * 2 * ((a - 1) + sign * (a + 1) * cos_w),
            (a + 1) + sign * (a - 1) * cos_w - root,
        )
    return np.concatenate([b_coef, a_coef]) / a_coef[0]


def mic_colouring(
    x: np.ndarray, rng: np.random.Generator, sample_rate: int = synth.SAMPLE_RATE
) -> np.ndarray:
    """A gentle random EQ (low shelf, one peak, high shelf, each within +-6 dB): every microphone and
    housing colours the sound differently."""
    sos = np.stack(
        [
            _biquad("low_shelf", rng.uniform(80.0, 400.0), rng.uniform(-6.0, 6.0), 0.707, sample_rate),
            _biquad(
                "peak", rng.uniform(400.0, 4000.0), rng.uniform(-6.0, 6.0), rng.uniform(0.5, 2.0), sample_rate
            ),
            _biquad(
                "high_shelf",
                min(rng.uniform(2500.0, 6000.0), 0.4 * sample_rate),
                rng.uniform(-6.0, 6.0),
                0.707,
                sample_rate,
            ),
        ]
    )
    return _limit(sosfilt(sos, np.asarray(x, dtype=np.float64)))


def time_shift(
    x: np.ndarray, rng: np.random.Generator, max_fraction: float = 0.5, circular: bool | None = None
) -> np.ndarray:
    """Move the content by up to `max_fraction` of the window, wrapping around or padding with zeros
    (random when `circular` is None), so the model does not expect sounds at one place in the window."""
    x = np.asarray(x)
    limit = int(max_fraction * x.size)
    shift = int(rng.integers(-limit, limit + 1))
    if circular is None:
        circular = bool(rng.uniform() < 0.5)
    if circular or shift == 0:
        return np.roll(x, shift).astype(np.float32)
    out = np.zeros(x.size, dtype=np.float32)
    if shift > 0:
        out[shift:] = x[:-shift]
    else:
        out[:shift] = x[-shift:]
    return out


def speed_change(x: np.ndarray, rng: np.random.Generator, max_semitones: float) -> np.ndarray:
    """Play the window up to `max_semitones` faster or slower, pitch and tempo together as a tape would
    (another engine, fan, dog or siren of the same kind; Salamon and Bello 2017 found pitch shifts the most
    useful augmentation on UrbanSound8K). Cut, or zero-padded at the end, back to the window's length."""
    factor = 2.0 ** (rng.uniform(-max_semitones, max_semitones) / 12.0)
    faster = resample(np.asarray(x, dtype=np.float32), round(1000 * factor), 1000)  # factor > 1: fewer samples
    out = np.zeros(x.size, dtype=np.float32)
    kept = min(x.size, faster.size)
    out[:kept] = faster[:kept]
    return out


def sometimes_speed_change(x: np.ndarray, rng: np.random.Generator, max_semitones: float) -> np.ndarray:
    """`speed_change` for half the windows when `max_semitones` > 0; with 0 nothing is drawn, so the random
    stream (and every window made after this one) is exactly what it was before speed existed."""
    if max_semitones > 0 and rng.uniform() < 0.5:
        return speed_change(x, rng, max_semitones)
    return x


def add_noise_floor(
    x: np.ndarray, rng: np.random.Generator, level_dbfs: tuple[float, float] = (-70.0, -45.0)
) -> np.ndarray:
    """White or pink hiss at -70..-45 dBFS RMS: one siren source was 8-bit (floor near -48 dBFS), so
    every class must carry hiss like it or the model learns "hiss = siren"."""
    x = np.asarray(x, dtype=np.float64)
    noise = rng.standard_normal(x.size) if rng.uniform() < 0.5 else synth.pink_noise(x.size, rng)
    level = 10.0 ** (rng.uniform(*level_dbfs) / 20.0)
    return _limit(x + noise * (level / max(_rms(noise), _EPS)))


def roadside_noise(
    n: int,
    rng: np.random.Generator,
    sample_rate: int = synth.SAMPLE_RATE,
    level_dbfs: tuple[float, float] = (-40.0, -20.0),
) -> np.ndarray:
    """A generated roadside bed (traffic plus some wind, no sirens) at a random RMS level in dBFS."""
    level = rng.uniform(*level_dbfs)
    traffic = synth.generate_traffic(n, rng, sample_rate, level)
    wind = synth.generate_wind(n, rng, sample_rate, level + rng.uniform(-25.0, 0.0))
    return _limit(traffic.astype(np.float64) + wind)


def _propagate(
    x: np.ndarray, rng: np.random.Generator, sample_rate: int, config: AugmentConfig
) -> np.ndarray:
    """The way from the source to the microphone: distance, street reverb, position in the window."""
    x = np.asarray(x, dtype=np.float32)
    if rng.uniform() < config.p_distance:
        distance = np.exp(rng.uniform(*np.log(config.distance_m)))
        x = synth.apply_distance(x, distance, sample_rate)
    if rng.uniform() < config.p_reverb:
        ir = synth.synth_impulse_response(rng, sample_rate)
        x = synth.apply_reverb(x, ir, rng.uniform(*config.reverb_wet))
    if rng.uniform() < config.p_shift:
        x = time_shift(x, rng)
    return x


def _channel(x: np.ndarray, rng: np.random.Generator, sample_rate: int, config: AugmentConfig) -> np.ndarray:
    """The microphone and converter, in signal order: colouring, band limit, gain, then the noise floor."""
    if rng.uniform() < config.p_colouring:
        x = mic_colouring(x, rng, sample_rate)
    if rng.uniform() < config.p_band_limit:
        x = band_limit(x, rng, sample_rate)
    if rng.uniform() < config.p_gain:
        x = random_gain(x, rng, config.gain_db)
    if rng.uniform() < config.p_noise_floor:
        x = add_noise_floor(x, rng, config.noise_floor_dbfs)
    return _limit(x)


def augment_positive(
    siren_window: np.ndarray,
    background_window: np.ndarray | None,
    rng: np.random.Generator,
    sample_rate: int = synth.SAMPLE_RATE,
    config: AugmentConfig = AugmentConfig(),
) -> np.ndarray:
    """A (real or generated) siren window as the roadside microphone would hear it.

    The siren travels (distance, reverb, shift), goes under `background_window` (a negative window, or a
    generated roadside bed when None) at a random SNR, then through the microphone channel.
    """
    siren = _propagate(siren_window, rng, sample_rate, config)
    if background_window is None:
        background_window = roadside_noise(siren.size, rng, sample_rate)
    mixed = mix_at_snr(siren, background_window, rng.uniform(*config.snr_db))
    return _channel(mixed, rng, sample_rate, config)


def augment_negative(
    window: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int = synth.SAMPLE_RATE,
    extra_background: np.ndarray | None = None,
    config: AugmentConfig = AugmentConfig(),
) -> np.ndarray:
    """A non-siren window through the same travel and channel as the positives; sometimes mixed with
    `extra_background` (another negative) at the positives' SNRs, so mixtures are no siren cue either."""
    x = _propagate(window, rng, sample_rate, config)
    if extra_background is not None and rng.uniform() < config.p_extra_background:
        x = mix_at_snr(x, extra_background, rng.uniform(*config.snr_db))
    return _channel(x, rng, sample_rate, config)
