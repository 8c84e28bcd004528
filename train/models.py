"""The model zoo: the tutorial family this project grew from, and the small CNN designed for the Pi.

Each architecture names the feature recipe it eats, so training, export and the runtime agree. All end in
a softmax over the labels; the runtime reads the positive label's probability as the score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers, ops

from detector.features import FeatureRecipe

SEED_LOGSPEC = FeatureRecipe(kind="logspec", frame_length=320, hop_length=160, n_fft=320)
MFCC_40 = FeatureRecipe(kind="mfcc", frame_length=400, hop_length=160, n_fft=512, n_mels=64, n_mfcc=40)
LOGMEL_64 = FeatureRecipe(kind="logmel", frame_length=512, hop_length=480, n_fft=512, n_mels=64)
LOGMEL_64_WINDOW = FeatureRecipe(kind="logmel", frame_length=512, hop_length=480, n_fft=512, n_mels=64,
                                 standardise="window")
LOGMEL_64_BAND = FeatureRecipe(kind="logmel", frame_length=512, hop_length=480, n_fft=512, n_mels=64,
                               standardise="band")
PCEN_64_WINDOW = FeatureRecipe(kind="pcen", frame_length=512, hop_length=480, n_fft=512, n_mels=64,
                               standardise="window")
PCEN_64_FAST_WINDOW = dataclasses.replace(PCEN_64_WINDOW, pcen_time_constant=0.2)  # follows level changes faster
WAVEFORM = FeatureRecipe(kind="waveform", standardise="none")


@dataclass(frozen=True)
class Architecture:
    """A named model family: its features, its builder and whether it is one of the tutorial baselines."""

    name: str
    recipe: FeatureRecipe
    build: Callable[[tuple[int, int], int], keras.Model]
    tutorial: bool
    description: str


def _mfcc_dense(shape: tuple[int, int], n_labels: int) -> keras.Model:
    """Tutorial: the MFCC-40 mean over time into a dense net."""
    inputs = keras.Input(shape)
    x = layers.GlobalAveragePooling1D()(inputs)
    for units in (256, 128):
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(n_labels, activation="softmax")(x), name="mfcc_dense")


def _conv1d_raw(shape: tuple[int, int], n_labels: int) -> keras.Model:
    """Tutorial: strided Conv1D layers straight on the waveform."""
    inputs = keras.Input(shape)
    x = layers.Conv1D(16, 64, strides=8, activation="relu")(inputs)
    x = layers.MaxPooling1D(4)(x)
    for filters in (32, 64):
        x = layers.Conv1D(filters, 9, strides=2, activation="relu")(x)
        x = layers.MaxPooling1D(4)(x)
    x = layers.GlobalAveragePooling1D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(n_labels, activation="softmax")(x), name="conv1d_raw")


def _logspec_cnn(shape: tuple[int, int], n_labels: int) -> keras.Model:
    """Tutorial: the seed log spectrogram as an image into a plain Conv2D/MaxPool stack."""
    inputs = keras.Input(shape)
    x = layers.Reshape((*shape, 1))(inputs)
    x = layers.Conv2D(8, 3, strides=2, activation="relu", padding="same")(x)
    x = layers.MaxPooling2D(2)(x)
    for filters in (16, 32):
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(64, activation="relu")(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, layers.Dense(n_labels, activation="softmax")(x), name="logspec_cnn")


def _lstm(shape: tuple[int, int], n_labels: int) -> keras.Model:
    """Tutorial: an LSTM over log-mel frames (unrolled, the only form that converts to int8)."""
    inputs = keras.Input(shape)
    x = layers.MaxPooling1D(2)(inputs)
    x = layers.LSTM(48, unroll=True)(x)
    x = layers.Dense(32, activation="relu")(x)
    return keras.Model(inputs, layers.Dense(n_labels, activation="softmax")(x), name="lstm")


class SpecAugment(layers.Layer):
    """Training-time masks over (frames, bins): `masks` time bands up to `time_width` frames and as many
    frequency bands up to `freq_width` bins, each set to 0 (the mean of standardised features).

    The model fits its training windows almost perfectly (99.7 % accuracy) yet misses half the held-out
    sirens; hiding parts of each window makes it rely on more than one cue. At inference it is the identity,
    so the exported int8 graph has no trace of it.
    """

    def __init__(self, time_width: int, freq_width: int, masks: int = 2, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.time_width, self.freq_width, self.masks = time_width, freq_width, masks
        self.seed_generator = keras.random.SeedGenerator()

    def _keep(self, batch: object, length: int, max_width: int) -> object:
        """Per example, 0 on one random band of 0..max_width positions along an axis of `length`, else 1."""
        width = ops.floor(keras.random.uniform((batch, 1), 0, max_width + 1, seed=self.seed_generator))
        start = ops.floor(keras.random.uniform((batch, 1), seed=self.seed_generator) * (length - width + 1))
        positions = ops.cast(ops.arange(length)[None, :], "float32")
        return 1.0 - ops.cast((positions >= start) & (positions < start + width), "float32")

    def call(self, inputs: object, training: bool | None = None) -> object:
        if not training:
            return inputs
        batch, frames, bins = ops.shape(inputs)[0], inputs.shape[1], inputs.shape[2]
        keep = ops.ones_like(inputs)
        for _ in range(self.masks):
            keep = keep * self._keep(batch, frames, self.time_width)[:, :, None]
            keep = keep * self._keep(batch, bins, self.freq_width)[:, None, :]
        return inputs * keep

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "time_width": self.time_width, "freq_width": self.freq_width,
                "masks": self.masks}


def _separable_block(x: keras.KerasTensor, filters: int, stride: int) -> keras.KerasTensor:
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.Conv2D(filters, 1, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def dscnn_builder(width: int, blocks: tuple[tuple[int, int], ...], spec_augment: bool = False
                  ) -> Callable[[tuple[int, int], int], keras.Model]:
    """A depthwise-separable CNN on log-mel: cheap per multiply, built for a Pi's single core.

    `blocks` are (filter multiple of `width`, stride) pairs after a strided 3x3 stem; `spec_augment` masks
    about a third of the frames and an eighth of the bins while training.
    """

    def build(shape: tuple[int, int], n_labels: int) -> keras.Model:
        inputs = keras.Input(shape)
        x = SpecAugment(time_width=shape[0] // 6, freq_width=shape[1] // 8)(inputs) if spec_augment else inputs
        x = layers.Reshape((*shape, 1))(x)
        x = layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x)
        for multiple, stride in blocks:
            x = _separable_block(x, width * multiple, stride)
        x = layers.GlobalAveragePooling2D()(x)
        x = layers.Dropout(0.2)(x)
        return keras.Model(inputs, layers.Dense(n_labels, activation="softmax")(x), name="dscnn")

    return build


DSCNN_BLOCKS = ((2, 1), (3, 2), (3, 1), (4, 2), (4, 1), (6, 2))

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture("mfcc_dense", MFCC_40, _mfcc_dense, True, "MFCC-40 mean -> dense 256-128"),
        Architecture("conv1d_raw", WAVEFORM, _conv1d_raw, True, "raw waveform -> Conv1D x3"),
        Architecture("logspec_cnn", SEED_LOGSPEC, _logspec_cnn, True, "seed log spectrogram -> Conv2D x3"),
        Architecture("lstm", LOGMEL_64, _lstm, True, "log-mel frames -> LSTM 48 (unrolled)"),
        Architecture("dscnn_s", LOGMEL_64, dscnn_builder(16, DSCNN_BLOCKS), False,
                     "log-mel 64 -> depthwise-separable CNN, width 16"),
        Architecture("dscnn_s_window_sa", LOGMEL_64_WINDOW, dscnn_builder(16, DSCNN_BLOCKS, spec_augment=True),
                     False, "log-mel 64, each window standardised, SpecAugment while training -> "
                     "depthwise-separable CNN, width 16"),
        Architecture("dscnn_m", LOGMEL_64, dscnn_builder(24, DSCNN_BLOCKS), False,
                     "log-mel 64 -> depthwise-separable CNN, width 24"),
        Architecture("dscnn_m_window", LOGMEL_64_WINDOW, dscnn_builder(24, DSCNN_BLOCKS), False,
                     "log-mel 64, each window standardised -> depthwise-separable CNN, width 24"),
        Architecture("dscnn_m_sa", LOGMEL_64, dscnn_builder(24, DSCNN_BLOCKS, spec_augment=True), False,
                     "log-mel 64, SpecAugment while training -> depthwise-separable CNN, width 24"),
        Architecture("dscnn_m_window_sa", LOGMEL_64_WINDOW, dscnn_builder(24, DSCNN_BLOCKS, spec_augment=True),
                     False, "log-mel 64, each window standardised, SpecAugment while training -> "
                     "depthwise-separable CNN, width 24"),
        Architecture("dscnn_m_pcen", PCEN_64_WINDOW, dscnn_builder(24, DSCNN_BLOCKS), False,
                     "mel 64 with per-channel energy normalisation, each window standardised -> "
                     "depthwise-separable CNN, width 24"),
        Architecture("dscnn_m_pcen_sa", PCEN_64_WINDOW, dscnn_builder(24, DSCNN_BLOCKS, spec_augment=True),
                     False, "mel 64 with per-channel energy normalisation, each window standardised, SpecAugment "
                     "while training -> depthwise-separable CNN, width 24"),
        Architecture("dscnn_m_pcen_fast_sa", PCEN_64_FAST_WINDOW,
                     dscnn_builder(24, DSCNN_BLOCKS, spec_augment=True), False,
                     "mel 64 with per-channel energy normalisation smoothed over 0.2 s, each window standardised, "
                     "SpecAugment while training -> depthwise-separable CNN, width 24"),
        Architecture("dscnn_w28_pcen_fast_sa", PCEN_64_FAST_WINDOW,
                     dscnn_builder(28, DSCNN_BLOCKS, spec_augment=True), False,
                     "mel 64 with per-channel energy normalisation smoothed over 0.2 s, each window standardised, "
                     "SpecAugment while training -> depthwise-separable CNN, width 28"),
        Architecture("dscnn_m_band_sa", LOGMEL_64_BAND, dscnn_builder(24, DSCNN_BLOCKS, spec_augment=True),
                     False, "log-mel 64, each band's mean over the window removed, SpecAugment while training -> "
                     "depthwise-separable CNN, width 24"),
        Architecture("dscnn_l_band_sa", LOGMEL_64_BAND, dscnn_builder(32, DSCNN_BLOCKS, spec_augment=True),
                     False, "log-mel 64, each band's mean over the window removed, SpecAugment while training -> "
                     "depthwise-separable CNN, width 32"),
        Architecture("dscnn_l", LOGMEL_64, dscnn_builder(32, DSCNN_BLOCKS), False,
                     "log-mel 64 -> depthwise-separable CNN, width 32"),
        Architecture("dscnn_l_window", LOGMEL_64_WINDOW, dscnn_builder(32, DSCNN_BLOCKS), False,
                     "log-mel 64, each window standardised -> depthwise-separable CNN, width 32"),
        Architecture("dscnn_l_window_sa", LOGMEL_64_WINDOW, dscnn_builder(32, DSCNN_BLOCKS, spec_augment=True),
                     False, "log-mel 64, each window standardised, SpecAugment while training -> "
                     "depthwise-separable CNN, width 32"),
    )
}


def ensemble_members(name: str) -> list[str]:
    """`a+b` names an ensemble of the models a and b (the mean of their probabilities)."""
    return name.split("+")


def architecture_name(name: str) -> str:
    """The architecture a model name builds: `a@1` is architecture a, trained with fit seed 1."""
    return name.partition("@")[0]


def architecture_of(name: str) -> Architecture:
    return ARCHITECTURES[architecture_name(name)]


def fit_seed_of(name: str, default: int) -> int:
    """The fit seed a model name asks for (`a@1`), else the run's: two seeds of one network are two models."""
    seed = name.partition("@")[2]
    return int(seed) if seed else default


