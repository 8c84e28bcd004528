"""The shared feature code: tones land in the right bins, and streams give exactly what files give."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from detector.features import FeatureRecipe, compute_features, mel_filterbank, mel_to_hz
from detector.windows import StreamWindower, WindowSpec, cut_windows

RATE = 16000
SPEC = WindowSpec.from_seconds(RATE, 2.0, 1.0)


def tone(frequency: float, seconds: float = 2.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def two_tone_over_hum() -> np.ndarray:
    """2 s of a 435/580 Hz two-tone siren (0.5 s each) over a steady 3 kHz hum, with hiss in every band."""
    t = np.arange(SPEC.window) / RATE
    two_tone = np.where((t // 0.5) % 2 == 0, np.sin(2 * np.pi * 435 * t), np.sin(2 * np.pi * 580 * t))
    hiss = 0.003 * np.random.default_rng(0).standard_normal(len(t))  # every band above the log floor
    return (0.3 * two_tone + 0.3 * np.sin(2 * np.pi * 3000 * t) + hiss).astype(np.float32)


@pytest.mark.parametrize("frequency", [250.0, 435.0, 1000.0, 3150.0])
def test_tone_peaks_in_its_spectrogram_bin(frequency: float) -> None:
    recipe = FeatureRecipe(kind="logspec", frame_length=320, hop_length=160, n_fft=320, standardise="none")
    features = compute_features(tone(frequency), recipe)
    assert features.shape == recipe.shape(SPEC.window) == (199, 161)
    peak_bins = features.argmax(axis=1)
    assert np.all(peak_bins == round(frequency / (RATE / recipe.n_fft)))


@pytest.mark.parametrize("frequency", [300.0, 488.0, 1200.0, 5000.0])
def test_tone_peaks_in_the_mel_band_centred_nearest(frequency: float) -> None:
    recipe = FeatureRecipe(kind="logmel", frame_length=512, hop_length=480, n_fft=512, n_mels=64,
                           standardise="none")
    features = compute_features(tone(frequency), recipe)
    centres = mel_to_hz(np.linspace(*[2595 * np.log10(1 + f / 700) for f in (recipe.fmin, recipe.fmax)],
                                    recipe.n_mels + 2))[1:-1]
    expected = int(np.argmin(np.abs(centres - frequency)))
    assert abs(int(np.median(features.argmax(axis=1))) - expected) <= 1


def test_two_tone_pair_is_resolved_by_the_mel_bands() -> None:
    """435 and 488 Hz (a European two-tone siren) must not fall into one band."""
    recipe = FeatureRecipe(kind="logmel", frame_length=512, hop_length=480, n_fft=512, n_mels=64)
    low = compute_features(tone(435.0), recipe).mean(axis=0).argmax()
    high = compute_features(tone(488.0), recipe).mean(axis=0).argmax()
    assert high > low


def test_mel_filterbank_covers_the_band_without_gaps() -> None:
    bank = mel_filterbank(RATE, 512, 64, 50.0, 8000.0)
    bin_hz = np.linspace(0, RATE / 2, 257)
    inside = (bin_hz > 80) & (bin_hz < 7500)
    assert np.all(bank[inside].sum(axis=1) > 0.5)
    assert np.all(bank[bin_hz < 40].sum(axis=1) == 0)


def test_level_changes_shift_log_features_by_a_constant() -> None:
    """Log features turn a gain into an offset: 20 dB louder is ln(100) higher in every loud bin."""
    recipe = FeatureRecipe(kind="logmel", standardise="none", log_floor=1e-12)
    quiet, loud = compute_features(tone(1000.0, amplitude=0.01), recipe), compute_features(
        tone(1000.0, amplitude=0.1), recipe)
    band = quiet.mean(axis=0).argmax()
    assert np.allclose(loud[:, band] - quiet[:, band], np.log(100.0), atol=1e-3)


def test_window_standardisation_gives_zero_mean_unit_variance() -> None:
    recipe = FeatureRecipe(kind="mfcc", standardise="window")
    features = compute_features(np.random.default_rng(0).standard_normal(SPEC.window).astype(np.float32) * 0.1,
                                recipe)
    assert features.shape == (198, 40)
    assert abs(features.mean()) < 1e-4 and abs(features.std() - 1) < 1e-3


def test_band_standardisation_removes_what_stays_constant_in_each_band() -> None:
    """Each band's level over the window is removed: a steady hum's band goes flat, a gain changes nothing,
    and the siren's alternation is what is left."""
    recipe = FeatureRecipe(kind="logmel", standardise="band", log_floor=1e-12)
    scene = two_tone_over_hum()
    features = compute_features(scene, recipe)
    assert np.allclose(features.mean(axis=0), 0, atol=1e-4) and abs(features.std() - 1) < 1e-3
    centre = mel_filterbank(RATE, 512, 64, 50.0, 8000.0).argmax(axis=1)  # FFT bin -> its strongest band
    hum_band, siren_band = centre[round(3000 * 512 / RATE)], centre[round(435 * 512 / RATE)]
    assert features[:, hum_band].std() < 0.1 * features[:, siren_band].std()
    assert np.allclose(compute_features(scene * 0.05, recipe), features, atol=5e-3)  # 26 dB down: the same


