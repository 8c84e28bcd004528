"""Fit the urban head on YAMNet's embedding that the daemon's YAMNet option reads (`models/yamnet_head.json`).

Measured first, as the urban model is: leave-one-fold-out over the UrbanSound8K folds present, the head
fitted on the other folds and the extra recordings (`train.urban.embedding_head_scores`), beside YAMNet's
own classes mapped onto the labels on the same windows and beside the head alone, without YAMNet's own
scores in the product (`detector.yamnet_head.with_yamnet_scores`). Then fitted on every labelled window and
written with the standardisation folded into its weights, so the runtime (`detector.yamnet_head`) needs
numpy only.

Usage: python -m train.yamnet_head --data ../shared/data/index.csv --yamnet ../shared/models/yamnet.tflite
       [--out models/yamnet_head.json] [--report reports/yamnet_head] [--yamnet-scores-weight 0.5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from detector import __version__
from detector.errors import DetectorError
from detector.model import file_sha256
from detector.windows import WindowSpec
from detector.yamnet import EMBEDDING_TENSOR, URBAN_CLASSES
from detector.yamnet_head import load_head, with_yamnet_scores
from train.datasets import DatasetError, load_datasets
from train.pipeline import write_report
from train.ship import LICENCE_NOTE
from train.urban import UrbanConfig, accuracy_report, embedding_head_scores, load_urban_data
from train.yamnet_teacher import REGULARISATION_C, fit_head

SIGNIFICANT_DIGITS = 6  # of each weight in the JSON: the probabilities move by less than 1e-5


def folded_weights(head: Pipeline) -> tuple[np.ndarray, np.ndarray]:
    """The standardise-then-regress pipeline as one affine map: softmax(weights @ x + bias) = predict_proba(x)."""
    scaler, regression = head[0], head[-1]
    weights = regression.coef_ / scaler.scale_
    return weights, regression.intercept_ - weights @ scaler.mean_


def _rounded(values: np.ndarray) -> Any:
    return np.vectorize(lambda v: float(f"{v:.{SIGNIFICANT_DIGITS}g}"), otypes=[float])(values).tolist()


def head_json(head: dict[str, Any]) -> str:
    """The head file: its description and evaluation indented for reading, one line per label's weights."""
    described = json.dumps({k: v for k, v in head.items() if k not in ("weights", "bias")}, indent=2)
    rows = ",\n".join(f"    {json.dumps(row)}" for row in head["weights"])
    return f'{described[:-2]},\n  "weights": [\n{rows}\n  ],\n  "bias": {json.dumps(head["bias"])}\n}}\n'


def build_head(data_sources: list[Path], yamnet: Path, report_dir: Path, scores_weight: float) -> dict[str, Any]:
    """Cross-validate the head, fit it on everything, and return the head file's content."""
    config = UrbanConfig(clips=tuple(load_datasets(data_sources, "label")), report_dir=report_dir,
                         augment_copies=0, yamnet_path=yamnet, out_model=None)
    data = load_urban_data(config, WindowSpec.from_seconds(16000, 2.0, 1.0))
    assert data.embeddings is not None and data.yamnet is not None
    head_alone = embedding_head_scores(data)  # one fit per fold serves both measurements
    head_cv = accuracy_report(with_yamnet_scores(head_alone, data.yamnet, scores_weight), data)
    head_alone_cv = accuracy_report(head_alone, data)
    mapped_cv = accuracy_report(data.yamnet, data)
    head = fit_head(data.embeddings, data.real.labels)
    if len(head[-1].classes_) != len(URBAN_CLASSES):
        missing = sorted(set(URBAN_CLASSES) - {list(URBAN_CLASSES)[i] for i in head[-1].classes_})
        raise DatasetError(f"the data has no windows of {', '.join(missing)}: the head needs all ten labels")
    weights, bias = folded_weights(head)
    protocol = (f"leave-one-fold-out over the complete UrbanSound8K folds {data.test_folds} (official folds; "
                f"folds {data.training_only_folds} and the extra recordings train every fold, never scored); "
                "2 s windows at 1 s hop; YAMNet's embedding = mean over three 0.975 s frames per window; slice "
                "prediction = argmax of the mean of its windows' probabilities")
    return {
        "name": "yamnet_head",
        "description": "the ten UrbanSound8K labels from YAMNet's 1024-d embedding: class-balanced multinomial "
                       f"logistic regression (C={REGULARISATION_C}), standardisation folded into the weights"
                       + (f"; its probabilities times YAMNet's own mapped scores (normalised) to the power "
                          f"{scores_weight:g}, renormalised" if scores_weight else ""),
        "version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "labels": list(URBAN_CLASSES),
        "yamnet_sha256": file_sha256(yamnet),
        "yamnet_scores_weight": scores_weight,
        "embedding": f"mean over the frames of a window of YAMNet's *{EMBEDDING_TENSOR} (1, 1024) tensor",
        "evaluation": {"protocol": protocol, "this_model": head_cv, "head_without_yamnet_scores": head_alone_cv,
                       "yamnet_classes_mapped": mapped_cv},
        "training": {"windows": len(data.real), "recordings": len(data.clips),
                     "data": "UrbanSound8K folds present and the extra recordings mapped onto the ten labels "
                             "(as the urban model, train/urban.py)",
                     "licence_note": LICENCE_NOTE},
        "weights": _rounded(weights),
        "bias": _rounded(bias),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.yamnet_head", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="index CSV or UrbanSound8K folder (as siren-train --task urban); repeatable")
    parser.add_argument("--yamnet", type=Path, required=True, help="the YAMNet .tflite the head is fitted on")
    parser.add_argument("--out", type=Path, default=Path("models/yamnet_head.json"))
    parser.add_argument("--report", type=Path, default=Path("reports/yamnet_head"))
    parser.add_argument("--yamnet-scores-weight", type=float, default=0.5,
                        help="the power of YAMNet's own mapped scores multiplied into the head's probabilities "
                             "(default 0.5; 0 = the head alone)")
    args = parser.parse_args(argv)
    try:
        if not (args.yamnet_scores_weight >= 0):
            raise DatasetError(f"--yamnet-scores-weight must be >= 0, got {args.yamnet_scores_weight}")
        if not args.yamnet.is_file():
            raise DatasetError(f"{args.yamnet}: YAMNet model file not found")
        args.report.mkdir(parents=True, exist_ok=True)
        head = build_head(args.data, args.yamnet, args.report, args.yamnet_scores_weight)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(head_json(head))
        load_head(args.out, args.yamnet)  # what the daemon will do with it
        write_report({k: v for k, v in head.items() if k not in ("weights", "bias")}, args.report)
    except DetectorError as error:
        print(f"train.yamnet_head: error: {error}", file=sys.stderr)
        return 2
    cv = head["evaluation"]
    print(f"wrote {args.out}: {cv['this_model']['slice_accuracy_mean']:.1%} mean slice accuracy on held-out "
          f"folds (the head alone: {cv['head_without_yamnet_scores']['slice_accuracy_mean']:.1%}, YAMNet's "
          f"classes mapped: {cv['yamnet_classes_mapped']['slice_accuracy_mean']:.1%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
