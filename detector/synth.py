"""Synthetic sirens, pass-by effects and roadside backgrounds (numpy/scipy only).

Two users: the daemon's `synthetic` source, a demo scene that needs no microphone, and training
augmentation, which needs siren types, distances and streets the real recordings do not cover. All
randomness comes from the caller's `numpy.random.Generator`, so a seed reproduces a scene exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import signal

SAMPLE_RATE = 16000
SPEED_OF_SOUND = 343.0
SIREN_KINDS = ("wail", "yelp", "hilo", "two_tone", "three_tone", "rumbler", "phaser")

_TWO_TONE_PAIRS = ((435.0, 488.0), (435.0, 580.0), (392.0, 440.0), (450.0, 550.0))
_THREE_TONE_NOTES = (435.0, 488.0, 580.0)
# Distance law: levels are relative to a listener 10 m away; the high-frequency loss (air, ground,
# obstacles) moves a low-pass cutoff from 7 kHz at 10 m to 1.5 kHz at 300 m, log-linearly.
_REFERENCE_M = 10.0
_CUTOFF_AT_REFERENCE_HZ = 7000.0
_CUTOFF_EXPONENT = float(np.log(1500.0 / 7000.0) / np.log(300.0 / 10.0))
# Paul Kellet's / J. O. Smith's 3-pole approximation of a 1/f (pink) spectrum.
_PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)
_PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)
_EPS = 1e-12
# Passing vehicles are modelled within this distance; farther ones are part of the rumble bed.
_VEHICLE_RANGE_M = 40.0
_LOW_BAND_FACTOR = 4


@dataclass(frozen=True)
class SceneEvent:
    """Ground truth for one siren in a generated scene (seconds from the start of the scene)."""

    kind: str
    start_s: float
    end_s: float


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _at_rms(x: np.ndarray, rms_dbfs: float) -> np.ndarray:
    """Scale to an RMS level in dBFS (silence stays silence)."""
    level = _rms(x)
    return x * (10.0 ** (rms_dbfs / 20.0) / level) if level > _EPS else x


def _fade(n: int, sample_rate: float, fade_s: float) -> np.ndarray:
    """Raised-cosine fade in and out, so cut-out sounds do not start or stop with a click."""
    env = np.ones(n)
    m = min(int(fade_s * sample_rate), n // 2)
    if m > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(m) / m)
        env[:m] = ramp
        env[n - m :] = ramp[::-1]
    return env


def _smooth_noise(n: int, sample_rate: float, rng: np.random.Generator, rate_hz: float) -> np.ndarray:
    """Zero-mean, roughly unit-variance noise that changes about `rate_hz` times a second."""
    knots = rng.standard_normal(int(n / sample_rate * rate_hz) + 3)
    knots = np.convolve(knots, (0.25, 0.5, 0.25), mode="same") / np.sqrt(0.375)
    return np.interp(np.arange(n) * (rate_hz / sample_rate), np.arange(knots.size), knots)


def _white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance white noise for long beds: uniform, which any filter makes as Gaussian as normal
    noise, and several times cheaper to draw."""
    return (rng.random(n, dtype=np.float32) - 0.5) * np.float32(np.sqrt(12.0))


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS 1/f noise: the spectrum of distant traffic, and of many microphones' self-noise."""
    return _at_rms(signal.lfilter(_PINK_B, _PINK_A, _white(n, rng)), 0.0)


# --- sirens ---------------------------------------------------------------------------------------


def _ease(v: np.ndarray, k: float) -> np.ndarray:
    """0 to 1 with a fast start and a slow finish, like a motor spinning up or coasting down."""
    return (1.0 - np.exp(-k * v)) / (1.0 - np.exp(-k))


def _sweep(
    n: int,
    sample_rate: int,
    rng: np.random.Generator,
    band: tuple[float, float],
    period_s: float,
    rise: float,
) -> np.ndarray:
    """Instantaneous frequency of a rise-then-fall sweep; `rise` is the rising share of each cycle."""
    u = (rng.uniform() + np.arange(n) / (period_s * sample_rate)) % 1.0
    k_rise, k_fall = rng.uniform(1.0, 4.0, size=2)
    up = _ease(np.clip(u / rise, 0.0, 1.0), k_rise)
    down = 1.0 - _ease(np.clip((u - rise) / (1.0 - rise), 0.0, 1.0), k_fall)
    return band[0] + (band[1] - band[0]) * np.where(u < rise, up, down)


def _stepped(
    n: int, sample_rate: int, rng: np.random.Generator, notes: np.ndarray, tone_s: float
) -> np.ndarray:
    """Instantaneous frequency of notes cycling in order, with short glides and per-note pitch jitter."""
    offset = rng.uniform(0.0, tone_s * notes.size)
    count = int(np.ceil((n / sample_rate + offset) / (0.97 * tone_s))) + 2
    durations = tone_s * rng.uniform(0.97, 1.03, count)
    starts = np.concatenate(([0.0], np.cumsum(durations)[:-1])) - offset
    freqs = notes[np.arange(count) % notes.size] * (1.0 + 0.004 * rng.standard_normal(count))
    glide = rng.uniform(0.01, 0.04)
    knots_t = np.stack([starts, starts + durations - glide], axis=1).ravel()
    return np.interp(np.arange(n) / sample_rate, knots_t, np.repeat(freqs, 2))


