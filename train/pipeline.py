"""The emergency model end to end: grouped cross-validation of the zoo, threshold, final fit, export.

Protocol: windows of 2 s at a 1 s hop; folds by recording (`group`), UrbanSound8K's official folds kept
whole; tutorial models trained on the real windows as the tutorials did; the project's models also on
street-like augmentation made only from training-fold audio. Scores are out-of-fold on real windows.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from detector.features import FeatureRecipe
from detector.windows import WindowSpec
from detector.yamnet import URBAN_CLASSES
from train.datasets import EMERGENCY, NON_EMERGENCY, Clip
from train.evaluate import assign_folds, evaluate_at_budget, plot_report
from train.examples import (
    SIREN_TASK_SPEC,
    AugmentPlan,
    Examples,
    augment,
    features_of,
    load_siren_task_windows,
    recorded_plan,
)
from train.fit import FitSettings, fit_model, hard_negative_factors, predict, recorded_settings, standardised_recipe
from train.models import Architecture, architecture_of, count_macs, describe, ensemble_members, fit_seed_of
from train.street import StreetSet, make_street_set
from train.yamnet_teacher import cross_fitted_probabilities, embedding_targets, mimicry_phrase, yamnet_outputs

LABELS = (NON_EMERGENCY, EMERGENCY)


@dataclass(frozen=True)
class PipelineConfig:
    clips: tuple[Clip, ...]
    report_dir: Path
    architectures: tuple[str, ...]
    ship: str | None
    out_model: Path | None
    folds: int = 3
    budget_per_hour: float = 1.0
    fit: FitSettings = field(default_factory=FitSettings)
    tutorial_epochs: int = 10
    plan: AugmentPlan = field(default_factory=AugmentPlan)
    random_split_check: bool = True
    yamnet_path: Path | None = None
    reuse_cv: Path | None = None  # a report folder whose saved out-of-fold scores stand in for the CV
    per_channel_weights: bool = True  # False: one int8 scale per convolution kernel (`train.export.convert_int8`)
    fusion: str = "probabilities"  # how an ensemble's members are combined: `train.ship.FUSIONS`


def raw_recipe(recipe: FeatureRecipe) -> FeatureRecipe:
    """The recipe before global standardisation, whose statistics come from the training features."""
    return dataclasses.replace(recipe, standardise="none") if recipe.standardise == "global" else recipe


def _standardise(features: np.ndarray, recipe: Any) -> np.ndarray:
    """`raw_recipe` features standardised as `recipe` says (`logmel_pcen`: its log-mel half only)."""
    if recipe.standardise != "global":
        return features
    if recipe.kind == "logmel_pcen":
        log_mel = (features[..., :recipe.n_mels] - recipe.mean) / recipe.std
        return np.concatenate([log_mel, features[..., recipe.n_mels:]], axis=-1).astype(features.dtype)
    return (features - recipe.mean) / recipe.std


HARD_NEGATIVE_SCORE = 0.2  # teacher siren score above which a real non-siren window counts as hard


@dataclass
class FoldData:
    real: Examples
    augmented: Examples
    window_fold: np.ndarray
    fold_of_group: dict[str, int]
    negative_hours: float
    yamnet_scores: np.ndarray | None = None  # YAMNet's siren score per real window: the baseline
    yamnet_embeddings: np.ndarray | None = None  # (windows, 1024) YAMNet embeddings: the teacher's input
    feature_cache: dict[Any, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def raw_features(self, recipe: FeatureRecipe, with_augmented: bool) -> tuple[np.ndarray, np.ndarray]:
        """Unstandardised features of the real and (if asked) augmented windows.

        Kept for the last recipe asked for, so one model's cross-validation, final fit and leak check
        compute them once; copies made with `dataclasses.replace` share the cache.
        """
        key = (raw_recipe(recipe), with_augmented)
        if key not in self.feature_cache:
            self.feature_cache.clear()
            real = features_of(self.real.windows, key[0])
            augmented = (features_of(self.augmented.windows, key[0]) if with_augmented
                         else np.zeros((0, *real.shape[1:]), np.float32))
            self.feature_cache[key] = (real, augmented)
        return self.feature_cache[key]


def _training_mask(data: FoldData, fold: int, use_augmented: bool) -> tuple[np.ndarray, np.ndarray]:
    train_groups = {group for group, f in data.fold_of_group.items() if f != fold}
    real_mask = data.window_fold != fold
    aug_mask = data.augmented.within(train_groups) if use_augmented else np.zeros(len(data.augmented), bool)
    return real_mask, aug_mask


def _train(arch: Architecture, real_features: np.ndarray, aug_features: np.ndarray, data: FoldData,
           real_mask: np.ndarray, aug_mask: np.ndarray, settings: FitSettings) -> tuple[Any, Any]:
    if len(aug_features) == 0:
        aug_mask = np.zeros(len(data.augmented), bool)
    features = np.concatenate([real_features[real_mask], aug_features[aug_mask] if aug_mask.any() else
                               np.zeros((0, *real_features.shape[1:]), np.float32)])
    labels = np.concatenate([data.real.labels[real_mask], data.augmented.labels[aug_mask]])
    targets, weights = _teacher_targets(data, real_mask, labels, settings)
    recipe = standardised_recipe(arch.recipe, features)
    standardised = _standardise(features, recipe)
    n_real = int(real_mask.sum())
    mine_pool = np.zeros(len(labels), bool)
    mine_pool[:n_real] = labels[:n_real] == 0  # the fold's own real non-siren training windows

    def mine(model: Any) -> np.ndarray:
        scores = np.zeros(len(labels), dtype=np.float32)
        scores[mine_pool] = predict(model, standardised[mine_pool])[:, 1]
        factors = hard_negative_factors(scores, mine_pool, settings.mine_fraction, settings.mine_weight)
        mined = factors > 1
        print(f"mined {int(mined.sum())} of {int(mine_pool.sum())} real non-siren training windows "
              f"(own score >= {scores[mined].min() if mined.any() else float('nan'):.3f}), weight "
              f"x{settings.mine_weight:g}", flush=True)
        return factors

    mimicked, mimic_weights = _mimicry_targets(data, real_mask, len(labels), settings)
    model = fit_model(arch, standardised, labels, len(LABELS), settings, weights, targets, mine, mimicked,
                      mimic_weights)
    return model, recipe


def _mimicry_targets(data: FoldData, real_mask: np.ndarray, n_rows: int, settings: FitSettings
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """With `settings.mimic_weight` > 0: YAMNet's embedding of each real training window (top principal
    components, fitted on these windows) as a second target, and its per-row loss weights: 1 on the real
    rows, which come first, 0 on the generated and mixed ones, which have no embedding and whose generated
    sirens YAMNet hears poorly (the teacher is copied on real audio only, as its scores are)."""
    if settings.mimic_weight == 0 or data.yamnet_embeddings is None:
        return None, None
    real = embedding_targets(data.yamnet_embeddings[real_mask])
    mimicked = np.zeros((n_rows, real.shape[1]), np.float32)
    mimicked[:len(real)] = real
    weights = np.zeros(n_rows, np.float32)
    weights[:len(real)] = 1.0
    return mimicked, weights


def _teacher_targets(data: FoldData, real_mask: np.ndarray, labels: np.ndarray, settings: FitSettings
                     ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The teacher's help, on real audio only: softened targets and up-weighted hard negatives.

    The teacher is a logistic regression on YAMNet's embeddings (`train.yamnet_teacher`), cross-fitted on
    the split's real training windows so each window's target comes from a head that never saw its
    recording. Generated and mixed windows keep hard labels: YAMNet scores generated two-tone sirens near
    zero and would teach that they are weak evidence.
    """
    if data.yamnet_embeddings is None or (settings.teacher_weight == 0 and settings.hard_negative_weight == 1):
        return None, None
    n_real = int(real_mask.sum())
    groups = [data.real.groups[i] for i in np.flatnonzero(real_mask)]
    teacher = cross_fitted_probabilities(data.yamnet_embeddings[real_mask], labels[:n_real], groups,
                                         len(LABELS))[:, 1]
    targets = np.eye(len(LABELS), dtype=np.float32)[labels]
    alpha = settings.teacher_weight
    targets[:n_real, 1] = (1 - alpha) * labels[:n_real] + alpha * teacher
    targets[:n_real, 0] = 1 - targets[:n_real, 1]
    weights = np.ones(len(labels), dtype=np.float32)
    hard = (labels[:n_real] == 0) & (teacher >= HARD_NEGATIVE_SCORE)
    weights[:n_real][hard] = settings.hard_negative_weight
    return targets, weights


