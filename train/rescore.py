"""Re-evaluate saved out-of-fold scores at another false-alarm budget, and re-threshold a shipped card.

Cross-validation is the expensive part; the threshold is a choice made on its out-of-fold scores. This
re-reads the same real windows (same order as the pipeline), re-chooses every model's threshold for
`--false-events-per-hour`, and, with `--card`, writes that threshold and the numbers at it into the card
(the .tflite and its sha256 are unchanged).

Usage: python -m train.rescore --data INDEX.csv --oof NAME=PATH.npy ... [--yamnet PATH]
       --false-events-per-hour 10 [--card models/emergency.tflite --ship NAME] --out report.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from train.datasets import load_dataset
from train.evaluate import evaluate_at_budget, plot_report
from train.examples import load_siren_task_windows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.rescore", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--label-column", default="binary_label")
    parser.add_argument("--oof", action="append", required=True, metavar="NAME=PATH",
                        help="a model's out-of-fold scores saved by siren-train (<model>_oof.npy)")
    parser.add_argument("--yamnet", type=Path, help="also score YAMNet off the shelf on the same windows")
    parser.add_argument("--false-events-per-hour", type=float, required=True)
    parser.add_argument("--previous", type=Path, nargs="*", default=[],
                        help="earlier report.json files whose per-model facts (size, MACs, protocol) to keep")
    parser.add_argument("--card", type=Path, help="shipped .tflite whose card takes the new threshold")
    parser.add_argument("--ship", help="which --oof name the card's model is")
    parser.add_argument("--out", type=Path, required=True, help="report.json to write (PNGs beside it)")
    args = parser.parse_args(argv)

    clips = [clip for source in args.data for clip in load_dataset(source, args.label_column)]
    real = load_siren_task_windows(clips)
    hours = float((real.labels == 0).sum()) / 3600
    facts: dict[str, dict[str, Any]] = {}
    protocol = ""
    for previous in args.previous:
        earlier = json.loads(previous.read_text())
        protocol = earlier["protocol"]
        facts.update(earlier["models"])
    named = dict(item.split("=", 1) for item in args.oof)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.yamnet:
        from detector.yamnet import YamnetTagger
        from train.baseline import yamnet_siren_scores

        yamnet_path = args.out.parent / "yamnet_oof.npy"
        if not yamnet_path.exists():
            np.save(yamnet_path, yamnet_siren_scores(YamnetTagger(args.yamnet), real.windows, "YAMNet"))
        named["yamnet"] = str(yamnet_path)
    results: dict[str, Any] = {
        "protocol": protocol.split("; threshold =")[0] + f"; threshold = lowest with <= "
                    f"{args.false_events_per_hour:g} false event/h of non-siren audio (re-chosen on saved "
                    "out-of-fold scores by train.rescore)",
        "non_siren_hours": round(hours, 3), "models": {},
    }
    for name, path in named.items():
        scores = np.load(path)
        if len(scores) != len(real.labels):
            print(f"rescore: error: {path} has {len(scores)} scores for {len(real.labels)} windows", file=sys.stderr)
            return 2
        keep = {k: v for k, v in facts.get(name, {}).items()
                if k in ("name", "description", "tutorial", "parameters", "macs_per_window", "trained_on", "epochs")}
        results["models"][name] = {**keep, **evaluate_at_budget(real.labels, scores, real.clip_ids, real.datasets,
                                                                hours, args.false_events_per_hour)}
        plot_report(real.labels, scores, results["models"][name]["threshold"], f"{name}: out-of-fold",
                    args.out.parent / f"{name}.png")
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.card and args.ship:
        card_path = args.card.with_suffix(".json")
        card = json.loads(card_path.read_text())
        shipped = results["models"][args.ship]
        card["export_check"].setdefault("threshold", card["threshold"])  # what the int8 check was measured at
        card["threshold"] = shipped["threshold"]
        card["threshold_choice"] = shipped["threshold_choice"]
        card["evaluation"]["this_model_rescored"] = shipped
        card["evaluation"]["baselines_same_folds_rescored"] = {
            name: {k: m[k] for k in ("roc_auc", "balanced_accuracy", "recall", "false_events_per_hour", "threshold",
                                     "at_0.5")}
            for name, m in results["models"].items() if name != args.ship}
        card["evaluation"]["rescore_protocol"] = results["protocol"]
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
