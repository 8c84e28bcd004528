"""Shared fixtures: a tiny int8 model trained here on generated audio, and helpers to write audio files.

The tests must run without the shipped model and without /work/shared, so the session trains its own
model (a few seconds) through the same features, fit and export code the real model goes through.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from detector import synth
from detector.features import compute_features

SR = 16000
WINDOW = 2 * SR
LABELS = ("non_emergency", "emergency")


def traffic_window(rng: np.random.Generator, n: int = WINDOW) -> np.ndarray:
    """Generated road traffic at a random street level."""
    return synth.generate_traffic(n, rng, rms_dbfs=float(rng.uniform(-32.0, -20.0)))


def siren_over_traffic(kind: str, rng: np.random.Generator, snr_db: float, n: int = WINDOW) -> np.ndarray:
    """A generated siren mixed over generated traffic at `snr_db` (RMS against RMS)."""
    background = traffic_window(rng, n)
    siren = synth.generate_siren(kind, n / SR, rng)
    gain = np.sqrt(np.mean(background**2)) * 10.0 ** (snr_db / 20.0) / np.sqrt(np.mean(siren**2))
    return (background + gain * siren).astype(np.float32)


@dataclass(frozen=True)
class TinyTraining:
    """The exported tiny model, its card as written, and the float Keras model it came from."""

    path: Path
    card: dict[str, Any]
    keras_model: Any


def _tiny_build(shape: tuple[int, int], n_labels: int) -> Any:
    """Mean and peak log-mel spectrum -> 8 units -> softmax: enough to tell a siren's tones from traffic."""
    import keras
    from keras import layers

    inputs = keras.Input(shape)
    x = layers.Concatenate()([
        layers.GlobalAveragePooling1D()(inputs),
        layers.GlobalMaxPooling1D()(inputs),
    ])
    x = layers.Dense(8, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(n_labels, activation="softmax")(x), name="tiny")


@pytest.fixture(scope="session")
def tiny_training(tmp_path_factory: pytest.TempPathFactory) -> TinyTraining:
    """Train and export a tiny model on 200 generated windows (100 sirens over traffic, 100 traffic)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from train.export import export_model
    from train.fit import FitSettings, fit_model, standardised_recipe
    from train.models import LOGMEL_64, Architecture

    rng = np.random.default_rng(1234)
    negatives = [traffic_window(rng) for _ in range(100)]
    positives = [siren_over_traffic(synth.SIREN_KINDS[i % len(synth.SIREN_KINDS)], rng, rng.uniform(5.0, 20.0))
                 for i in range(100)]
    windows = np.array(negatives + positives, dtype=np.float32)
    labels = np.array([0] * len(negatives) + [1] * len(positives))

    raw = compute_features(windows, dataclasses.replace(LOGMEL_64, standardise="none"))
    recipe = standardised_recipe(LOGMEL_64, raw)
    features = compute_features(windows, recipe)
    arch = Architecture("tiny", recipe, _tiny_build, False, "tiny test model")
    model = fit_model(arch, features, labels, len(LABELS),
                      FitSettings(epochs=40, batch_size=32, learning_rate=1e-2, verbose=0, label_smoothing=0.0))
    card = {
        "name": "tiny",
        "labels": list(LABELS),
        "positive_labels": ["emergency"],
        "sample_rate": SR,
        "window_s": 2.0,
        "hop_s": 1.0,
        "features": recipe.to_dict(),
        "threshold": 0.5,
    }
    out = tmp_path_factory.mktemp("tiny_model") / "tiny.tflite"
    written = export_model(model, features[::2], features, 1, 0.5, card, out)
    return TinyTraining(out, written, model)


@pytest.fixture(scope="session")
def tiny_model(tiny_training: TinyTraining) -> Path:
    """Path of the tiny int8 .tflite; its .json card lies beside it."""
    return tiny_training.path


@pytest.fixture
def tiny_card(tiny_training: TinyTraining) -> dict[str, Any]:
    """A private copy of the tiny model's card, free to be edited by one test."""
    return copy.deepcopy(json.loads(tiny_training.path.with_suffix(".json").read_text()))


@pytest.fixture
def model_variant(tmp_path: Path, tiny_model: Path) -> Callable[..., Path]:
    """Write a copy of the tiny model into a fresh folder, with other bytes and/or another card.

    `tflite`: the model bytes (default the tiny model's); `card`: the card to write (default the tiny
    model's own); `without_card`: write no card at all.
    """
    counter = iter(range(1_000_000))

    def make(*, tflite: bytes | None = None, card: dict[str, Any] | None = None,
             without_card: bool = False) -> Path:
        folder = tmp_path / f"variant{next(counter)}"
        folder.mkdir()
        path = folder / "model.tflite"
        path.write_bytes(tiny_model.read_bytes() if tflite is None else tflite)
        if not without_card:
            text = tiny_model.with_suffix(".json").read_text() if card is None else json.dumps(card)
            path.with_suffix(".json").write_text(text)
        return path

    return make


@pytest.fixture
def write_audio(tmp_path: Path) -> Callable[..., Path]:
    """Write samples (frames,) or (frames, channels) with soundfile; the name's suffix picks the format."""

    def write(name: str, samples: np.ndarray, sample_rate: int = SR, **kwargs: Any) -> Path:
        path = tmp_path / name
        sf.write(str(path), samples, sample_rate, **kwargs)
        return path

    return write