def cross_validate(name: str, data: FoldData, config: PipelineConfig, street: list[StreetSet],
                   report: dict[str, Any]) -> np.ndarray:
    """Out-of-fold positive scores on every real window, plus street-set recall per fold, of the model
    `name` (an architecture, or `arch@N` for its fit seed N)."""
    arch = architecture_of(name)
    use_augmented = not arch.tutorial
    settings = cv_fit_settings(config, name)
    real_features, aug_features = data.raw_features(arch.recipe, use_augmented)
    oof = np.zeros(len(data.real), dtype=np.float32)
    street_scores: dict[str, list[np.ndarray]] = {}
    started = time.perf_counter()
    for fold in range(config.folds):
        real_mask, aug_mask = _training_mask(data, fold, use_augmented)
        print(f"[{name}] fold {fold + 1}/{config.folds}: {real_mask.sum()} real + {aug_mask.sum()} "
              f"augmented training windows, {(~real_mask).sum()} held out", flush=True)
        model, recipe = _train(arch, real_features, aug_features, data, real_mask, aug_mask, settings)
        oof[~real_mask] = predict(model, _standardise(real_features[~real_mask], recipe))[:, 1]
        for street_set in street:
            if street_set.fold != fold:
                continue
            raw = features_of(street_set.windows, recipe)
            street_scores.setdefault(street_set.name, []).append(predict(model, raw)[:, 1])
    model_for_cost = arch.build(real_features.shape[1:], len(LABELS))
    report["architecture"] = {"name": name, "description": describe(name), "tutorial": arch.tutorial,
                              "parameters": int(model_for_cost.count_params()),
                              "macs_per_window": count_macs(model_for_cost),
                              "trained_on": trained_on(use_augmented, settings),
                              "epochs": settings.epochs, "cv_seconds": round(time.perf_counter() - started),
                              "cv_settings": cv_settings(config, name)}
    report["street_scores"] = {name: np.concatenate(parts) for name, parts in street_scores.items()}
    return oof