def is_model_name(name: str) -> bool:
    """An architecture's name, optionally with `@N` (N a non-negative integer)."""
    base, at, seed = name.partition("@")
    return base in ARCHITECTURES and (not at or seed.isdigit())


PCEN_FIELDS = ("pcen_time_constant", "pcen_gain", "pcen_bias", "pcen_power")  # what only PCEN reads


def joined_recipe(recipes: list[FeatureRecipe]) -> FeatureRecipe | None:
    """The one recipe a graph averaging networks that read `recipes` takes in: theirs where they share it;
    log-mel and per-window PCEN agreeing on the spectrogram and mel bands stack into `logmel_pcen` (the log-mel
    half standardised as the log-mel network's, `input_bins` cuts each network's half); None where the
    networks cannot share one input."""
    if all(recipe == recipes[0] for recipe in recipes):
        return recipes[0]
    log_mel = {recipe for recipe in recipes if recipe.kind == "logmel"}
    per_channel = {recipe for recipe in recipes if recipe.kind == "pcen"}
    if len(log_mel) != 1 or len(per_channel) != 1 or len(log_mel) + len(per_channel) != len(set(recipes)):
        return None
    (log_mel_recipe,), (pcen_recipe,) = log_mel, per_channel
    joined = dataclasses.replace(pcen_recipe, kind="logmel_pcen", standardise=log_mel_recipe.standardise,
                                 mean=log_mel_recipe.mean, std=log_mel_recipe.std)
    pcen_fields = {name: getattr(pcen_recipe, name) for name in PCEN_FIELDS}
    if pcen_recipe.standardise != "window" or dataclasses.replace(
            log_mel_recipe, kind="logmel_pcen", **pcen_fields) != joined:
        return None
    return joined


