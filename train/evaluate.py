"""Honest numbers: grouped folds, window and event metrics, the threshold choice, and the plots.

Metrics are computed on real windows of held-out recordings. False alarms are counted as events (the
runtime's event rule applied to each held-out non-siren clip) per hour of non-siren audio.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.events import EventRule, active_runs


def assign_folds(groups: Sequence[str], us8k_folds: Sequence[int | None], k: int) -> dict[str, int]:
    """Group -> CV fold: UrbanSound8K keeps its official folds whole, other groups go by a stable hash.

    A group with an UrbanSound8K slice follows that slice's fold even where a clip of another dataset
    (an ESC-50 cut of the same Freesound recording) comes first.
    """
    assignment = {group: (us8k_fold - 1) % k
                  for group, us8k_fold in zip(groups, us8k_folds, strict=True) if us8k_fold is not None}
    for group in groups:
        if group not in assignment:
            assignment[group] = int(hashlib.sha256(group.encode()).hexdigest(), 16) % k
    return assignment


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) statistic, ties counted half."""
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([positives, negatives]), kind="mergesort")
    ranks = np.empty(len(order))
    values = np.concatenate([positives, negatives])[order]
    ranks_sorted = np.arange(1, len(order) + 1, dtype=float)
    _, first, counts = np.unique(values, return_index=True, return_counts=True)
    for start, count in zip(first, counts, strict=True):
        ranks_sorted[start : start + count] = ranks_sorted[start : start + count].mean()
    ranks[order] = ranks_sorted
    return float((ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2)
                 / (len(positives) * len(negatives)))


def false_events(scores: np.ndarray, clip_ids: np.ndarray, rule: EventRule) -> int:
    """Events the runtime's rule would raise over the given (non-siren) windows, clip by clip."""
    total = 0
    for clip in np.unique(clip_ids):
        total += len(active_runs(scores[clip_ids == clip] >= rule.threshold, rule.merge_gap_windows))
    return total


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    false_events_per_hour: float
    budget_per_hour: float
    budget_met: bool
    rule: str


MAX_THRESHOLD = 0.99  # int8 softmax outputs move in steps of 1/256: finer thresholds mean nothing


def choose_threshold(labels: np.ndarray, scores: np.ndarray, clip_ids: np.ndarray, negative_hours: float,
                     budget_per_hour: float) -> ThresholdChoice:
    """The lowest threshold whose false events on held-out non-siren audio stay within the budget.

    Candidates are the negatives' scores (to 4 decimals) plus a grid up to 0.99, scanned downwards
    until the budget is exceeded; if even the highest candidate exceeds it, `budget_met` is False.
    """
    negative = labels == 0
    candidates = np.unique(np.concatenate([np.round(scores[negative], 4), [0.5],
                                           np.linspace(0.9, MAX_THRESHOLD, 46)]))
    candidates = candidates[candidates <= MAX_THRESHOLD]

    def rate(threshold: float) -> float:
        return false_events(scores[negative], clip_ids[negative], EventRule(threshold)) / negative_hours

    best = MAX_THRESHOLD
    for threshold in candidates[::-1]:
        if rate(float(threshold)) > budget_per_hour:
            break
        best = float(threshold)
    best = float(np.clip(best + 1e-4, 0.05, MAX_THRESHOLD))  # just above the last admitted false alarm
    achieved = rate(best)
    return ThresholdChoice(round(best, 5), achieved, budget_per_hour, achieved <= budget_per_hour,
                           f"lowest threshold with at most {budget_per_hour:g} false event per hour of "
                           "held-out non-siren audio (out-of-fold scores, event rule per clip)")


def summarise(labels: np.ndarray, scores: np.ndarray, clip_ids: np.ndarray, datasets: np.ndarray,
              threshold: float, negative_hours: float) -> dict[str, Any]:
    """Balanced accuracy, recall, false alarms, ROC AUC, and recall per source dataset."""
    predicted = scores >= threshold
    recall = float(predicted[labels == 1].mean()) if np.any(labels == 1) else float("nan")
    specificity = float((~predicted[labels == 0]).mean()) if np.any(labels == 0) else float("nan")
    negative = labels == 0
    return {
        "threshold": round(threshold, 5),
        "balanced_accuracy": round((recall + specificity) / 2, 4),
        "recall": round(recall, 4),
        "specificity": round(specificity, 4),
        "roc_auc": round(roc_auc(labels, scores), 4),
        "false_events_per_hour": round(
            false_events(scores[negative], clip_ids[negative], EventRule(threshold)) / negative_hours, 3),
        "false_positive_windows_per_hour": round(float(predicted[negative].sum()) / negative_hours, 2),
        "recall_by_dataset": {
            str(name): round(float(predicted[(labels == 1) & (datasets == name)].mean()), 4)
            for name in sorted(set(datasets[labels == 1]))
        },
        "windows": len(labels),
        "positive_windows": int((labels == 1).sum()),
    }


def evaluate_at_budget(labels: np.ndarray, scores: np.ndarray, clip_ids: np.ndarray, datasets: np.ndarray,
                       negative_hours: float, budget_per_hour: float) -> dict[str, Any]:
    """The threshold for the false-alarm budget, the summary at it, and the summary at 0.5 to compare."""
    choice = choose_threshold(labels, scores, clip_ids, negative_hours, budget_per_hour)
    summary = summarise(labels, scores, clip_ids, datasets, choice.threshold, negative_hours)
    summary["threshold_choice"] = dataclasses.asdict(choice)
    summary["at_0.5"] = summarise(labels, scores, clip_ids, datasets, 0.5, negative_hours)
    return summary


def plot_report(labels: np.ndarray, scores: np.ndarray, threshold: float, title: str, path: Path) -> None:
    """Confusion matrix, ROC, precision-recall and score histograms with the threshold, in one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = np.argsort(-scores)
    sorted_labels = labels[order]
    true_pos = np.cumsum(sorted_labels)
    false_pos = np.cumsum(1 - sorted_labels)
    tpr = true_pos / max(1, sorted_labels.sum())
    fpr = false_pos / max(1, (1 - sorted_labels).sum())
    precision = true_pos / np.arange(1, len(sorted_labels) + 1)
    predicted = scores >= threshold
    confusion = np.array([[np.sum(~predicted & (labels == 0)), np.sum(predicted & (labels == 0))],
                          [np.sum(~predicted & (labels == 1)), np.sum(predicted & (labels == 1))]])

    figure, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    axes[0].imshow(confusion, cmap="Blues")
    for (row, col), value in np.ndenumerate(confusion):
        axes[0].text(col, row, str(value), ha="center", va="center", fontsize=12)
    axes[0].set(xticks=[0, 1], yticks=[0, 1], xticklabels=["non-siren", "siren"],
                yticklabels=["non-siren", "siren"], xlabel="predicted", ylabel="true",
                title=f"confusion at threshold {threshold:.3f}")
    axes[1].plot(fpr, tpr)
    axes[1].set(xlabel="false positive rate", ylabel="true positive rate",
                title=f"ROC (AUC {roc_auc(labels, scores):.4f})")
    axes[2].plot(tpr, precision)
    axes[2].set(xlabel="recall", ylabel="precision", title="precision-recall")
    bins = np.linspace(0, 1, 41)
    axes[3].hist(scores[labels == 0], bins=bins, alpha=0.6, label="non-siren", log=True)
    axes[3].hist(scores[labels == 1], bins=bins, alpha=0.6, label="siren", log=True)
    axes[3].axvline(threshold, color="k", linestyle="--", label="threshold")
    axes[3].set(xlabel="siren score", ylabel="windows", title="score histogram")
    axes[3].legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