def trained_on(use_augmented: bool, settings: FitSettings) -> str:
    """The card's one line on what the model learnt from."""
    mimicry = f"; real windows {mimicry_phrase(settings.mimic_weight)}" if settings.mimic_weight else ""
    return ("real + augmented windows" if use_augmented else "real windows") + mimicry


def cv_fit_settings(config: PipelineConfig, name: str) -> FitSettings:
    """How `name` is fitted in each fold: the run's settings with its fit seed; tutorials as the tutorials
    (no teacher, no mining, no mixup, no mimicry)."""
    fit = with_fit_seed(config, name).fit
    if not architecture_of(name).tutorial:
        return fit
    return dataclasses.replace(fit, epochs=config.tutorial_epochs, teacher_weight=0.0, hard_negative_weight=1.0,
                               mine_epochs=0, mixup_alpha=0.0, mimic_weight=0.0)


def cv_settings(config: PipelineConfig, name: str) -> dict[str, Any]:
    """Everything that shaped `name`'s out-of-fold scores, recorded so that `--reuse-cv` can check it."""
    return {"folds": config.folds, "fit": recorded_settings(cv_fit_settings(config, name)),
            "plan": recorded_plan(config.plan)}


def refuse_other_settings(earlier: dict[str, Any], now: dict[str, Any], saved: str) -> None:
    """Stop a reuse of `saved` (a CV or a fit) made under settings other than this run's, naming the first."""
    from detector.errors import DetectorError

    if earlier != now:
        raise DetectorError(f"{saved} was made with other settings ({_first_difference(earlier, now)})")


