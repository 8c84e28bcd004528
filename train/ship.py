"""The final fit on every recording, the int8 export and the model card that carries the CV evidence."""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from detector import __version__
from detector.errors import DetectorError
from detector.features import FeatureRecipe
from train.export import export_model
from train.models import (
    SpecAugment,
    architecture_of,
    count_macs,
    describe,
    ensemble_members,
    ensemble_recipe,
    input_bins,
    joined_recipe,
)

TRAINING_DATA = [
    "Emergency Vehicle Siren Sounds (Kaggle vishnu0399), free redistribution per its author",
    "SESA (Spadini 2019, doi:10.5281/zenodo.3519845), CC BY 4.0",
    "ESC-50 (Piczak 2015), CC BY-NC 3.0",
    "UrbanSound8K folds 1-2 and 7 fold-3 sirens (Salamon, Jacoby, Bello 2014), CC BY-NC 3.0",
    "Speech Commands background noise (Warden 2018), CC BY 4.0",
]
# int8 calibration windows: 400 left dscnn_m_window's decisions 97.7 % in agreement with Keras (< 98 %)
REPRESENTATIVE_WINDOWS = 2000
CHECK_WINDOWS = 1500  # real training windows on which the int8 decisions must agree with Keras'
LICENCE_NOTE = ("Trained on CC BY-NC 3.0 audio (ESC-50, UrbanSound8K): the model inherits the "
                "non-commercial condition of those datasets.")


def card_evaluation(name: str, results: dict[str, Any]) -> dict[str, Any]:
    """The CV evidence a card carries: this model's numbers, the baselines' on the same folds, the leak."""
    keys = ("balanced_accuracy", "roc_auc", "recall", "false_events_per_hour", "threshold", "street_recall",
            "parameters", "macs_per_window")
    return {
        "protocol": results["protocol"],
        "this_model": {k: v for k, v in results["models"][name].items() if k != "threshold_choice"},
        "baselines_same_folds": {other: {k: m.get(k) for k in keys}
                                 for other, m in results["models"].items() if other != name},
        "random_split_leak": results.get("random_split_leak"),
    }


def update_card_evaluation(model_path: Path, name: str, results: dict[str, Any]) -> None:
    """Add the baselines measured after the export to the card (the .tflite and its sha256 are unchanged)."""
    card_path = model_path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["evaluation"] = card_evaluation(name, results)
    card_path.write_text(json.dumps(card, indent=2) + "\n")


class InputBins(keras.layers.Layer):
    """Bins [start, stop) of (batch, frames, bins) features: the half of stacked features one member reads."""

    def __init__(self, start: int, stop: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.start, self.stop = start, stop

    def call(self, inputs: object) -> object:
        return inputs[..., self.start : self.stop]

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "start": self.start, "stop": self.stop}


FUSIONS = ("probabilities", "logits")  # how an ensemble combines its members (`--fusion`)


def fusion_phrase(fusion: str) -> str:
    """How cards and reports name an ensemble's combination of its members, before the members."""
    return "mean of the probabilities of" if fusion == "probabilities" else "softmax of the mean logits of"


def fuse_scores(member_scores: Sequence[np.ndarray], fusion: str) -> np.ndarray:
    """The members' probabilities combined as `average_models` combines them in the exported graph: their mean,
    or the softmax of their mean log-probabilities, which equals the softmax of their mean logits. A 1-D array
    is a two-label model's positive-label probability (for two labels: the sigmoid of the mean log-odds)."""
    if fusion == "probabilities":
        return np.mean(member_scores, axis=0)
    probabilities = np.asarray(member_scores, np.float64)
    binary = probabilities.ndim == 2  # (members, windows)
    if binary:
        probabilities = np.stack([1.0 - probabilities, probabilities], axis=-1)
    mean_log = np.log(np.clip(probabilities, 1e-7, 1.0)).mean(axis=0)
    fused = np.exp(mean_log - mean_log.max(axis=-1, keepdims=True))
    fused /= fused.sum(axis=-1, keepdims=True)
    return (fused[..., 1] if binary else fused).astype(np.asarray(member_scores[0]).dtype)