def _wobble(freq: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Vibrato and slow drift: a real siren's pitch is never perfectly steady."""
    t = np.arange(freq.size) / sample_rate
    vibrato = rng.uniform(0.0, 0.006) * np.sin(
        2 * np.pi * rng.uniform(3.0, 8.0) * t + rng.uniform(0, 2 * np.pi)
    )
    drift = rng.uniform(0.0, 0.004) * _smooth_noise(freq.size, sample_rate, rng, 4.0)
    return freq * (1.0 + vibrato + drift)


def _harmonic_amplitudes(rng: np.random.Generator, strong: bool) -> np.ndarray:
    """Random harmonic series: smooth decay, square-wave-like odd harmonics, or (rumbler) strong overtones."""
    k = np.arange(1, int(rng.integers(6 if strong else 3, 11)) + 1)
    if strong:
        amps = k ** -rng.uniform(0.3, 0.9)
    elif rng.uniform() < 0.3:
        amps = np.where(k % 2 == 1, 1.0, rng.uniform(0.0, 0.25, k.size)) / k
    else:
        amps = k ** -rng.uniform(1.0, 2.5)
    amps = amps * rng.uniform(0.6, 1.0, k.size)
    amps[0] = 1.0
    return amps


def _synthesise(
    freq: np.ndarray, sample_rate: float, rng: np.random.Generator, amps: np.ndarray
) -> np.ndarray:
    """Phase-continuous harmonic tone following `freq`; harmonics fade out before they would alias.

    Harmonic k comes from harmonic k-1 by one complex multiplication, much cheaper than a sine per
    harmonic; the random phase of each harmonic rides on its complex amplitude.
    """
    phase = 2 * np.pi * np.cumsum(freq) / sample_rate + rng.uniform(0, 2 * np.pi)
    weights = amps * np.exp(1j * rng.uniform(0, 2 * np.pi, amps.size))
    nyquist = sample_rate / 2
    highest = float(np.max(freq, initial=0.0))
    step = np.exp(1j * phase)
    harmonic = step.copy()
    out = np.zeros(freq.size)
    for k, weight in enumerate(weights, start=1):
        if k * highest <= 0.85 * nyquist:
            out += (weight * harmonic).imag
        else:
            out += (weight * harmonic).imag * np.clip((0.95 * nyquist - k * freq) / (0.1 * nyquist), 0.0, 1.0)
        harmonic *= step
    return out


def _siren_frequency(kind: str, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The pitch contour that defines each siren kind."""
    if kind in ("wail", "yelp"):
        band = (rng.uniform(550.0, 750.0), rng.uniform(1250.0, 1650.0))
        if kind == "wail":
            return _sweep(n, sample_rate, rng, band, rng.uniform(3.0, 6.0), rng.uniform(0.3, 0.8))
        return _sweep(n, sample_rate, rng, band, rng.uniform(0.15, 0.4), rng.uniform(0.4, 0.8))
    if kind == "hilo":
        low = rng.uniform(580.0, 900.0)
        notes = np.array([low, low * rng.uniform(1.25, 1.4)])
        return _stepped(n, sample_rate, rng, notes, rng.uniform(0.4, 1.0))
    if kind == "two_tone":
        if rng.uniform() < 0.6:
            notes = np.array(_TWO_TONE_PAIRS[rng.integers(len(_TWO_TONE_PAIRS))]) * rng.uniform(0.97, 1.03)
        else:
            low = rng.uniform(380.0, 480.0)
            notes = np.array([low, low * rng.uniform(1.1, 1.35)])
        return _stepped(n, sample_rate, rng, notes, rng.uniform(0.5, 1.0))
    if kind == "three_tone":
        notes = rng.permutation(np.array(_THREE_TONE_NOTES)) * rng.uniform(0.9, 1.1)
        return _stepped(n, sample_rate, rng, notes, rng.uniform(0.25, 0.7))
    if kind == "rumbler":
        band = (rng.uniform(170.0, 220.0), rng.uniform(330.0, 420.0))
        period = rng.uniform(3.0, 6.0) if rng.uniform() < 0.5 else rng.uniform(0.15, 0.4)
        return _sweep(n, sample_rate, rng, band, period, rng.uniform(0.3, 0.8))
    if kind == "phaser":
        band = (rng.uniform(950.0, 1200.0), rng.uniform(1800.0, 2200.0))
        return _sweep(n, sample_rate, rng, band, rng.uniform(0.08, 0.125), rng.uniform(0.75, 0.95))
    raise ValueError(f"unknown siren kind {kind!r}; expected one of {', '.join(SIREN_KINDS)}")


def generate_siren(
    kind: str, duration_s: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """A clean siren of one of `SIREN_KINDS`, as heard close up, peak-normalised to 0.9 (float32)."""
    n = round(duration_s * sample_rate)
    freq = _wobble(_siren_frequency(kind, n, sample_rate, rng), sample_rate, rng)
    x = _synthesise(freq, sample_rate, rng, _harmonic_amplitudes(rng, strong=kind == "rumbler"))
    x *= _fade(n, sample_rate, 0.01)
    peak = float(np.max(np.abs(x))) if n else 0.0
    return (x * (0.9 / peak) if peak > _EPS else x).astype(np.float32)


# --- propagation -----------------------------------------------------------------------------------


def apply_doppler(
    x: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int = SAMPLE_RATE,
    speed_mps: tuple[float, float] = (5.0, 25.0),
    closest_m: tuple[float, float] = (5.0, 50.0),
    closest_at: tuple[float, float] = (0.2, 0.8),
) -> np.ndarray:
    """The source drives past on a straight road: pitch drops as it passes, level follows 1/r.

    Each output sample is read from the moment the sound left the vehicle (exact moving-source delay,
    c = 343 m/s), so it works on any signal, real or generated. `closest_at` is the fraction of the clip
    at which the vehicle is nearest; the gain is 1 there. Same length out (float32).
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0:
        return x.astype(np.float32)
    speed = rng.uniform(*speed_mps)
    closest = rng.uniform(*closest_m)
    t0 = rng.uniform(*closest_at) * n / sample_rate
    # Emission times, long enough that their arrivals cover the whole clip.
    pad = int(np.ceil(speed * n / (SPEED_OF_SOUND - speed))) + 2
    emitted = np.arange(-pad, n + pad) / sample_rate
    arrival = emitted + (np.hypot(closest, speed * (emitted - t0)) - closest) / SPEED_OF_SOUND
    source_t = np.interp(np.arange(n) / sample_rate, arrival, emitted)
    # Centre the read positions on the clip; the few samples beyond its ends come from a mirror image.
    position = source_t * sample_rate
    position -= (position[0] + position[-1] - (n - 1)) / 2
    margin = int(np.ceil(max(-position[0], position[-1] - (n - 1), 0.0))) + 2
    padded = np.pad(x, margin, mode="reflect") if n > 1 else np.full(n + 2 * margin, x[0])
    # Linear interpolation between 4x oversampled samples keeps its images below -45 dB up to 3.5 kHz.
    fine = signal.resample_poly(padded, 4, 1)
    y = np.interp(4 * (position + margin), np.arange(fine.size), fine)
    gain = closest / np.hypot(closest, speed * (source_t - t0))
    return (y * gain).astype(np.float32)


def apply_distance(x: np.ndarray, distance_m: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Level (1/r, relative to 10 m) and high-frequency loss of a source `distance_m` away.

    Distances under 10 m are treated as 10 m: the input is taken to be a close-up recording.
    """
    distance = max(float(distance_m), _REFERENCE_M)
    cutoff = _CUTOFF_AT_REFERENCE_HZ * (distance / _REFERENCE_M) ** _CUTOFF_EXPONENT
    sos = signal.butter(2, min(cutoff, 0.45 * sample_rate), "lowpass", fs=sample_rate, output="sos")
    y = signal.sosfilt(sos, np.asarray(x, dtype=np.float64)) * (_REFERENCE_M / distance)
    return y.astype(np.float32)


def synth_impulse_response(
    rng: np.random.Generator, sample_rate: int = SAMPLE_RATE, rt60_s: tuple[float, float] = (0.2, 1.2)
) -> np.ndarray:
    """A street-canyon room response: direct sound, a few facade/ground echoes, a darkening decay tail.

    Unit energy, so `apply_reverb` keeps the level roughly where it was.
    """
    rt60 = rng.uniform(*rt60_s)
    n = max(int(rt60 * sample_rate), 2)
    t = np.arange(n) / sample_rate
    ir = np.zeros(n)
    ir[0] = 1.0
    n_echoes = int(rng.integers(2, 7))
    echo_at = np.minimum((rng.uniform(0.002, 0.04, n_echoes) * sample_rate).astype(int), n - 1)
    np.add.at(ir, echo_at, rng.uniform(0.2, 0.7, n_echoes) * rng.choice((-1.0, 1.0), n_echoes))
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60) * (t >= rng.uniform(0.005, 0.02))
    sos = signal.butter(1, min(rng.uniform(3000.0, 6000.0), 0.45 * sample_rate), fs=sample_rate, output="sos")
    tail = signal.sosfilt(sos, tail)
    direct_to_reverb_db = rng.uniform(-6.0, 6.0)
    tail *= np.sqrt(np.sum(ir**2) / max(np.sum(tail**2), _EPS) * 10.0 ** (-direct_to_reverb_db / 10.0))
    ir += tail
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def apply_reverb(x: np.ndarray, ir: np.ndarray, wet: float) -> np.ndarray:
    """Blend `x` with its convolution by `ir` (0 = dry, 1 = fully reverberant); same length out."""
    if not 0.0 <= wet <= 1.0:
        raise ValueError(f"wet must be in [0, 1], got {wet}")
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    reverberant = signal.fftconvolve(x, np.asarray(ir, dtype=np.float64))[: x.size]
    return ((1.0 - wet) * x + wet * reverberant).astype(np.float32)


# --- backgrounds ----------------------------------------------------------------------------------


def _from_low_band(x: np.ndarray, n: int) -> np.ndarray:
    """Back to the full sample rate from the low band: a background's parts with nothing above ~1.8 kHz
    (rumble, engines, wind) are made at a quarter of the rate, which makes long scenes much cheaper."""
    return signal.resample_poly(x, _LOW_BAND_FACTOR, 1)[:n]


def generate_wind(
    n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE, rms_dbfs: float = -20.0
) -> np.ndarray:
    """Wind on the microphone: low-frequency rumble in slow gusts, with a little broadband rustle."""
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    rate, m = sample_rate / _LOW_BAND_FACTOR, -(-n // _LOW_BAND_FACTOR)
    gusts = np.exp(rng.uniform(0.5, 1.5) * _smooth_noise(m, rate, rng, rng.uniform(0.2, 1.0)))
    sos = signal.butter(2, rng.uniform(40.0, 150.0), "lowpass", fs=rate, output="sos")
    body = _from_low_band(signal.sosfilt(sos, _white(m, rng)) * gusts, n)
    sos = signal.butter(1, rng.uniform(2000.0, 5000.0), "lowpass", fs=sample_rate, output="sos")
    rustle = signal.sosfilt(sos, _white(n, rng)) * np.repeat(gusts, _LOW_BAND_FACTOR)[:n]
    wind = _at_rms(body, 0.0) + rng.uniform(0.02, 0.1) * _at_rms(rustle, 0.0)
    return _at_rms(wind, rms_dbfs).astype(np.float32)


def _engine(
    t: np.ndarray,
    rate: float,
    rng: np.random.Generator,
    firing_hz: float,
    pass_by: tuple[float, float, float],
) -> np.ndarray:
    """Engine hum of a vehicle passing at `pass_by` = (closest time, speed, closest distance):
    firing-frequency harmonics whose pitch follows the radial speed (Doppler)."""
    t0, speed, closest = pass_by
    radial = speed**2 * (t - t0) / np.hypot(closest, speed * (t - t0))
    freq = firing_hz * SPEED_OF_SOUND / (SPEED_OF_SOUND + radial)
    freq *= 1.0 + 0.02 * _smooth_noise(t.size, rate, rng, 2.0)
    amps = np.arange(1, int(rng.integers(4, 8)) + 1) ** -rng.uniform(0.5, 1.5)
    return _synthesise(freq, rate, rng, amps)


def generate_traffic(
    n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE, rms_dbfs: float = -20.0
) -> np.ndarray:
    """A road-traffic bed without sirens or horns.

    Distant brown/pink rumble; cars, trucks and motorcycles passing (engine hum with Doppler, tyre roar
    rising and falling with distance); now and then air-brake hiss or a body/door thump.
    """
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    duration = n / sample_rate
    rate, m = sample_rate / _LOW_BAND_FACTOR, -(-n // _LOW_BAND_FACTOR)
    brown = signal.lfilter((1.0,), (1.0, -np.exp(-2 * np.pi * 12.0 / rate)), _white(m, rng))
    bed = _at_rms(brown, 0.0) + rng.uniform(0.2, 0.6) * pink_noise(m, rng)
    sos = np.vstack(
        [
            signal.butter(1, 20.0, "highpass", fs=rate, output="sos"),
            signal.butter(2, rng.uniform(600.0, 1800.0), "lowpass", fs=rate, output="sos"),
        ]
    )
    low = rng.uniform(0.2, 0.5) * _at_rms(signal.sosfilt(sos, bed), 0.0)

    # Vehicles: closest approach anywhere from 5 s before to 5 s after the clip, so some are mid-pass.
    margin = 5.0
    count = int(rng.poisson(rng.uniform(0.05, 0.5) * (duration + 2 * margin)))
    tyre_power = np.zeros(m)
    for _ in range(count):
        t0 = rng.uniform(-margin, duration + margin)
        speed, closest = rng.uniform(8.0, 20.0), rng.uniform(3.0, 25.0)
        vehicle = rng.choice(3, p=(0.8, 0.15, 0.05))  # car, truck, motorcycle
        firing = (rng.uniform(40.0, 110.0), rng.uniform(25.0, 60.0), rng.uniform(80.0, 200.0))[vehicle]
        loudness = (1.0, 2.0, 1.5)[vehicle] * rng.uniform(0.5, 1.5)
        engine_share = rng.uniform(0.2, 1.0)
        half_span = np.sqrt(_VEHICLE_RANGE_M**2 - closest**2) / speed
        lo = min(max(int(np.ceil((t0 - half_span) * rate)), 0), m)
        hi = min(max(int(np.ceil((t0 + half_span) * rate)), lo), m)
        if hi == lo:
            continue
        span = np.arange(lo, hi) / rate
        envelope = loudness * closest / np.hypot(closest, speed * (span - t0)) * _fade(hi - lo, rate, 0.3)
        hum = _engine(span, rate, rng, firing, (t0, speed, closest))
        low[lo:hi] += 0.3 * engine_share * envelope * hum
        tyre_power[lo:hi] += (envelope * (speed / 14.0)) ** 2
    tyre_band = np.sort(rng.uniform(300.0, 3000.0, 2))
    tyre_band[1] = max(tyre_band[1], 1.5 * tyre_band[0])
    sos = signal.butter(1, tyre_band, "bandpass", fs=sample_rate, output="sos")
    # Tyres of the traffic beyond 40 m never stop: a floor under the passing vehicles' roar.
    tyre_gain = np.repeat(np.sqrt(tyre_power + rng.uniform(0.05, 0.3) ** 2), _LOW_BAND_FACTOR)[:n]
    tyres = _at_rms(signal.sosfilt(sos, _white(n, rng)), 0.0) * tyre_gain
    out = _from_low_band(low, n) + tyres

    # Occasional events: air-brake hiss (high-passed noise) or a thump (low-passed noise), decaying.
    for _ in range(int(rng.poisson(duration / 30.0))):
        start = int(rng.uniform(0.0, duration) * sample_rate)
        hiss = rng.uniform() < 0.5
        length = int((rng.uniform(0.3, 1.2) if hiss else rng.uniform(0.05, 0.2)) * sample_rate)
        band = ("highpass", rng.uniform(2000.0, 4000.0)) if hiss else ("lowpass", rng.uniform(100.0, 250.0))
        sos = signal.butter(2, band[1], band[0], fs=sample_rate, output="sos")
        burst = _at_rms(signal.sosfilt(sos, rng.standard_normal(length)), 0.0)
        burst *= np.exp(-np.arange(length) / (0.3 * length)) * _fade(length, sample_rate, 0.005)
        burst = burst[: max(n - start, 0)]
        out[start : start + burst.size] += rng.uniform(0.3, 1.5) * burst
    return _at_rms(out, rms_dbfs).astype(np.float32)


# --- positives and scenes -------------------------------------------------------------------------


def random_siren_event(
    rng: np.random.Generator, duration_s: float, sample_rate: int = SAMPLE_RATE, kind: str | None = None
) -> np.ndarray:
    """A generated siren as a roadside microphone hears it: random kind (unless given), sometimes passing
    by (Doppler), 10-300 m away, sometimes in a reverberant street. Float32, level not normalised."""
    if kind is None:
        kind = SIREN_KINDS[int(rng.integers(len(SIREN_KINDS)))]
    x = generate_siren(kind, duration_s, rng, sample_rate)
    distance = float(np.exp(rng.uniform(np.log(10.0), np.log(300.0))))
    if rng.uniform() < 0.5:
        x = apply_doppler(x, rng, sample_rate, closest_m=(distance, distance))
    x = apply_distance(x, distance, sample_rate)
    if rng.uniform() < 0.5:
        x = apply_reverb(x, synth_impulse_response(rng, sample_rate), rng.uniform(0.1, 0.6))
    return x


def _random_siren_times(duration_s: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Sirens of 6-20 s, at least 10 s apart, in a scene of `duration_s` (millisecond times)."""
    times = []
    start = round(rng.uniform(2.0, 15.0), 3)
    while True:
        end = round(start + rng.uniform(6.0, 20.0), 3)
        if end > duration_s:
            return times
        times.append((start, end))
        start = round(end + rng.uniform(10.0, 40.0), 3)


# The latency benchmark's and `train.onset_check`'s scenes: an 8 s siren every 18 s, the first 5 s in, so
# every onset has a known time and 10 s of street before it
PERIODIC_FIRST_ONSET_S, PERIODIC_SIREN_S, PERIODIC_PERIOD_S = 5.0, 8.0, 18.0


def periodic_siren_times(count: int) -> tuple[list[tuple[float, float]], float]:
    """`count` sirens at the periodic layout's times, and the duration of a scene that holds them (5 s after
    the last ends)."""
    times = [(PERIODIC_FIRST_ONSET_S + k * PERIODIC_PERIOD_S, PERIODIC_FIRST_ONSET_S + k * PERIODIC_PERIOD_S
              + PERIODIC_SIREN_S) for k in range(count)]
    return times, PERIODIC_FIRST_ONSET_S + count * PERIODIC_PERIOD_S + 5.0


def generate_scene(
    duration_s: float,
    rng: np.random.Generator,
    sample_rate: int = SAMPLE_RATE,
    siren_times: list[tuple[float, float]] | None = None,
    siren_snr_db: tuple[float, float] = (0.0, 15.0),
    quiet_tail_s: float = 0.0,
) -> tuple[np.ndarray, list[SceneEvent]]:
    """A street scene (traffic and wind) with sirens at `siren_times` (random when None).

    Random sirens end at least `quiet_tail_s` before the end, so scenes played one after another keep
    their sirens apart. Each siren's SNR is drawn from `siren_snr_db`, against the background during the siren. Returns
    float32 audio, scaled down if it would clip, and the ground-truth events in time order.
    """
    n = round(duration_s * sample_rate)
    if siren_times is None:
        siren_times = _random_siren_times(duration_s - quiet_tail_s, rng)
    for start, end in siren_times:
        if not 0.0 <= start < end <= duration_s:
            raise ValueError(f"siren time ({start}, {end}) is not inside a {duration_s} s scene")
    traffic_dbfs = rng.uniform(-32.0, -22.0)
    background = generate_traffic(n, rng, sample_rate, traffic_dbfs).astype(np.float64)
    background += generate_wind(n, rng, sample_rate, traffic_dbfs + rng.uniform(-15.0, -3.0))
    out = background.copy()
    events = []
    for start, end in sorted(siren_times):
        kind = SIREN_KINDS[int(rng.integers(len(SIREN_KINDS)))]
        lo, hi = round(start * sample_rate), round(end * sample_rate)
        siren = random_siren_event(rng, (hi - lo) / sample_rate, sample_rate, kind)
        siren = siren * _fade(hi - lo, sample_rate, 0.25)
        snr_db = rng.uniform(*siren_snr_db)
        gain = _rms(background[lo:hi]) * 10.0 ** (snr_db / 20.0) / max(_rms(siren), _EPS)
        out[lo:hi] += gain * siren
        events.append(SceneEvent(kind, float(start), float(end)))
    peak = float(np.max(np.abs(out))) if n else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32), events


DISTRACTOR_KINDS = ("horn", "music", "hum", "beeper", "bell", "squeal")


def _notes_contour(n: int, sample_rate: int, rng: np.random.Generator, low: float, high: float,
                   note_s: tuple[float, float]) -> np.ndarray:
    """Irregular steps between random notes of a 12-tone scale: melody, unlike a siren's fixed cycle."""
    freq = np.empty(n)
    position = 0
    while position < n:
        length = max(1, round(rng.uniform(*note_s) * sample_rate))
        semitone = rng.integers(0, int(12 * np.log2(high / low)) + 1)
        freq[position : position + length] = low * 2 ** (semitone / 12)
        position += length
    return freq


def _bursts(n: int, sample_rate: int, rng: np.random.Generator, on_s: tuple[float, float],
            off_s: tuple[float, float]) -> np.ndarray:
    """An on/off envelope with short ramps (a horn pressed, a beeper's pulses)."""
    envelope = np.zeros(n)
    position = round(rng.uniform(0, off_s[1]) * sample_rate)
    while position < n:
        length = round(rng.uniform(*on_s) * sample_rate)
        envelope[position : position + length] = 1.0
        position += length + round(rng.uniform(*off_s) * sample_rate)
    ramp = np.hanning(max(3, sample_rate // 100))
    return np.convolve(envelope, ramp / ramp.sum(), mode="same")


def generate_distractor(kind: str, duration_s: float, rng: np.random.Generator,
                        sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Tonal street sounds that are NOT sirens, peak 0.9: the negatives a siren model confuses most.

    horn: a steady two- or three-note chord in bursts; music: melodies of harmonic notes; hum: an engine
    or air conditioner's low harmonics; beeper: a pedestrian-crossing or reversing beeper's pulses;
    bell: decaying inharmonic partials; squeal: a brake's steady high whine.
    """
    n = round(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    if kind == "horn":
        base = rng.uniform(300.0, 520.0)
        chord = [base, base * rng.uniform(1.18, 1.34)] + ([base * rng.uniform(1.45, 1.6)] if rng.random() < 0.4
                                                          else [])
        out = sum(_synthesise(np.full(n, f), sample_rate, rng, _harmonic_amplitudes(rng, True)) for f in chord)
        out = out * _bursts(n, sample_rate, rng, (0.15, 1.5), (0.1, 1.0))
    elif kind == "music":
        voices = int(rng.integers(1, 4))
        out = sum(_synthesise(_notes_contour(n, sample_rate, rng, rng.uniform(150, 500), rng.uniform(700, 1800),
                                             (0.1, 0.6)), sample_rate, rng, _harmonic_amplitudes(rng, False))
                  for _ in range(voices))
    elif kind == "hum":
        out = _synthesise(_wobble(np.full(n, rng.uniform(25.0, 150.0)), sample_rate, rng), sample_rate, rng,
                          _harmonic_amplitudes(rng, True))
    elif kind == "beeper":
        tone = _synthesise(np.full(n, rng.uniform(900.0, 3200.0)), sample_rate, rng,
                           _harmonic_amplitudes(rng, False))
        out = tone * _bursts(n, sample_rate, rng, (0.05, 0.5), (0.05, 0.9))
    elif kind == "bell":
        out = np.zeros(n)
        for strike in np.arange(rng.uniform(0, 0.5), duration_s, rng.uniform(0.4, 1.5)):
            start = round(strike * sample_rate)
            tail = t[: n - start]
            for ratio in (1.0, 2.0, 2.4, 3.0, 4.2, 5.4):
                partial = np.sin(2 * np.pi * rng.uniform(300, 900) * ratio * tail) * np.exp(-tail * rng.uniform(1, 6))
                out[start:] += partial / ratio
    elif kind == "squeal":
        freq = _wobble(np.full(n, rng.uniform(1800.0, 5000.0)), sample_rate, rng)
        out = _synthesise(freq, sample_rate, rng, np.array([1.0, 0.2])) * _bursts(
            n, sample_rate, rng, (0.4, 2.0), (0.2, 1.0))
    else:
        raise ValueError(f"unknown distractor kind {kind!r}; expected one of {', '.join(DISTRACTOR_KINDS)}")
    peak = float(np.max(np.abs(out))) if n else 0.0
    return (0.9 * out / peak if peak > _EPS else np.zeros(n)).astype(np.float32)


def _work_bursts(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Where a breaker is working: 1.5-6 s bursts with 0.15-1.2 s pauses; at least half the clip."""
    working = np.zeros(n, bool)
    position = int(rng.uniform(-1.5, 0.5) * sample_rate)
    while position < n:
        length, pause = int(rng.uniform(1.5, 6.0) * sample_rate), int(rng.uniform(0.15, 1.2) * sample_rate)
        working[max(position, 0) : max(position + length, 0)] = True
        position += length + pause
    if working.mean() < 0.5:
        working[:] = True
    return working


def generate_jackhammer(n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A pneumatic breaker at 5-80 m, RMS 0.05: the sound UrbanSound8K's folds hold too few recordings of.

    Blows at 8-28 Hz (the real recordings' envelopes peak at 9-27 Hz), each a noise burst decaying in 2-12 ms
    that rings two to four metal resonances, with a low thump; exhaust hiss modulated at the blow rate;
    bursts of work with pauses; then distance and, mostly, street reverberation.
    """
    blow_hz = rng.uniform(8.0, 28.0)
    period = sample_rate / blow_hz
    next_blow = rng.uniform(0, period)
    working = _work_bursts(n, sample_rate, rng)
    blows = []
    while next_blow < n:
        if working[int(next_blow)]:
            blows.append(int(next_blow))
        next_blow += period * rng.normal(1.0, 0.03)
    excitation = np.zeros(n)
    excitation[blows] = rng.uniform(0.6, 1.0, len(blows))
    decay_s = rng.uniform(0.002, 0.012)
    t = np.arange(int(0.05 * sample_rate)) / sample_rate
    clicks = signal.fftconvolve(excitation, rng.standard_normal(len(t)) * np.exp(-t / decay_s))[:n]
    ring = np.zeros(n)
    for _ in range(int(rng.integers(2, 5))):
        centre, q = rng.uniform(700.0, 5500.0), rng.uniform(4.0, 25.0)
        b, a = signal.iirpeak(centre, q, fs=sample_rate)
        ring += signal.lfilter(b, a, clicks) * rng.uniform(0.3, 1.0)
    thump_hz = rng.uniform(50.0, 160.0)
    thump = signal.fftconvolve(excitation, np.sin(2 * np.pi * thump_hz * t) * np.exp(-t / rng.uniform(0.01, 0.03)))[:n]
    hiss = pink_noise(n, rng) if rng.uniform() < 0.5 else rng.standard_normal(n)
    hiss = signal.sosfilt(signal.butter(2, rng.uniform(300.0, 1500.0), "highpass", fs=sample_rate, output="sos"), hiss)
    depth = rng.uniform(0.3, 0.9)
    pulsing = 1 - depth + depth * (0.5 + 0.5 * np.cos(2 * np.pi * blow_hz * np.arange(n) / sample_rate))
    hiss *= pulsing * np.where(working, 1.0, rng.uniform(0.0, 0.3))
    x = (_at_rms(ring, 0.0) + rng.uniform(0.1, 0.6) * _at_rms(clicks, 0.0) + rng.uniform(0.0, 0.8) * _at_rms(thump, 0.0)
         + rng.uniform(0.1, 0.7) * _at_rms(hiss, 0.0))
    x = apply_distance(x, rng.uniform(5.0, 80.0), sample_rate)
    if rng.uniform() < 0.7:
        x = apply_reverb(x, synth_impulse_response(rng, sample_rate), rng.uniform(0.1, 0.6))
    return (_at_rms(np.asarray(x, np.float64), 0.0) * 0.05).astype(np.float32)


def generate_engine_idling(n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A vehicle idling at 3-40 m, RMS 0.05: the counterweight to `generate_jackhammer`'s pulsing.

    Firings at 12-55 Hz (the real recordings' envelopes peak at 5-60 Hz, most at 25-50 Hz), steady with a
    slow wander and no pauses; each firing a low exhaust resonance (60-250 Hz) and a combustion noise burst
    low-passed at 300-2,500 Hz, cylinder to cylinder uneven; harmonics of the firing rate; sometimes a
    diesel's clatter. Most of the energy stays below 1 kHz, unlike a breaker's metal ringing. Session 20:
    1,000 of them lifted each urban network alone but lowered the averaged pair (docs/EXPERIMENTS.md).
    """
    firing_hz = rng.uniform(12.0, 55.0)
    cylinders = int(rng.choice([3, 4, 6, 8]))
    wander = 1.0 + rng.uniform(0.005, 0.03) * _smooth_noise(n, sample_rate, rng, 1.0)
    instant_hz = firing_hz * wander
    phase = np.cumsum(instant_hz) / sample_rate + rng.uniform(0.0, 1.0)
    firings = np.flatnonzero(np.diff(np.floor(phase), prepend=np.floor(phase[0]))) if n else np.zeros(0, int)
    uneven = rng.uniform(1.0 - rng.uniform(0.05, 0.4), 1.0, cylinders)
    excitation = np.zeros(n)
    excitation[firings] = uneven[np.arange(firings.size) % cylinders] * rng.uniform(0.7, 1.0, firings.size)
    t = np.arange(int(0.06 * sample_rate)) / sample_rate
    exhaust = signal.fftconvolve(excitation, np.sin(2 * np.pi * rng.uniform(60.0, 250.0) * t)
                                 * np.exp(-t / rng.uniform(0.005, 0.02)))[:n]
    burst = signal.fftconvolve(excitation, rng.standard_normal(t.size) * np.exp(-t / rng.uniform(0.003, 0.012)))[:n]
    burst = signal.sosfilt(signal.butter(2, rng.uniform(300.0, 2500.0), "lowpass", fs=sample_rate, output="sos"),
                           burst)
    hum = _synthesise(instant_hz, sample_rate, rng, np.arange(1, int(rng.integers(3, 9)) + 1)
                      ** -rng.uniform(0.7, 1.8))
    x = _at_rms(exhaust, 0.0) + rng.uniform(0.2, 0.8) * _at_rms(burst, 0.0) + rng.uniform(0.1, 0.8) * _at_rms(hum, 0.0)
    if rng.uniform() < 0.4:
        low_hz = rng.uniform(1200.0, 3500.0)
        band = signal.butter(2, (low_hz, 1.5 * low_hz), "bandpass", fs=sample_rate, output="sos")
        clatter = signal.sosfilt(band, signal.fftconvolve(excitation, rng.standard_normal(t.size)
                                                          * np.exp(-t / 0.002))[:n])
        x = x + rng.uniform(0.05, 0.4) * _at_rms(clatter, 0.0)
    x = x + rng.uniform(0.2, 1.0) * pink_noise(n, rng)
    x = apply_distance(x, rng.uniform(3.0, 40.0), sample_rate)
    if rng.uniform() < 0.5:
        x = apply_reverb(x, synth_impulse_response(rng, sample_rate), rng.uniform(0.1, 0.5))
    return (_at_rms(np.asarray(x, np.float64), 0.0) * 0.05).astype(np.float32)


def generate_air_conditioner(n: int, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """An air-conditioning unit at 2-30 m, RMS 0.05: steady where an engine pulses.

    Fan airflow (pink or brown noise low-passed at 400-4,000 Hz, the real recordings' centroids sit at
    60-1,600 Hz, most near 300 Hz), the fan's blade-pass tone (rotation 10-25 Hz times 3-7 blades) with a
    few harmonics, often a compressor's mains hum (50 or 60 Hz and its harmonics), and at most a faint
    rattle at the rotation rate. Session 20: the shipped urban model and the YAMNet-head teacher take most
    of these for engines, and training on them cost real engines (docs/EXPERIMENTS.md): not realistic yet.
    """
    if rng.uniform() < 0.7:
        airflow = pink_noise(n, rng)
    else:
        airflow = signal.lfilter((1.0,), (1.0, -np.exp(-2 * np.pi * rng.uniform(30.0, 120.0) / sample_rate)),
                                 _white(n, rng))
    airflow = signal.sosfilt(signal.butter(2, rng.uniform(400.0, 4000.0), "lowpass", fs=sample_rate,
                                           output="sos"), airflow)
    rotation_hz = rng.uniform(10.0, 25.0)
    blade_hz = rotation_hz * int(rng.integers(3, 8))
    blade = _synthesise(_wobble(np.full(n, blade_hz), sample_rate, rng), sample_rate, rng,
                        np.arange(1, int(rng.integers(2, 6)) + 1) ** -rng.uniform(1.0, 2.0))
    x = _at_rms(airflow, 0.0) + rng.uniform(0.1, 0.8) * _at_rms(blade, 0.0)
    if rng.uniform() < 0.6:
        mains_hz = float(rng.choice([50.0, 60.0])) * (1.0 + rng.normal(0.0, 0.002))
        hum = _synthesise(np.full(n, mains_hz), sample_rate, rng,
                          np.arange(1, int(rng.integers(2, 7)) + 1) ** -rng.uniform(0.5, 1.5))
        x = x + rng.uniform(0.1, 1.0) * _at_rms(hum, 0.0)
    depth = rng.uniform(0.0, 0.2)
    x = x * (1.0 - depth + depth * (0.5 + 0.5 * np.cos(2 * np.pi * rotation_hz * np.arange(n) / sample_rate)))
    x = apply_distance(x, rng.uniform(2.0, 30.0), sample_rate)
    if rng.uniform() < 0.5:
        x = apply_reverb(x, synth_impulse_response(rng, sample_rate), rng.uniform(0.1, 0.5))
    return (_at_rms(np.asarray(x, np.float64), 0.0) * 0.05).astype(np.float32)


CLASS_GENERATORS: dict[str, Callable[[int, np.random.Generator, int], np.ndarray]] = {
    "jackhammer": generate_jackhammer,  # UrbanSound8K folds 1-2 hold eleven jackhammer recordings
    "engine_idling": generate_engine_idling,  # steady firing pulses: the counterweight to a breaker's blows
    "air_conditioner": generate_air_conditioner,  # steady fan noise and hum, where engines pulse
}
"""UrbanSound8K class -> generator of (samples, rng, sample rate): what `siren-train --generated` can add."""