def _first_difference(earlier: dict[str, Any], now: dict[str, Any], where: str = "") -> str:
    """The first setting (dotted path) whose value differs between two unequal settings records."""
    for key in sorted(set(earlier) | set(now)):
        a, b = earlier.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            if a != b:
                return _first_difference(a, b, f"{where}{key}.")
        elif a != b:
            return f"{where}{key} {a} there, {b} here"
    return ""


def has_saved_cross_validation(folder: Path, name: str) -> bool:
    """Whether an earlier run saved `name`'s out-of-fold scores in `folder` (`--reuse-cv`)."""
    return (folder / f"{name}_oof.npy").exists()


def reused_cross_validation(folder: Path, name: str, config: PipelineConfig, n_windows: int,
                            report: dict[str, Any]) -> np.ndarray:
    """Out-of-fold and street scores saved by an earlier run of the same settings, instead of the CV.

    Reports since session 11 record every setting that shaped the scores (`cv_settings`), and any
    difference refuses the reuse; of an older report only the epochs can be checked, the caller vouches
    for the rest.
    """
    from detector.errors import DetectorError

    earlier = json.loads((folder / "report.json").read_text())["models"].get(name)
    oof_path, street_path = folder / f"{name}_oof.npy", folder / f"{name}_street.npz"
    if earlier is None or not oof_path.exists() or not street_path.exists():
        raise DetectorError(f"{folder}: no saved cross-validation of {name}")
    scores = np.load(oof_path)
    now = cv_settings(config, name)
    epochs = now["fit"]["epochs"]  # a tutorial's are --tutorial-epochs
    if len(scores) != n_windows or earlier["epochs"] != epochs:
        raise DetectorError(f"{folder}: {name}'s saved CV has {len(scores)} windows and {earlier['epochs']} "
                            f"epochs, this run {n_windows} and {epochs}")
    if "cv_settings" in earlier:
        refuse_other_settings(earlier["cv_settings"], now, f"{folder}: {name}'s saved CV")
    keys = ("name", "description", "tutorial", "parameters", "macs_per_window", "trained_on", "epochs", "cv_seconds",
            "cv_settings")
    report["architecture"] = {**{k: earlier[k] for k in keys if k in earlier}, "cv_reused_from": str(folder)}
    with np.load(street_path) as street:
        report["street_scores"] = {key: street[key] for key in street.files}
    return scores


def load_data(config: PipelineConfig, spec: WindowSpec) -> FoldData:
    real = load_siren_task_windows(config.clips, spec)
    augmented = augment(real, config.plan, spec)
    groups = [clip.group for clip in config.clips]
    us8k = [clip.fold if clip.dataset == "urbansound8k" else None for clip in config.clips]
    fold_of_group = assign_folds(groups, us8k, config.folds)
    window_fold = np.array([fold_of_group[next(iter(g))] for g in real.groups])
    negative_hours = float((real.labels == 0).sum()) * spec.hop / spec.sample_rate / 3600
    yamnet_scores = yamnet_embeddings = None
    if config.yamnet_path:
        config.report_dir.mkdir(parents=True, exist_ok=True)
        urban, yamnet_embeddings = yamnet_outputs(config.yamnet_path, real.windows, config.report_dir,
                                                  "real windows")
        yamnet_scores = urban[:, list(URBAN_CLASSES).index("siren")]  # its emergency classes' maximum
    return FoldData(real, augmented, window_fold, fold_of_group, negative_hours, yamnet_scores, yamnet_embeddings)


