"""Fitting one Keras model on feature matrices, with class balance and a cosine learning-rate decay."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import keras
import numpy as np

from detector.features import FeatureRecipe
from train.models import Architecture


@dataclass(frozen=True)
class FitSettings:
    """`teacher_weight`: share of YAMNet's score in the targets of real windows (0 = hard labels only);
    `hard_negative_weight`: loss weight of real non-siren windows that YAMNet scores as sirens;
    `label_smoothing` keeps the softmax off 0 and 1, where int8 outputs (steps of 1/256) cannot rank."""

    epochs: int = 12
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    verbose: int = 2
    teacher_weight: float = 0.0
    hard_negative_weight: float = 1.0
    label_smoothing: float = 0.1


def standardised_recipe(recipe: FeatureRecipe, features: np.ndarray) -> FeatureRecipe:
    """The recipe with the training features' global mean and std filled in (none for raw waveforms)."""
    if recipe.standardise != "global":
        return recipe
    return dataclasses.replace(recipe, mean=round(float(features.mean()), 5),
                               std=round(float(features.std()), 5))


def fit_model(architecture: Architecture, features: np.ndarray, labels: np.ndarray, n_labels: int,
              settings: FitSettings, sample_weight: np.ndarray | None = None,
              targets: np.ndarray | None = None) -> keras.Model:
    """Train from scratch; `features` must already be standardised with the recipe's mean and std.

    `targets` (n, n_labels) replaces the one-hot labels where a teacher softens them; class balance is
    still computed from the hard `labels`.
    """
    keras.utils.set_random_seed(settings.seed)
    model = architecture.build(features.shape[1:], n_labels)
    steps = settings.epochs * int(np.ceil(len(labels) / settings.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(settings.learning_rate, steps)
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=settings.label_smoothing)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss,
                  metrics=["categorical_accuracy"])
    counts = np.bincount(labels, minlength=n_labels).astype(float)
    class_weight = len(labels) / (n_labels * np.maximum(counts, 1))
    weights = class_weight[labels] * (1.0 if sample_weight is None else sample_weight)
    if targets is None:
        targets = np.eye(n_labels, dtype=np.float32)[labels]
    model.fit(features, targets, sample_weight=weights, epochs=settings.epochs, batch_size=settings.batch_size,
              shuffle=True, verbose=settings.verbose)
    return model


def predict(model: keras.Model, features: np.ndarray) -> np.ndarray:
    return model.predict(features, batch_size=256, verbose=0)
