"""Fitting one Keras model on feature matrices, with class balance and a cosine learning-rate decay."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from detector.features import FeatureRecipe
from train.models import Architecture


@dataclass(frozen=True)
class FitSettings:
    """`teacher_weight`: share of the teacher's score in the targets of real windows (0 = hard labels only);
    `hard_negative_weight`: loss weight of real non-siren windows that the teacher scores as sirens;
    `label_smoothing` keeps the softmax off 0 and 1, where int8 outputs (steps of 1/256) cannot rank;
    `mine_epochs` > 0: the last `mine_epochs` of `epochs` continue (same learning-rate schedule) with the
    `mine_fraction` of real non-siren training windows the model itself scores highest weighted by
    `mine_weight` (two-pass hard-negative mining, on the fold's own training windows only);
    `mimic_weight` > 0: the loss weight of predicting the teacher's embedding (see `fit_model`);
    `mixup_alpha` > 0: every batch is mixed with a shuffled copy of itself, features, targets and loss weights
    alike, at a share drawn per window from Beta(alpha, alpha) (mixup, Zhang et al. 2018)."""

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    verbose: int = 2
    teacher_weight: float = 0.0
    hard_negative_weight: float = 1.0
    label_smoothing: float = 0.1
    mine_epochs: int = 0
    mine_fraction: float = 0.1
    mine_weight: float = 3.0
    mimic_weight: float = 0.0
    mixup_alpha: float = 0.0


def recorded_settings(settings: FitSettings) -> dict[str, Any]:
    """The settings that shape a fit, as saved beside its scores for `--reuse-cv` to compare: not the
    verbosity, and mixup only when on, so records made before it existed still match."""
    return {k: v for k, v in dataclasses.asdict(settings).items()
            if k != "verbose" and not (k == "mixup_alpha" and v == 0)}


class _MixupBatches(keras.utils.PyDataset):
    """Shuffled batches, each window mixed with another of the epoch's (a second permutation) at a share
    drawn from Beta(alpha, alpha), kept >= 0.5 so the window stays the larger part. One random stream drawn in
    batch order, so a fit repeats."""

    def __init__(self, features: np.ndarray, targets: np.ndarray, weights: np.ndarray, batch_size: int,
                 alpha: float, seed: int) -> None:
        super().__init__()
        self.features, self.targets, self.weights = features, targets, weights.astype(np.float32)
        self.batch_size, self.alpha = batch_size, alpha
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return int(np.ceil(len(self.targets) / self.batch_size))

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        partners = self.partner[rows]
        share = self.rng.beta(self.alpha, self.alpha, len(rows)).astype(np.float32)
        share = np.maximum(share, 1.0 - share)
        mixed = share.reshape(-1, *[1] * (self.features.ndim - 1))
        return (mixed * self.features[rows] + (1.0 - mixed) * self.features[partners],
                share[:, None] * self.targets[rows] + (1.0 - share[:, None]) * self.targets[partners],
                share * self.weights[rows] + (1.0 - share) * self.weights[partners])

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.targets))
        self.partner = self.rng.permutation(len(self.targets))


def standardised_recipe(recipe: FeatureRecipe, features: np.ndarray) -> FeatureRecipe:
    """The recipe with the training features' global mean and std filled in (none for raw waveforms)."""
    if recipe.standardise != "global":
        return recipe
    return dataclasses.replace(recipe, mean=round(float(features.mean()), 5),
                               std=round(float(features.std()), 5))


def fit_model(architecture: Architecture, features: np.ndarray, labels: np.ndarray, n_labels: int,
              settings: FitSettings, sample_weight: np.ndarray | None = None,
              targets: np.ndarray | None = None,
              mine: Callable[[keras.Model], np.ndarray] | None = None,
              embedding_targets: np.ndarray | None = None,
              embedding_weights: np.ndarray | None = None) -> keras.Model:
    """Train from scratch; `features` must already be standardised with the recipe's mean and std.

    `targets` (n, n_labels) replaces the one-hot labels where a teacher softens them; class balance is
    still computed from the hard `labels`. With `settings.mine_epochs` > 0, `mine(model)` is called after
    the first pass and returns per-example loss-weight factors for the remaining epochs. With
    `embedding_targets` (n, k) and `settings.mimic_weight` > 0, a linear layer on the features under the
    classifier also learns to predict them (mean squared error at that weight): the student copies the
    teacher's representation, not only its answers; `embedding_weights` (n,) weighs that loss per row (0
    where there is no teacher embedding to copy; default 1 everywhere). The returned model is the classifier
    alone.
    """
    keras.utils.set_random_seed(settings.seed)
    model = architecture.build(features.shape[1:], n_labels)
    steps = settings.epochs * int(np.ceil(len(labels) / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing)
    counts = np.bincount(labels, minlength=n_labels).astype(float)
    class_weight = len(labels) / (n_labels * np.maximum(counts, 1))
    weights = class_weight[labels] * (1.0 if sample_weight is None else sample_weight)
    if targets is None:
        targets = np.eye(n_labels, dtype=np.float32)[labels]
    mining = mine is not None and 0 < settings.mine_epochs < settings.epochs
    if embedding_targets is not None and settings.mimic_weight > 0:
        assert not mining, "mimicry and hard-negative mining do not mix"
        embedding = keras.layers.Dense(embedding_targets.shape[1], name="mimic")(model.layers[-1].input)
        mimicking = keras.Model(model.inputs, [model.outputs[0], embedding])
        mimicking.compile(optimizer=keras.optimizers.Adam(schedule), loss=[loss, keras.losses.MeanSquaredError()],
                          loss_weights=[1.0, settings.mimic_weight])
        mimicking.fit(features, [targets, embedding_targets],
                      sample_weight=[weights, np.ones(len(weights), np.float32) if embedding_weights is None
                                     else embedding_weights.astype(np.float32)], epochs=settings.epochs,
                      batch_size=settings.batch_size, shuffle=True, verbose=settings.verbose)
        return model
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=["categorical_accuracy"])
    if settings.mixup_alpha > 0:
        assert not mining, "mixup and hard-negative mining do not mix"
        model.fit(_MixupBatches(features, targets, weights, settings.batch_size, settings.mixup_alpha, settings.seed),
                  epochs=settings.epochs, verbose=settings.verbose)
        return model
    first = settings.epochs - settings.mine_epochs if mining else settings.epochs
    model.fit(features, targets, sample_weight=weights, epochs=first, batch_size=settings.batch_size,
              shuffle=True, verbose=settings.verbose)
    if mining and mine is not None:
        model.fit(features, targets, sample_weight=weights * mine(model), initial_epoch=first,
                  epochs=settings.epochs, batch_size=settings.batch_size, shuffle=True, verbose=settings.verbose)
    return model


def hard_negative_factors(scores: np.ndarray, candidates: np.ndarray, fraction: float, weight: float) -> np.ndarray:
    """Loss-weight factors: `weight` for the top `fraction` of `candidates` by `scores`, 1 elsewhere."""
    factors = np.ones(len(scores), dtype=np.float32)
    pool = np.flatnonzero(candidates)
    count = round(fraction * len(pool))
    if count > 0:
        factors[pool[np.argsort(-scores[pool], kind="stable")[:count]]] = weight
    return factors


def predict(model: keras.Model, features: np.ndarray) -> np.ndarray:
    return model.predict(features, batch_size=256, verbose=0)