def evaluate_scores(name: str, scores: np.ndarray, data: FoldData, config: PipelineConfig,
                    street_scores: dict[str, np.ndarray], street: Sequence[StreetSet]) -> dict[str, Any]:
    """The threshold choice on out-of-fold scores, the summary at it, street recall, and the plot."""
    real = data.real
    summary = evaluate_at_budget(real.labels, scores, real.clip_ids, real.datasets, data.negative_hours,
                                 config.budget_per_hour)
    threshold = summary["threshold"]
    summary["street_recall"] = {name: round(float(np.mean(street_scores[name] >= threshold)), 4)
                                for name in sorted({s.name for s in street}) if name in street_scores}
    plot_report(real.labels, scores, threshold, f"{name}: out-of-fold, grouped {config.folds}-fold",
                config.report_dir / f"{name}.png")
    return summary


def run_pipeline(config: PipelineConfig) -> dict[str, Any]:
    spec = SIREN_TASK_SPEC
    config.report_dir.mkdir(parents=True, exist_ok=True)
    data = load_data(config, spec)
    street = make_street_set(data.real, data.window_fold, config.folds, spec, seed=config.plan.seed)
    results: dict[str, Any] = {
        "protocol": (f"grouped {config.folds}-fold CV by source recording (UrbanSound8K official folds kept "
                     "whole); 2 s windows at 1 s hop; out-of-fold scores on real windows; threshold = "
                     f"lowest with <= {config.budget_per_hour:g} false event/h of non-siren audio"),
        "windows": len(data.real), "positive_windows": int(data.real.labels.sum()),
        "augmented_windows": len(data.augmented), "non_siren_hours": round(data.negative_hours, 3),
        "models": {},
    }
    members = ensemble_members(config.ship) if config.ship else []
    order = sorted(config.architectures, key=lambda name: name not in members)  # the shipped ones first
    last_member = order[len(members) - 1] if members else None
    cv_of: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    for name in order:
        report: dict[str, Any] = {}
        if config.reuse_cv and has_saved_cross_validation(config.reuse_cv, name):
            scores = reused_cross_validation(config.reuse_cv, name, config, len(data.real), report)
        else:
            scores = cross_validate(name, data, config, street, report)
        cv_of[name] = scores, report["street_scores"]
        results["models"][name] = {**report["architecture"],
                                   **evaluate_scores(name, scores, data, config, report["street_scores"], street)}
        _save_scores(config.report_dir, name, scores, report["street_scores"])
        write_report(results, config.report_dir)
        if name == last_member:  # every member cross-validated: ship now, while the features are cached
            _ship(config, data, results, cv_of, street)
    if data.yamnet_scores is not None:
        from train.baseline import yamnet_report

        results["models"]["yamnet"] = yamnet_report(config, data, street, evaluate_scores)
        np.save(config.report_dir / "yamnet_oof.npy", data.yamnet_scores)  # what tune_tracker --confirm reads
        write_report(results, config.report_dir)
    if config.ship and config.out_model:
        from train.ship import update_card_evaluation

        update_card_evaluation(config.out_model, config.ship, results)
    return results


def _save_scores(report_dir: Path, name: str, scores: np.ndarray, street_scores: dict[str, np.ndarray]) -> None:
    np.save(report_dir / f"{name}_oof.npy", scores)
    np.savez(report_dir / f"{name}_street.npz", **street_scores)


