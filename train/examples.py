"""Training examples: real windows, and the street-like windows augmentation makes from them.

Every example records the source groups whose audio it contains, so a cross-validation fold trains only
on examples built entirely from its training groups (a test recording never leaks in as a background).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm import tqdm

from detector.audio import read_audio
from detector.features import FeatureRecipe, compute_features
from detector.synth import DISTRACTOR_KINDS, generate_distractor, random_siren_event
from detector.windows import WindowSpec, cut_windows
from train.augment import (
    AugmentConfig,
    augment_negative,
    augment_positive,
    mix_at_snr,
    roadside_noise,
    sometimes_speed_change,
)
from train.datasets import EMERGENCY, Clip, binary_label

SILENT_POSITIVE_DBFS = -55.0  # a "siren" window this quiet holds no siren to learn from
SIREN_TASK_SPEC = WindowSpec.from_seconds(16000, 2.0, 1.0)  # the siren task's windows: 2 s at a 1 s hop


@dataclass(frozen=True)
class Examples:
    """Windows (n, samples) with labels (1 = positive), provenance and the groups each one contains."""

    windows: np.ndarray
    labels: np.ndarray
    groups: tuple[frozenset[str], ...]
    kinds: np.ndarray  # "real", "real_aug", "siren_mix", "generated", "generated_neg", "distractor"
    clip_ids: np.ndarray  # index into the clip list, -1 for generated audio
    datasets: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: np.ndarray) -> Examples:
        """The examples where `mask` is true, every field alike."""
        return Examples(self.windows[mask], self.labels[mask],
                        tuple(g for g, keep in zip(self.groups, mask, strict=True) if keep), self.kinds[mask],
                        self.clip_ids[mask], self.datasets[mask])

    def within(self, allowed_groups: set[str]) -> np.ndarray:
        """Mask of examples made only from audio of `allowed_groups`."""
        return np.array([group_set <= allowed_groups for group_set in self.groups])


def concatenate(parts: Sequence[Examples]) -> Examples:
    return Examples(
        np.concatenate([p.windows for p in parts]), np.concatenate([p.labels for p in parts]),
        tuple(g for p in parts for g in p.groups), np.concatenate([p.kinds for p in parts]),
        np.concatenate([p.clip_ids for p in parts]), np.concatenate([p.datasets for p in parts]),
    )


def rms_dbfs(windows: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(windows.astype(np.float64) ** 2, axis=-1) + 1e-12)


def _read_clip(args: tuple[Clip, WindowSpec]) -> tuple[np.ndarray, np.ndarray]:
    clip, spec = args
    return cut_windows(read_audio(clip.path, spec.sample_rate).samples, spec)


def load_real_windows(clips: Sequence[Clip], spec: WindowSpec, is_positive: Callable[[str], bool],
                      workers: int = 2) -> Examples:
    """Every clip cut into windows; positive windows too quiet to hold a siren are left out.

    Threads, not processes: libsndfile and numpy release the GIL for most of the work, so two threads read
    as fast here as two processes did, and a process forked from this one (which by now runs TensorFlow's
    and tqdm's threads) once hung a cross-validation for good."""
    with ThreadPoolExecutor(workers) as pool:
        cut = list(tqdm(pool.map(_read_clip, [(c, spec) for c in clips]), total=len(clips),
                        desc="reading clips", unit="clip"))
    windows, labels, groups, clip_ids, datasets = [], [], [], [], []
    for clip_id, (clip, (clip_windows, _starts)) in enumerate(zip(clips, cut, strict=True)):
        positive = is_positive(clip.label)
        if positive:
            clip_windows = clip_windows[rms_dbfs(clip_windows) > SILENT_POSITIVE_DBFS]
        windows.append(clip_windows)
        labels += [int(positive)] * len(clip_windows)
        groups += [frozenset({clip.group})] * len(clip_windows)
        clip_ids += [clip_id] * len(clip_windows)
        datasets += [clip.dataset] * len(clip_windows)
    return Examples(np.concatenate(windows), np.array(labels), tuple(groups),
                    np.full(len(labels), "real"), np.array(clip_ids), np.array(datasets))


def load_siren_task_windows(clips: Sequence[Clip], spec: WindowSpec = SIREN_TASK_SPEC) -> Examples:
    """The siren task's real windows (positive = an emergency label), in the order siren-train's saved
    out-of-fold scores follow, so the tools that re-read those scores line them up with the same call."""
    return load_real_windows(clips, spec, lambda label: binary_label(label) == EMERGENCY)


@dataclass(frozen=True)
class AugmentPlan:
    """How many street-like examples to make: per real positive, generated, and per real negative.

    `generated_distractors` are tonal non-sirens (horns, music, hums, beepers, bells, brake squeal) under
    real backgrounds: without them generated sirens teach "anything tonal is a siren". `generated_negatives`
    are generated roadside beds (traffic with engine pass-bys, and wind): without enough of them a model
    trained with SpecAugment scored the generated street itself up to 0.86. `speed_semitones` > 0 plays half
    the real sirens and real negatives that are augmented faster or slower (both classes, so the resampling
    and the shortened tail are no siren cue); 0 leaves every random draw as it was before it existed.
    `snr_db` is the range the sirens are mixed under the street at (and negatives under other negatives, so a
    mixture is no siren cue); another range keeps every random draw and changes only the levels.
    """

    copies_per_positive: int = 2
    generated_positives: int = 4000
    negative_fraction: float = 0.5
    generated_negatives: int = 600
    generated_distractors: int = 3000
    seed: int = 0
    speed_semitones: float = 0.0
    snr_db: tuple[float, float] = AugmentConfig.snr_db

    @property
    def street(self) -> AugmentConfig:
        """The street chain with this plan's mixing range."""
        return AugmentConfig(snr_db=self.snr_db)


def recorded_plan(plan: AugmentPlan) -> dict[str, Any]:
    """The plan as saved beside a CV for `--reuse-cv` to compare (as `fit.recorded_settings` saves the fit):
    speed only when on and the mixing range only when not the default, so records made before either existed
    still match."""
    unrecorded = {"speed_semitones": 0.0, "snr_db": AugmentConfig.snr_db}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(plan).items()
            if not (k in unrecorded and v == unrecorded[k])}


