"""Recall at no false alarm on road traffic: the maintainers' protocol (issue 2), approximated on the data here.

They set each model's threshold so that it raises no false alarm on half an hour of ordinary road traffic,
then count the siren clips it catches. Here the traffic is the real traffic-like recordings in the index
(`--traffic`, by default EVSS traffic and UrbanSound8K engine idling, about 16 minutes), the scores are
grouped-CV out-of-fold scores (`<model>_oof.npy`, or YAMNet's `yamnet_oof.npy`, which needs no training),
and the threshold sits just above the highest score any traffic window gets. A siren clip counts as
caught when one of its windows is above it: the tracker's 1-of-1 rule at that threshold.

The maintainers count events, not windows, so each model is also replayed clip by clip through the daemon's
tracker with a fixed rule's shape (2 of 3 windows at the on-threshold, or one window above the 1-of-1
threshold at once): the on-threshold is the lowest at which no traffic clip starts an event, and a siren
clip is caught when it starts one.

One traffic window sets each threshold, so `--spare-windows K` also prints the clips caught with the
threshold above all but the k highest traffic windows, k = 0..K: how much the measure rests on that one.

Usage: python -m train.traffic_check --data INDEX.csv --oof NAME=PATH.npy ... [--traffic DATASET[/LABEL] ...]
       [--spare-windows K]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from detector.tracker import OFF_FRACTION, TrackerSettings
from train.datasets import load_dataset
from train.examples import load_siren_task_windows
from train.tune_tracker import DEFAULT_TRAFFIC, clip_sources, replay, traffic_mask

ONSET = (2, 3)  # the k of n shipped from session 6 to 15, kept so the README's tables compare
SEARCH_STEPS = 30  # bisection of the on-threshold: about 1e-9 wide at the end


def recall_above_traffic(scores: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray, datasets: np.ndarray,
                         traffic: np.ndarray, spare: int = 0) -> dict[str, Any]:
    """The threshold just above every traffic window's score but the `spare` highest, and the siren windows
    and clips (all, and per dataset) above it."""
    threshold = float(np.sort(scores[traffic])[::-1][min(spare, int(traffic.sum()) - 1)])
    positive = labels == 1
    caught = set(np.unique(clip_ids[positive & (scores > threshold)]).tolist())

    def share_caught(windows: np.ndarray) -> float:
        clips = set(np.unique(clip_ids[windows]).tolist())
        return round(len(clips & caught) / max(len(clips), 1), 4)

    return {"threshold": round(threshold, 4), "traffic_windows": int(traffic.sum()),
            "siren_windows_above": round(float(np.mean(scores[positive] > threshold)), 4),
            "siren_clips_caught": share_caught(positive),
            "by_dataset": {str(d): share_caught(positive & (datasets == d)) for d in np.unique(datasets[positive])}}


def events_above_traffic(scores: np.ndarray, labels: np.ndarray, clip_ids: np.ndarray, traffic: np.ndarray,
                         onset: tuple[int, int] = ONSET) -> dict[str, Any]:
    """The lowest on-threshold at which no traffic clip starts an event (k of n windows at it, or one window
    above every traffic window at once), and the siren clips that start one there."""
    instant = float(np.nextafter(scores[traffic].max(), np.inf))
    clips = {int(c): np.flatnonzero(clip_ids == c) for c in np.unique(clip_ids[traffic | (labels == 1)])}

    def starts(clip: int, on: float) -> bool:
        settings = TrackerSettings(on, on * OFF_FRACTION, onset[0], onset[1], instant_threshold=instant)
        return replay(settings, scores[clips[clip]])[0] > 0

    traffic_clips = [c for c, rows in clips.items() if traffic[rows[0]]]
    low, high = 0.0, instant  # at `instant` no traffic clip starts (nothing reaches it); search below
    for _ in range(SEARCH_STEPS):
        middle = (low + high) / 2
        low, high = (middle, high) if any(starts(c, middle) for c in traffic_clips) else (low, middle)
    caught = [starts(c, high) for c, rows in clips.items() if labels[rows[0]] == 1]
    return {"on_threshold": round(high, 4), "instant_threshold": round(instant, 4),
            "onset": f"{onset[0]} of {onset[1]}", "siren_clips_caught": round(float(np.mean(caught)), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.traffic_check", description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the index CSV the scores were made on")
    parser.add_argument("--oof", action="append", required=True, metavar="NAME=PATH",
                        help="out-of-fold scores saved by siren-train (<model>_oof.npy, yamnet_oof.npy)")
    parser.add_argument("--traffic", action="append", metavar="DATASET[/LABEL]",
                        help=f"traffic recordings (default: {', '.join(DEFAULT_TRAFFIC)})")
    parser.add_argument("--spare-windows", type=int, default=0, metavar="K",
                        help="also the clips caught (1 of 1) above all but the k highest traffic windows, k <= K")
    args = parser.parse_args(argv)
    if args.spare_windows < 0:
        print("traffic_check: error: --spare-windows must be at least 0", file=sys.stderr)
        return 2
    named = [item.split("=", 1) for item in args.oof]
    for item, parts in zip(args.oof, named, strict=True):
        if len(parts) != 2 or not Path(parts[1]).is_file():
            print(f"traffic_check: error: --oof {item}: expected NAME=PATH of a saved .npy file", file=sys.stderr)
            return 2

    clips = load_dataset(args.data, "binary_label")
    sources = clip_sources([args.data])
    real = load_siren_task_windows(clips)
    traffic = traffic_mask([sources[i] for i in real.clip_ids], tuple(args.traffic or DEFAULT_TRAFFIC))
    if not traffic.any() or traffic[real.labels == 1].any():
        print("traffic_check: error: --traffic matches no non-siren window (or matches sirens)", file=sys.stderr)
        return 2
    siren_sets = [str(d) for d in np.unique(real.datasets[real.labels == 1])]
    print(f"threshold just above the highest score of {int(traffic.sum())} traffic windows "
          f"({int(traffic.sum()) / 60:.0f} min at a 1 s hop); out-of-fold scores; clips caught per siren set\n"
          f"| model | threshold | siren windows above | siren clips caught | {' | '.join(siren_sets)} | "
          f"events: on-threshold ({ONSET[0]} of {ONSET[1]}) | events: siren clips caught |\n"
          f"| --- | ---: | ---: | ---: |{' ---: |' * len(siren_sets)} ---: | ---: |")
    spared: dict[str, list[float]] = {}
    for name, path in named:
        scores = np.load(path)
        if len(scores) != len(real.labels):
            print(f"traffic_check: error: {path} has {len(scores)} scores for {len(real.labels)} windows",
                  file=sys.stderr)
            return 2
        row = recall_above_traffic(scores, real.labels, real.clip_ids, real.datasets, traffic)
        events = events_above_traffic(scores, real.labels, real.clip_ids, traffic)
        per_set = " | ".join(f"{row['by_dataset'][d]:.1%}" for d in siren_sets)
        print(f"| {name} | {row['threshold']:.4f} | {row['siren_windows_above']:.1%} | "
              f"{row['siren_clips_caught']:.1%} | {per_set} | {events['on_threshold']:.4f} | "
              f"{events['siren_clips_caught']:.1%} |", flush=True)
        if args.spare_windows:  # k = 0 is the row just printed
            above = (recall_above_traffic(scores, real.labels, real.clip_ids, real.datasets, traffic, k)
                     for k in range(1, args.spare_windows + 1))
            spared[name] = [row["siren_clips_caught"], *(more["siren_clips_caught"] for more in above)]
    if spared:
        print(f"\nsiren clips caught (1 of 1) above all but the k highest traffic windows\n"
              f"| model | {' | '.join(f'k = {k}' for k in range(args.spare_windows + 1))} |\n"
              f"| --- |{' ---: |' * (args.spare_windows + 1)}")
        for name, caught in spared.items():
            print(f"| {name} | {' | '.join(f'{share:.1%}' for share in caught)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