def _member_logits(model: keras.Model, index: int) -> tuple[keras.Model, keras.layers.Dense]:
    """A member's network up to its softmax head, and the head as a linear layer with the same weights."""
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.get_config()["activation"] != "softmax":
        raise DetectorError(f"--fusion logits needs each member to end in a softmax Dense layer; "
                            f"member {index} ends in {head.name}")
    body = keras.Model(model.inputs[0], head.input, name=f"member_{index}")
    linear = keras.layers.Dense(head.units, name=f"logits_{index}")
    linear.build(head.input.shape)
    linear.set_weights(head.get_weights())
    return body, linear


def average_models(models: list[keras.Model], recipes: list[FeatureRecipe] | None, fusion: str) -> keras.Model:
    """One network whose output is the members' combination (`fuse_scores`): one .tflite, one card. Given each
    member's recipe, the input is their joined recipe's features (`joined_recipe`), each member reading its
    own bins of them."""
    joined = joined_recipe(recipes) if recipes else None
    frames, bins = models[0].input_shape[1:]
    inputs = keras.Input((frames, joined.n_bins if joined else bins))
    outputs = []
    for index, model in enumerate(models):
        start, stop = input_bins(recipes[index], joined) if recipes and joined else (0, bins)
        reads_all = (start, stop) == (0, inputs.shape[-1])
        member_input = inputs if reads_all else InputBins(start, stop, name=f"bins_{index}")(inputs)
        if fusion == "logits":
            body, linear = _member_logits(model, index)
            outputs.append(linear(body(member_input)))
        else:
            member = keras.Model(model.inputs[0], model.outputs[0], name=f"member_{index}")  # names must be unique
            outputs.append(member(member_input))
    combined = keras.layers.Average()(outputs)
    return keras.Model(inputs, keras.layers.Softmax()(combined) if fusion == "logits" else combined,
                       name="ensemble")


def one_network(name: str, models: list[keras.Model], recipes: list[Any], fusion: str) -> tuple[keras.Model, Any]:
    """What is exported: the one fit, or the fits combined (`average_models`), with the recipe they read
    (`joined_recipe`). Members fitted on the same windows share their standardisation; if not, that is a bug."""
    joined = joined_recipe(recipes)
    if joined is None:
        raise DetectorError(f"{name}: the members' feature recipes cannot share one input: {recipes}")
    return (models[0] if len(models) == 1 else average_models(models, recipes, fusion)), joined


def export_windows(real: np.ndarray, augmented: np.ndarray, recipe: Any,
                   representative_windows: int) -> tuple[np.ndarray, np.ndarray]:
    """The int8 export's calibration windows (real and augmented alike) and the real windows on which its
    decisions are checked against Keras, standardised as the network was trained."""
    from train.pipeline import _standardise

    rng = np.random.default_rng(7)
    everything = np.concatenate([real, augmented])
    representative = everything[rng.choice(len(everything), min(representative_windows, len(everything)), False)]
    check = real[rng.choice(len(real), min(CHECK_WINDOWS, len(real)), False)]
    return _standardise(representative, recipe), _standardise(check, recipe)


def reused_fit(reuse_dir: Path | None, name: str, settings: dict[str, Any]) -> tuple[keras.Model, FeatureRecipe] | None:
    """A final fit saved by `save_fit` in `reuse_dir` under these settings, or None where there is none.
    One saved under other settings stops the run with one line naming the first difference."""
    from train.pipeline import refuse_other_settings

    saved = reuse_dir / f"{name}_final.json" if reuse_dir else None
    if saved is None or not saved.exists() or not saved.with_suffix(".keras").exists():
        return None
    earlier = json.loads(saved.read_text())
    refuse_other_settings(earlier["settings"], settings, f"{reuse_dir}: {name}'s saved final fit")
    print(f"[{name}] final fit reused from {reuse_dir}", flush=True)
    model = keras.models.load_model(saved.with_suffix(".keras"), custom_objects={"SpecAugment": SpecAugment})
    return model, FeatureRecipe.from_dict(earlier["recipe"])


