"""Accuracy against cost for every model of the zoo: size, MACs, per-window time, grouped-CV accuracy.

Each architecture is built by `train.models`, exported to int8 TFLite the way `siren-train` ships a model
(calibrated on random inputs here: timing does not depend on the weights) and timed in LiteRT on one core,
features included. Accuracy comes from `benchmarks/cv_accuracy.json`, the saved grouped-CV figures.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import summary_ms
from detector.features import compute_features
from detector.model import Quantization, make_interpreter

CV_ACCURACY = Path(__file__).parent / "cv_accuracy.json"


def _time_tflite(path: Path, recipe: Any, windows: np.ndarray) -> dict[str, float]:
    interpreter = make_interpreter(path, num_threads=1)
    details = interpreter.get_input_details()[0]
    quantization = Quantization.from_details(details)
    times = []
    for window in windows:
        started = time.perf_counter()
        features = compute_features(window[None], recipe)
        interpreter.set_tensor(details["index"], quantization.quantize(features.reshape(details["shape"])))
        interpreter.invoke()
        interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        times.append((time.perf_counter() - started) * 1e3)
    return summary_ms(times[10:])


def _yamnet_row(path: Path, windows: np.ndarray) -> dict[str, Any]:
    from detector.yamnet import YamnetTagger

    tagger = YamnetTagger(path, num_threads=1)
    times = []
    for window in windows:
        started = time.perf_counter()
        tagger.window_scores(window)
        times.append((time.perf_counter() - started) * 1e3)
    return {"tflite_bytes": path.stat().st_size, "per_window": summary_ms(times[10:]),
            "note": "float TFLite as published, three 0.975 s frames per 2 s window"}


def run(windows: np.ndarray, yamnet: Path | None) -> dict[str, Any]:
    from train.export import convert_int8
    from train.models import ARCHITECTURES, architecture_of, count_macs, ensemble_members, ensemble_recipe
    from train.pipeline import raw_recipe
    from train.ship import average_models

    accuracy = json.loads(CV_ACCURACY.read_text())
    rows: dict[str, Any] = {}
    rng = np.random.default_rng(0)
    ensembles = [name for name in accuracy["models"] if "+" in name]  # `a+b`: one graph, as siren-train ships it
    for name in [*ARCHITECTURES, *ensembles]:
        archs = [architecture_of(member) for member in ensemble_members(name)]
        arch = archs[0]
        joined = ensemble_recipe(name)  # log-mel and PCEN members read one stacked input
        if joined is None:
            raise ValueError(f"{name}: its members cannot share one input")
        recipe = raw_recipe(joined)
        members = [member.build(member.recipe.shape(windows.shape[1]), 2) for member in archs]
        fusion = accuracy["models"].get(name, {}).get("fusion", "probabilities")  # as that ensemble shipped
        model = members[0] if len(members) == 1 else average_models(members, [a.recipe for a in archs], fusion)
        calibration = compute_features(windows[:50], recipe)
        calibration = calibration + rng.normal(0, 1e-3, calibration.shape).astype(np.float32)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "model.tflite"
            path.write_bytes(convert_int8(model, calibration))
            rows[name] = {"tutorial": arch.tutorial, "parameters": int(model.count_params()),
                          "macs_per_window": sum(count_macs(member) for member in members),
                          "tflite_bytes": path.stat().st_size,
                          "per_window": _time_tflite(path, recipe, windows),
                          "cv": accuracy["models"].get(name)}
    if yamnet is not None and yamnet.is_file():
        rows["yamnet"] = {"tutorial": False, "parameters": 3_700_000, "macs_per_window": 3 * 69_200_000,
                          **_yamnet_row(yamnet, windows), "cv": accuracy["models"].get("yamnet")}
    return {"protocol": accuracy["protocol"], "models": rows}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, row in result["models"].items():
        if not row["cv"]:
            continue
        colour = "tab:grey" if row["tutorial"] else ("tab:purple" if name == "yamnet" else "tab:blue")
        for ax, key in zip(axes, ("roc_auc", "recall_at_budget"), strict=True):
            ax.scatter(row["per_window"]["median_ms"], row["cv"][key], s=40 + row["tflite_bytes"] / 4000, c=colour)
            ax.annotate(name, (row["per_window"]["median_ms"], row["cv"][key]), fontsize=8,
                        xytext=(4, 3), textcoords="offset points")
    for ax, label in zip(axes, ("ROC AUC", "recall at 10 false events/h"), strict=True):
        ax.set_xscale("log")
        ax.set_xlabel("features + inference per 2 s window, ms (median, one core)")
        ax.set_ylabel(f"{label} (grouped 3-fold CV)")
        ax.grid(alpha=0.3)
    figure.suptitle("Accuracy/cost frontier (grey: tutorial models, blue: ours, purple: YAMNet; size ~ file)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def table(result: dict[str, Any]) -> str:
    lines = ["Accuracy/cost frontier (int8 unless noted; accuracy: grouped 3-fold CV, see cv_accuracy.json)",
             "| model | tutorial | params | MACs/window | file KB | ms/window (median / p95) | ROC AUC | "
             "bal. acc. @0.5 | recall @10 FA/h |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in result["models"].items():
        cv = row["cv"] or {}

        def cell(key: str, cv: dict[str, Any] = cv) -> str:
            return "not cross-validated" if key not in cv else f"{cv[key]:.4f}"

        lines.append(f"| {name} | {'yes' if row['tutorial'] else 'no'} | {row['parameters']:,} | "
                     f"{row['macs_per_window'] / 1e6:.1f} M | {row['tflite_bytes'] / 1024:.0f} | "
                     f"{row['per_window']['median_ms']:.2f} / {row['per_window']['p95_ms']:.2f} | "
                     f"{cell('roc_auc')} | {cell('balanced_accuracy_at_0_5')} | {cell('recall_at_budget')} |")
    return "\n".join(lines)
