"""The generated sirens, pass-bys and scenes behave like the physics they model; augmentation is safe."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from scipy import signal

from detector import synth
from train import augment

SR = 16000


def _dominant_hz(x: np.ndarray, segment_s: float) -> np.ndarray:
    """Strongest frequency of each consecutive segment (Hann window, zero-padded FFT, ~1 Hz bins)."""
    size = int(segment_s * SR)
    segments = x[: len(x) // size * size].reshape(-1, size) * np.hanning(size)
    spectrum = np.abs(np.fft.rfft(segments, n=16384, axis=1))
    return np.argmax(spectrum, axis=1) * SR / 16384


@pytest.mark.parametrize("seed", range(8))
def test_two_tone_alternates_between_two_european_pitches(seed: int) -> None:
    x = synth.generate_siren("two_tone", 8.0, np.random.default_rng(seed))
    dominant = _dominant_hz(x, 0.1)
    low, high = np.percentile(dominant, [10, 90])
    assert 370 <= low <= 510 and 400 <= high <= 700
    assert 1.08 <= high / low <= 1.4
    is_high = dominant > (low + high) / 2
    assert 0.2 <= is_high.mean() <= 0.8
    # Tones of 0.5-1.0 s in 8 s: at least 7 tones, so at least 6 changes, and no more than 17.
    changes = int(np.count_nonzero(np.diff(is_high)))
    assert 6 <= changes <= 17
    steady = dominant[is_high]
    assert np.ptp(steady[np.abs(steady - np.median(steady)) < 30]) < 30  # each tone holds its pitch


@pytest.mark.parametrize("seed", range(3))
def test_wail_sweeps_through_its_range(seed: int) -> None:
    x = synth.generate_siren("wail", 7.0, np.random.default_rng(seed))
    dominant = _dominant_hz(x, 0.05)
    assert 500 <= dominant.min() <= 800
    assert 1150 <= dominant.max() <= 1750
    # A sweep, not two tones: the pitch visits most 50 Hz bins between its extremes.
    visited = np.unique((dominant // 50).astype(int))
    assert len(visited) >= 0.6 * (np.ptp(dominant) / 50)


@pytest.mark.parametrize("kind", synth.SIREN_KINDS)
def test_every_kind_is_finite_normalised_and_the_right_length(kind: str) -> None:
    x = synth.generate_siren(kind, 1.5, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.shape == (24000,)
    assert np.isfinite(x).all()
    assert np.max(np.abs(x)) == pytest.approx(0.9, abs=1e-3)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown siren kind"):
        synth.generate_siren("foghorn", 1.0, np.random.default_rng(0))


def test_doppler_raises_pitch_while_approaching_and_lowers_it_when_receding() -> None:
    tone = np.sin(2 * np.pi * 1000.0 * np.arange(4 * SR) / SR)
    passed = synth.apply_doppler(
        tone,
        np.random.default_rng(0),
        SR,
        speed_mps=(20.0, 20.0),
        closest_m=(5.0, 5.0),
        closest_at=(0.5, 0.5),
    )
    assert passed.shape == tone.shape and np.isfinite(passed).all()
    approaching, receding = _dominant_hz(passed[: SR // 2], 0.5)[0], _dominant_hz(passed[-SR // 2 :], 0.5)[0]
    # 20 m/s: f * c / (c -+ v) = 1062 Hz and 945 Hz, less a little for the angle.
    assert 1040 <= approaching <= 1065
    assert 940 <= receding <= 960
    # 1/r: loudest where the vehicle is closest, in the middle.
    quarters = np.sqrt(np.mean(passed.reshape(8, -1) ** 2, axis=1))
    assert quarters.argmax() in (3, 4) and quarters.max() > 4 * quarters[0]


def test_distance_lowers_level_and_dulls_the_sound() -> None:
    noise = np.random.default_rng(0).standard_normal(SR)
    near, far = synth.apply_distance(noise, 10.0, SR), synth.apply_distance(noise, 300.0, SR)
    assert np.sqrt(np.mean(far**2)) < np.sqrt(np.mean(near**2)) / 20
    high = slice(4000, None)  # 4-8 kHz share of the power: smaller far away
    share = [
        np.sum(np.abs(np.fft.rfft(x))[high] ** 2) / np.sum(np.abs(np.fft.rfft(x)) ** 2) for x in (near, far)
    ]
    assert share[1] < share[0] / 5


def test_reverb_keeps_length_and_adds_a_tail() -> None:
    rng = np.random.default_rng(0)
    click = np.zeros(SR)
    click[100] = 1.0
    wet = synth.apply_reverb(click, synth.synth_impulse_response(rng, SR, rt60_s=(0.5, 0.5)), 1.0)
    assert wet.shape == click.shape
    assert np.sum(wet[100 + SR // 10 :] ** 2) > 1e-4  # energy 100 ms after the click
    with pytest.raises(ValueError):
        synth.apply_reverb(click, np.ones(4), 1.5)


def test_mix_at_snr_hits_the_requested_ratio() -> None:
    rng = np.random.default_rng(0)
    siren = synth.generate_siren("yelp", 2.0, rng).astype(np.float64)
    street = 3.0 * rng.standard_normal(2 * SR)  # loud enough that the mix must be scaled down
    for snr_db in (-10.0, -3.0, 0.0, 7.5, 20.0):
        mixed = augment.mix_at_snr(siren, street, snr_db)
        assert mixed.dtype == np.float32 and np.max(np.abs(mixed)) <= 1.0
        # Recover the two parts' weights by least squares and measure the SNR actually mixed.
        (a, b), *_ = np.linalg.lstsq(np.stack([siren, street], axis=1), mixed.astype(np.float64), rcond=None)
        measured = 20 * np.log10(abs(a) * np.std(siren) / (abs(b) * np.std(street)))
        assert measured == pytest.approx(snr_db, abs=0.5)


def test_mix_at_snr_survives_silence() -> None:
    silent, tone = np.zeros(SR), 0.5 * np.sin(np.arange(SR))
    assert np.allclose(augment.mix_at_snr(silent, tone, 5.0), tone, atol=1e-6)
    assert np.allclose(augment.mix_at_snr(tone, silent, 5.0), tone, atol=1e-6)
    assert not augment.mix_at_snr(silent, silent, 5.0).any()


def test_scene_is_deterministic_and_puts_sirens_where_asked() -> None:
    times = [(5.0, 15.0), (30.0, 42.0)]
    audio, events = synth.generate_scene(
        60.0, np.random.default_rng(11), SR, times, siren_snr_db=(15.0, 15.0)
    )
    again, events_again = synth.generate_scene(60.0, np.random.default_rng(11), SR, times, (15.0, 15.0))
    assert np.array_equal(audio, again) and events == events_again
    assert audio.dtype == np.float32 and audio.shape == (60 * SR,)
    assert np.isfinite(audio).all() and np.max(np.abs(audio)) <= 1.0
    assert [(e.start_s, e.end_s) for e in events] == times
    assert all(e.kind in synth.SIREN_KINDS for e in events)
    inside = np.concatenate([audio[int(s * SR) : int(e * SR)] for s, e in times])
    outside = np.concatenate([audio[: 5 * SR], audio[16 * SR : 29 * SR], audio[43 * SR :]])
    assert np.sqrt(np.mean(inside**2)) > 2 * np.sqrt(np.mean(outside**2))
    other, _ = synth.generate_scene(60.0, np.random.default_rng(12), SR, times)
    assert not np.array_equal(audio, other)


def test_scene_with_random_sirens_keeps_them_apart() -> None:
    audio, events = synth.generate_scene(240.0, np.random.default_rng(3), SR)
    assert len(events) >= 3
    assert all(0.0 <= e.start_s < e.end_s <= 240.0 for e in events)
    gaps = [b.start_s - a.end_s for a, b in pairwise(events)]
    assert min(gaps) >= 10.0 - 1e-9
    assert np.isfinite(audio).all() and np.max(np.abs(audio)) <= 1.0


def test_scene_refuses_sirens_outside_it() -> None:
    with pytest.raises(ValueError):
        synth.generate_scene(10.0, np.random.default_rng(0), SR, [(5.0, 12.0)])


def test_noise_floor_lands_in_its_range() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        floor = augment.add_noise_floor(np.zeros(2 * SR), rng)
        assert -70.5 <= 20 * np.log10(np.sqrt(np.mean(floor.astype(np.float64) ** 2))) <= -44.5


def test_augmented_windows_are_safe_and_reproducible() -> None:
    rng = np.random.default_rng(5)
    siren = synth.random_siren_event(rng, 2.0, SR)
    loud = np.clip(5.0 * rng.standard_normal(2 * SR), -1.0, 1.0)
    silent = np.zeros(2 * SR)
    for seed in range(25):
        for window in (
            augment.augment_positive(siren, loud, np.random.default_rng(seed), SR),
            augment.augment_positive(silent, None, np.random.default_rng(seed), SR),
            augment.augment_negative(loud, np.random.default_rng(seed), SR, extra_background=siren),
            augment.augment_negative(silent, np.random.default_rng(seed), SR),
        ):
            assert window.dtype == np.float32 and window.shape == (2 * SR,)
            assert np.isfinite(window).all() and np.max(np.abs(window)) <= 1.0
    first = augment.augment_positive(siren, loud, np.random.default_rng(1), SR)
    assert np.array_equal(first, augment.augment_positive(siren, loud, np.random.default_rng(1), SR))


def test_backgrounds_have_no_siren_like_tone() -> None:
    """Traffic and wind are negatives: no narrow peak should stand far above the spectrum around it."""
    rng = np.random.default_rng(0)
    for bed in (synth.generate_traffic(4 * SR, rng, SR), synth.generate_wind(4 * SR, rng, SR)):
        assert bed.dtype == np.float32 and np.isfinite(bed).all()
        spectrum = np.abs(np.fft.rfft(bed[SR : 2 * SR] * np.hanning(SR))) ** 2
        band = spectrum[400:3000]  # the sirens' band, 1 Hz bins
        assert band.max() < 1000 * np.median(band)


@pytest.mark.parametrize("kind", synth.DISTRACTOR_KINDS)
def test_distractors_are_finite_normalised_and_reproducible(kind: str) -> None:
    first = synth.generate_distractor(kind, 3.0, np.random.default_rng(5))
    again = synth.generate_distractor(kind, 3.0, np.random.default_rng(5))
    assert first.dtype == np.float32 and first.shape == (48000,)
    assert np.isfinite(first).all() and np.array_equal(first, again)
    assert np.max(np.abs(first)) == pytest.approx(0.9, abs=1e-3)


def test_unknown_distractor_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown distractor kind"):
        synth.generate_distractor("violin", 1.0, np.random.default_rng(0))


def _envelope_peak(x: np.ndarray, low_hz: float = 4, high_hz: float = 35,
                   highpass_hz: float | None = 500) -> tuple[float, float]:
    """The strongest modulation of the envelope (above `highpass_hz`) in `low_hz`-`high_hz`, and how far it
    stands out (power over the band's median)."""
    if highpass_hz is not None:
        x = signal.sosfilt(signal.butter(4, highpass_hz, "highpass", fs=SR, output="sos"), x)
    envelope = np.abs(signal.hilbert(x))[::16]  # 1 kHz
    freqs, power = signal.welch(envelope - envelope.mean(), 1000, nperseg=1024)
    band = (freqs > low_hz) & (freqs < high_hz)
    return float(freqs[band][np.argmax(power[band])]), float(power[band].max() / np.median(power[band]))


@pytest.mark.parametrize("seed", range(6))
def test_a_jackhammer_pulses_at_a_breakers_blow_rate(seed: int) -> None:
    """The envelope repeats at 8-28 Hz, as UrbanSound8K's breakers do (9-27 Hz), far above the rest of its
    modulation spectrum (plain pink noise: about 3x); RMS 0.05; a seed reproduces it."""
    x = synth.generate_jackhammer(3 * SR, np.random.default_rng(seed))
    assert np.array_equal(x, synth.generate_jackhammer(3 * SR, np.random.default_rng(seed)))
    assert float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) == pytest.approx(0.05, rel=1e-3)
    rate_hz, prominence = _envelope_peak(x)
    assert 7.5 <= rate_hz <= 29.0 and prominence > 20
    assert _envelope_peak(0.05 * synth.pink_noise(3 * SR, np.random.default_rng(seed)))[1] < 10