def _positive_mixes(real: Examples, rng: np.random.Generator, plan: AugmentPlan, spec: WindowSpec,
                    street: AugmentConfig) -> Examples:
    positives = np.flatnonzero(real.labels == 1)
    negatives = np.flatnonzero(real.labels == 0)
    windows, groups, clip_ids, datasets = [], [], [], []
    for index in tqdm(np.repeat(positives, plan.copies_per_positive), desc="mixing real sirens", unit="win"):
        background = rng.choice(negatives)
        siren = sometimes_speed_change(real.windows[index], rng, plan.speed_semitones)
        windows.append(augment_positive(siren, real.windows[background], rng, spec.sample_rate, street))
        groups.append(real.groups[index] | real.groups[background])
        clip_ids.append(real.clip_ids[index])
        datasets.append(real.datasets[index])
    return Examples(np.stack(windows), np.ones(len(windows), int), tuple(groups),
                    np.full(len(windows), "siren_mix"), np.array(clip_ids), np.array(datasets))


def _over_backgrounds(real: Examples, rng: np.random.Generator, count: int, label: int, kind: str, desc: str,
                      make: Callable[[np.ndarray], np.ndarray]) -> Examples:
    """`count` generated windows, each made by `make` over a random real non-siren window."""
    negatives = np.flatnonzero(real.labels == 0)
    windows, groups = [], []
    for _ in tqdm(range(count), desc=desc, unit="win"):
        background = rng.choice(negatives)
        windows.append(make(real.windows[background]))
        groups.append(real.groups[background])
    return Examples(np.stack(windows).astype(np.float32), np.full(count, label), tuple(groups),
                    np.full(count, kind), np.full(count, -1), np.full(count, "generated"))


def _generated_positives(real: Examples, rng: np.random.Generator, count: int, spec: WindowSpec,
                         street: AugmentConfig) -> Examples:
    def make(background: np.ndarray) -> np.ndarray:
        siren = random_siren_event(rng, spec.window / spec.sample_rate, spec.sample_rate)[: spec.window]
        return augment_positive(siren, background, rng, spec.sample_rate, street)

    return _over_backgrounds(real, rng, count, 1, "generated", "generating sirens", make)


def _distractors(real: Examples, rng: np.random.Generator, count: int, spec: WindowSpec) -> Examples:
    def make(background: np.ndarray) -> np.ndarray:
        kind = DISTRACTOR_KINDS[int(rng.integers(len(DISTRACTOR_KINDS)))]
        tonal = generate_distractor(kind, spec.window / spec.sample_rate, rng, spec.sample_rate)
        return augment_negative(mix_at_snr(tonal, background, float(rng.uniform(-5, 20))), rng, spec.sample_rate)

    return _over_backgrounds(real, rng, count, 0, "distractor", "generating tonal distractors", make)


def _negatives(real: Examples, rng: np.random.Generator, plan: AugmentPlan, spec: WindowSpec,
               street: AugmentConfig) -> Examples:
    negatives = np.flatnonzero(real.labels == 0)
    chosen = rng.choice(negatives, size=int(plan.negative_fraction * len(negatives)), replace=False)
    windows, groups, kinds, clip_ids, datasets = [], [], [], [], []
    for index in tqdm(chosen, desc="augmenting negatives", unit="win"):
        extra = rng.choice(negatives)
        window = sometimes_speed_change(real.windows[index], rng, plan.speed_semitones)
        windows.append(augment_negative(window, rng, spec.sample_rate, real.windows[extra], street))
        groups.append(real.groups[index] | real.groups[extra])
        kinds.append("real_aug")
        clip_ids.append(real.clip_ids[index])
        datasets.append(real.datasets[index])
    for _ in range(plan.generated_negatives):
        windows.append(augment_negative(roadside_noise(spec.window, rng, spec.sample_rate), rng, spec.sample_rate,
                                        config=street))
        groups.append(frozenset())
        kinds.append("generated_neg")
        clip_ids.append(-1)
        datasets.append("generated")
    return Examples(np.stack(windows).astype(np.float32), np.zeros(len(windows), int), tuple(groups),
                    np.array(kinds), np.array(clip_ids), np.array(datasets))


def augment(real: Examples, plan: AugmentPlan, spec: WindowSpec) -> Examples:
    """The street-like examples made from `real` (not including `real` itself)."""
    rng = np.random.default_rng(plan.seed)
    street = plan.street  # one street chain for every window, not one per window
    return concatenate([
        _positive_mixes(real, rng, plan, spec, street),
        _generated_positives(real, rng, plan.generated_positives, spec, street),
        _negatives(real, rng, plan, spec, street),
        _distractors(real, rng, plan.generated_distractors, spec),
    ])


def features_of(windows: np.ndarray, recipe: FeatureRecipe, batch: int = 256) -> np.ndarray:
    """Features for many windows, in batches to bound memory."""
    shape = recipe.shape(windows.shape[1])
    out = np.empty((len(windows), *shape), dtype=np.float32)
    for start in tqdm(range(0, len(windows), batch), desc=f"{recipe.kind} features", unit="batch",
                      leave=False):
        out[start : start + batch] = compute_features(windows[start : start + batch], recipe)
    return out