def _ship(config: PipelineConfig, data: FoldData, results: dict[str, Any],
          cv_of: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]], street: Sequence[StreetSet]) -> None:
    """Evaluate an ensemble from its members' out-of-fold scores, export the shipped model, check the leak."""
    assert config.ship is not None
    members = ensemble_members(config.ship)
    if len(members) > 1:
        from train.ship import fuse_scores, fusion_phrase

        scores = fuse_scores([cv_of[member][0] for member in members], config.fusion)
        street_scores = {key: fuse_scores([cv_of[member][1][key] for member in members], config.fusion)
                         for key in cv_of[members[0]][1]}
        facts = [results["models"][member] for member in members]
        results["models"][config.ship] = {
            "name": config.ship, "tutorial": False,
            "description": f"{fusion_phrase(config.fusion)} " + " and ".join(members) + " (each "
                           "cross-validated on the same folds; their out-of-fold scores combined the same way)",
            "parameters": sum(f["parameters"] for f in facts),
            "macs_per_window": sum(f["macs_per_window"] for f in facts),
            "trained_on": facts[0]["trained_on"], "epochs": facts[0]["epochs"],
            **evaluate_scores(config.ship, scores, data, config, street_scores, street)}
        _save_scores(config.report_dir, config.ship, scores, street_scores)
        write_report(results, config.report_dir)
    if config.out_model:
        from train.ship import ship_model

        results["shipped"] = ship_model(config.ship, data, config, results)
        write_report(results, config.report_dir)
    if config.random_split_check:
        results["random_split_leak"] = random_split_check(architecture_of(members[0]), data,
                                                          with_fit_seed(config, members[0]))
        write_report(results, config.report_dir)


def with_fit_seed(config: PipelineConfig, name: str) -> PipelineConfig:
    """The run's settings with the fit seed the model name asks for (`a@1`); the augmented data is shared."""
    return dataclasses.replace(config, fit=dataclasses.replace(config.fit, seed=fit_seed_of(name, config.fit.seed)))


def random_split_check(arch: Architecture, data: FoldData, config: PipelineConfig) -> dict[str, Any]:
    """What a leaky random split of windows would have claimed, with the same model and augmentation."""
    rng = np.random.default_rng(1)
    random_fold = rng.integers(0, config.folds, len(data.real))
    leaky = dataclasses.replace(data, window_fold=random_fold, fold_of_group={})
    real_features, aug_features = data.raw_features(arch.recipe, True)
    held_out = random_fold == 0
    model, recipe = _train(arch, real_features, aug_features, leaky, ~held_out,
                           np.ones(len(data.augmented), bool),
                           dataclasses.replace(config.fit, epochs=config.tutorial_epochs))
    scores = predict(model, _standardise(real_features[held_out], recipe))[:, 1]
    real = data.real
    hours = float((real.labels[held_out] == 0).sum()) / 3600
    summary = evaluate_at_budget(real.labels[held_out], scores, real.clip_ids[held_out], real.datasets[held_out],
                                 hours, config.budget_per_hour)
    summary["protocol"] = (f"LEAKY: windows shuffled at random into {config.folds} parts, one part held out; "
                           f"augmentation free to mix held-out audio into training; {config.tutorial_epochs} epochs; "
                           "shown only to expose the leak")
    return summary


TRAINING_LIBRARIES = ("numpy", "scipy", "sklearn", "tensorflow", "keras")


def training_environment() -> dict[str, str]:
    """Python's and the numerical libraries' versions: a fit repeats bit for bit only on the same ones. A fresh
    machine's re-run of the shipped urban recipe moved a network by 2.9 points (docs/EXPERIMENTS.md,
    session 22), so a saved number is a paired baseline only where these match."""
    return {"python": platform.python_version(),
            **{name: importlib.import_module(name).__version__ for name in TRAINING_LIBRARIES}}


def write_report(results: dict[str, Any], report_dir: Path) -> None:
    """report.json, rewritten after each model so a long run that stops keeps what it measured, with the
    versions it ran on."""
    report = {**results, "environment": training_environment()}
    (report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