def ensemble_recipe(name: str) -> FeatureRecipe | None:
    """The recipe the ensemble `name` is exported with (one graph, one input), or None if there is none."""
    return joined_recipe([architecture_of(member).recipe for member in ensemble_members(name)])


def input_bins(recipe: FeatureRecipe, joined: FeatureRecipe) -> tuple[int, int]:
    """The [start, stop) bins of the `joined` recipe's features that a network trained on `recipe` reads."""
    if joined.kind != "logmel_pcen":
        return 0, joined.n_bins
    start = 0 if recipe.kind == "logmel" else recipe.n_mels
    return start, start + recipe.n_mels


def describe(name: str) -> str:
    """The architecture's description, naming the fit seed where the name sets one (reports and cards)."""
    seed = name.partition("@")[2]
    return architecture_of(name).description + (f" (fit seed {seed})" if seed else "")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass, counted from the layers' shapes."""
    total = 0
    for layer in model.layers:
        if not hasattr(layer, "output") or isinstance(layer, keras.layers.InputLayer):
            continue
        out_shape = layer.output.shape
        if isinstance(layer, layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += out_shape[1] * out_shape[2] * out_shape[3] * kh * kw
        elif isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            total += out_shape[1] * out_shape[2] * out_shape[3] * kh * kw * layer.input.shape[-1]
        elif isinstance(layer, layers.Conv1D):
            total += out_shape[1] * out_shape[2] * layer.kernel_size[0] * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
        elif isinstance(layer, layers.LSTM):
            steps, features = layer.input.shape[1], layer.input.shape[2]
            total += steps * 4 * layer.units * (features + layer.units)
    return int(total)
