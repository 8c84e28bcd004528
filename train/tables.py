"""The cross-validation report as Markdown tables (for the README and the model card's readers).

Usage: python -m train.tables reports/emergency/report.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

STREET_COLUMNS = ("real_sirens_under_street_audio", "generated_two_tone", "generated_three_tone",
                  "generated_wail", "generated_yelp", "generated_hilo", "generated_rumbler", "generated_phaser")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def models_table(results: dict[str, Any]) -> str:
    lines = [
        "| model | tutorial | params | MACs/window | ROC AUC | bal. acc. @0.5 | recall @0.5 | false events/h @0.5 "
        "| threshold for the budget | bal. acc. | recall | false events/h | recall US8K (street) "
        "| recall EVSS amb./fire | recall SESA |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, model in results["models"].items():
        by_dataset = model.get("recall_by_dataset", {})
        half = model.get("at_0.5", {})
        met = model.get("threshold_choice", {}).get("budget_met", True)
        lines.append(
            f"| {name} | {'yes' if model.get('tutorial') else 'no'} | {model.get('parameters', 0):,} | "
            f"{model.get('macs_per_window', 0) / 1e6:.1f} M | {model['roc_auc']:.4f} | "
            f"{half.get('balanced_accuracy', float('nan')):.4f} | {_pct(half.get('recall'))} % | "
            f"{half.get('false_events_per_hour', float('nan')):.1f} | "
            f"{model['threshold']:.3f}{'' if met else ' (budget missed)'} | "
            f"{model['balanced_accuracy']:.4f} | {_pct(model['recall'])} % | "
            f"{model['false_events_per_hour']:.2f} | {_pct(by_dataset.get('urbansound8k'))} % | "
            f"{_pct(by_dataset.get('evss-ambulance'))} / {_pct(by_dataset.get('evss-firetruck'))} % | "
            f"{_pct(by_dataset.get('sesa'))} % |"
        )
    leak = results.get("random_split_leak")
    if leak:
        lines.append(f"| leaky random split (shipped architecture) | – | – | – | {leak['roc_auc']:.4f} | – | – | – | "
                     f"{leak['threshold']:.3f} | {leak['balanced_accuracy']:.4f} | {_pct(leak['recall'])} % | "
                     f"{leak['false_events_per_hour']:.2f} | – | – | – |")
    return "\n".join(lines)


def street_table(results: dict[str, Any]) -> str:
    present = [c for c in STREET_COLUMNS if any(c in m.get("street_recall", {}) for m in results["models"].values())]
    lines = ["| model | " + " | ".join(c.replace("generated_", "gen. ").replace("_", " ") for c in present) + " |",
             "|---|" + "---:|" * len(present)]
    for name, model in results["models"].items():
        recall = model.get("street_recall", {})
        lines.append(f"| {name} | " + " | ".join(f"{_pct(recall.get(c))} %" for c in present) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    if len(args) != 1:
        print("usage: python -m train.tables REPORT.json", file=sys.stderr)
        return 2
    try:
        results = json.loads(Path(args[0]).read_text())
    except (OSError, ValueError) as error:
        print(f"train.tables: error: {args[0]}: cannot read a report ({error})", file=sys.stderr)
        return 2
    print(results["protocol"], end="\n\n")
    print(models_table(results), end="\n\n")
    print("Recall at each model's threshold on the held-out street sets (see train/street.py):\n")
    print(street_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