def save_fit(report_dir: Path, name: str, model: keras.Model, recipe: FeatureRecipe, settings: dict[str, Any],
             fit_seconds: float) -> None:
    """`<name>_final.keras` and `.json` (settings, standardisation, time) in the report folder: what
    `reused_fit` loads, so members fitted in parallel processes are exported as one ensemble."""
    model.save(report_dir / f"{name}_final.keras")
    facts = {"settings": settings, "recipe": recipe.to_dict(), "fit_seconds": round(fit_seconds)}
    (report_dir / f"{name}_final.json").write_text(json.dumps(facts, indent=2) + "\n")


def final_fit(name: str, arch: Any, real_features: np.ndarray, aug_features: np.ndarray, data: Any,
              config: Any) -> tuple[keras.Model, FeatureRecipe]:
    """One member fitted on every window, with its standardisation, saved in the report folder; a run whose
    `--reuse-cv` folder holds one made under the same settings loads it instead (`reused_fit`)."""
    from train.pipeline import _train, cv_settings, with_fit_seed

    settings = {**{k: v for k, v in cv_settings(config, name).items() if k != "folds"},
                "real_windows": len(real_features), "augmented_windows": len(aug_features)}
    reused = reused_fit(config.reuse_cv, name, settings)
    if reused is not None:
        return reused
    print(f"[{name}] final fit on all {len(real_features)} real + {len(aug_features)} augmented windows", flush=True)
    started = time.perf_counter()
    model, recipe = _train(arch, real_features, aug_features, data, np.ones(len(real_features), bool),
                           np.ones(len(aug_features), bool), with_fit_seed(config, name).fit)
    save_fit(config.report_dir, name, model, recipe, settings, time.perf_counter() - started)
    return model, recipe


def ship_model(name: str, data: Any, config: Any, results: dict[str, Any]) -> dict[str, Any]:
    """Fit the shipped model (or each member of an ensemble) on every window, export int8, write its card."""
    from train.pipeline import LABELS, training_environment

    cv = results["models"][name]
    threshold = cv["threshold_choice"]["threshold"]
    if ensemble_recipe(name) is None:
        raise DetectorError(f"ensemble {name}: its members need the same features (or log-mel and PCEN)")
    names = ensemble_members(name)
    members = [architecture_of(member) for member in names]
    models, recipes = [], []
    for member_name, arch in zip(names, members, strict=True):
        real_features, aug_features = data.raw_features(arch.recipe, True)
        member, member_recipe = final_fit(member_name, arch, real_features, aug_features, data, config)
        models.append(member)
        recipes.append(member_recipe)
    model, recipe = one_network(name, models, recipes, config.fusion)
    real_features, aug_features = data.raw_features(recipe, True)  # the joined recipe's, where members differ
    representative, check = export_windows(real_features, aug_features, recipe, REPRESENTATIVE_WINDOWS)
    card = {
        "name": config.out_model.stem,
        "description": "emergency siren vs everything else: " + (
            describe(names[0]) if len(names) == 1 else
            f"{fusion_phrase(config.fusion)} " + "; and of ".join(describe(member) for member in names)),
        "version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "labels": list(LABELS),
        "positive_labels": [LABELS[1]],
        "sample_rate": 16000, "window_s": 2.0, "hop_s": 1.0,
        "features": recipe.to_dict(),
        "architecture": name, "parameters": int(model.count_params()),
        "macs_per_window": sum(count_macs(member) for member in models),
        "threshold": threshold,
        "threshold_choice": cv["threshold_choice"],
        "evaluation": card_evaluation(name, results),
        "training": {"data": TRAINING_DATA, "licence_note": LICENCE_NOTE,
                     "real_windows": len(real_features), "augmented_windows": len(aug_features),
                     "augmentation": dataclasses.asdict(config.plan),
                     "epochs": config.fit.epochs,
                     **({"mixup_alpha": config.fit.mixup_alpha} if config.fit.mixup_alpha else {}),
                     "environment": training_environment()},
    }
    written = export_model(model, representative, check, 1, threshold, card, config.out_model,
                           per_channel_weights=config.per_channel_weights)
    print(f"wrote {config.out_model} ({written['tflite_bytes']} bytes), decision agreement "
          f"{written['export_check']['decision_agreement']:.2%}", flush=True)
    return {"path": str(config.out_model), "bytes": written["tflite_bytes"], "sha256": written["tflite_sha256"],
            "export_check": written["export_check"]}
