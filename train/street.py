"""Held-out street tests: sirens as a roadside microphone hears them, built from each fold's test audio.

The clean web sirens in the data say little about a siren 100 m away under traffic, so every fold is also
scored on (a) its own real siren windows mixed under its own non-siren windows at -5..+10 dB SNR and
(b) generated sirens of each kind, at a distance, with reverberation, under the same backgrounds. Set (b)
comes from the same generator that augments training, so it is a check, not proof.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detector.synth import SIREN_KINDS, apply_distance, apply_reverb, generate_siren, synth_impulse_response
from detector.windows import WindowSpec
from train.augment import mix_at_snr
from train.examples import Examples

SNR_RANGE_DB = (-5.0, 10.0)
REAL_PER_FOLD = 150
GENERATED_PER_KIND_PER_FOLD = 30


@dataclass(frozen=True)
class StreetSet:
    name: str
    fold: int
    windows: np.ndarray


def _distant_siren(kind: str, rng: np.random.Generator, spec: WindowSpec) -> np.ndarray:
    siren = generate_siren(kind, spec.window / spec.sample_rate, rng, spec.sample_rate)[: spec.window]
    siren = apply_distance(siren, float(rng.uniform(30, 200)), spec.sample_rate)
    if rng.random() < 0.7:
        siren = apply_reverb(siren, synth_impulse_response(rng, spec.sample_rate), float(rng.uniform(0.2, 0.6)))
    return siren


def make_street_set(real: Examples, window_fold: np.ndarray, folds: int, spec: WindowSpec,
                    seed: int = 0) -> list[StreetSet]:
    rng = np.random.default_rng(seed + 1000)
    sets = []
    for fold in range(folds):
        positives = np.flatnonzero((window_fold == fold) & (real.labels == 1))
        negatives = np.flatnonzero((window_fold == fold) & (real.labels == 0))
        chosen = rng.choice(positives, size=min(REAL_PER_FOLD, len(positives)), replace=False)
        mixed = [mix_at_snr(real.windows[i], real.windows[rng.choice(negatives)], rng.uniform(*SNR_RANGE_DB))
                 for i in chosen]
        sets.append(StreetSet("real_sirens_under_street_audio", fold, np.stack(mixed).astype(np.float32)))
        for kind in SIREN_KINDS:
            windows = [mix_at_snr(_distant_siren(kind, rng, spec), real.windows[rng.choice(negatives)],
                                  rng.uniform(*SNR_RANGE_DB)) for _ in range(GENERATED_PER_KIND_PER_FOLD)]
            sets.append(StreetSet(f"generated_{kind}", fold, np.stack(windows).astype(np.float32)))
    return sets