def test_pcen_sinks_a_steady_hum_to_the_floor_and_keeps_a_sirens_alternation() -> None:
    """Under per-channel energy normalisation a loud steady hum ends up level with a band of faint hiss,
    while each change of a two-tone siren's tone still stands out, at any level. (In log-mel the hum's band
    sits as high as the siren's peaks.)"""
    scene = two_tone_over_hum()
    centre = mel_filterbank(RATE, 512, 64, 50.0, 8000.0).argmax(axis=1)
    hum_band, siren_band, hiss_band = (centre[round(hz * 512 / RATE)] for hz in (3000, 435, 6000))
    recipe = FeatureRecipe(kind="pcen", standardise="window")
    features = compute_features(scene, recipe)
    assert abs(features[:, hum_band].mean() - features[:, hiss_band].mean()) < 0.5
    assert features[:, siren_band].max() - features[:, hum_band].mean() > 1.0
    log_mel = compute_features(scene, dataclasses.replace(recipe, kind="logmel"))
    assert log_mel[:, siren_band].max() - log_mel[:, hum_band].mean() < 0.5  # what PCEN changes
    unscaled = dataclasses.replace(recipe, standardise="none")
    loud, quiet = compute_features(scene, unscaled), compute_features(scene * 0.05, unscaled)  # 26 dB down
    assert 0.8 < quiet[:, siren_band].std() / loud[:, siren_band].std() < 1.0  # the swing shrinks a little


def test_pcen_smoother_equals_the_scipy_filter() -> None:
    """The runtime's matrix product is the one-pole low-pass scipy.signal.lfilter defines, started at the
    first frame."""
    from scipy.signal import lfilter

    from detector.features import pcen

    recipe = FeatureRecipe(kind="pcen", hop_length=480, frame_length=512)
    energy = np.random.default_rng(3).exponential(1e-4, size=(2, 66, 8)).astype(np.float64)
    weight = 1.0 - np.exp(-480 / RATE / recipe.pcen_time_constant)
    smoothed, _ = lfilter([weight], [1.0, weight - 1.0], energy, axis=1,
                          zi=(1.0 - weight) * energy[:, :1, :])
    expected = (energy / (recipe.log_floor + smoothed) ** 0.98 + 2.0) ** 0.5 - 2.0**0.5
    np.testing.assert_allclose(pcen(energy, recipe), expected, rtol=1e-6)


def test_global_standardisation_uses_the_card_values() -> None:
    raw = FeatureRecipe(kind="logmel", standardise="none")
    scaled = dataclasses.replace(raw, standardise="global", mean=-7.5, std=2.5)
    window = tone(700.0)
    assert np.allclose(compute_features(window, scaled), (compute_features(window, raw) + 7.5) / 2.5,
                       atol=1e-5)


def test_batch_and_single_window_features_agree() -> None:
    recipe = FeatureRecipe(kind="logmel")
    windows = np.random.default_rng(1).standard_normal((3, SPEC.window)).astype(np.float32) * 0.2
    batch = compute_features(windows, recipe)
    for row, window in enumerate(windows):
        assert np.allclose(batch[row], compute_features(window, recipe), atol=1e-5)


@pytest.mark.parametrize("chunk_sizes", [[1024], [160, 7, 4096, 333], [SPEC.window * 3]])
def test_streamed_windows_and_features_equal_the_file_ones(chunk_sizes: list[int]) -> None:
    """A microphone delivers audio in arbitrary blocks; the model must see the same windows anyway."""
    rng = np.random.default_rng(2)
    audio = (rng.standard_normal(RATE * 9 + 1234) * 0.1).astype(np.float32)
    file_windows, file_starts = cut_windows(audio, SPEC)
    windower = StreamWindower(SPEC)
    streamed, position, turn = [], 0, 0
    while position < len(audio):
        size = chunk_sizes[turn % len(chunk_sizes)]
        streamed.extend(windower.push(audio[position : position + size]))
        position += size
        turn += 1
    assert [start for start, _ in streamed] == list(file_starts)
    for recipe in (FeatureRecipe(kind="logmel"), FeatureRecipe(kind="pcen", standardise="window")):
        assert np.array_equal(compute_features(np.stack([w for _, w in streamed]), recipe),
                              compute_features(file_windows, recipe))


def test_short_clip_gives_one_zero_padded_window() -> None:
    windows, starts = cut_windows(tone(440.0, seconds=0.7), SPEC)
    assert windows.shape == (1, SPEC.window) and list(starts) == [0]
    assert np.all(windows[0, round(0.7 * RATE):] == 0)


def test_waveform_recipe_passes_samples_through() -> None:
    window = tone(100.0)
    features = compute_features(window, FeatureRecipe(kind="waveform", standardise="none"))
    assert features.shape == (SPEC.window, 1) and np.array_equal(features[:, 0], window)


def test_numpy_features_equal_the_scipy_definitions() -> None:
    """Hann window, FFT and DCT are numpy in the runtime; they must equal what scipy defines."""
    import scipy.fft
    from scipy.signal import get_window

    from detector.features import _analysis_window, _dct_matrix

    np.testing.assert_allclose(_analysis_window(400), get_window("hann", 400, fftbins=True), atol=1e-7)
    values = np.random.default_rng(0).standard_normal((5, 40)).astype(np.float32)
    np.testing.assert_allclose(values @ _dct_matrix(40, 13),
                               scipy.fft.dct(values, type=2, norm="ortho", axis=-1)[:, :13], atol=1e-5)