def _envelope_prominence(x: np.ndarray) -> float:
    """How far the strongest envelope modulation in 8-70 Hz (an engine's firing rate) stands out."""
    return _envelope_peak(x, 8, 70, None)[1]


def _share_below_1khz(x: np.ndarray) -> float:
    freqs, power = signal.welch(x, SR, nperseg=2048)
    return float(power[freqs < 1000].sum() / power.sum())


@pytest.mark.parametrize("name", synth.CLASS_GENERATORS)
def test_class_generators_are_reproducible_at_rms_0_05(name: str) -> None:
    generate = synth.CLASS_GENERATORS[name]
    x = generate(3 * SR, np.random.default_rng(3), SR)
    assert x.dtype == np.float32 and x.shape == (3 * SR,) and np.isfinite(x).all()
    assert np.array_equal(x, generate(3 * SR, np.random.default_rng(3), SR))
    assert float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) == pytest.approx(0.05, rel=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_an_idling_engine_pulses_below_1_khz_and_an_air_conditioner_is_steady(seed: int) -> None:
    """Real idling engines in UrbanSound8K pulse at their firing rate with most energy below 1 kHz; air
    conditioners hum as low but hardly pulse (plain pink noise: prominence about 3-5)."""
    engine = synth.generate_engine_idling(3 * SR, np.random.default_rng(seed))
    conditioner = synth.generate_air_conditioner(3 * SR, np.random.default_rng(seed))
    assert _envelope_prominence(engine) > 50 and _share_below_1khz(engine) > 0.75
    assert _envelope_prominence(conditioner) < 15 and _share_below_1khz(conditioner) > 0.85
