"""Choose the daemon's event-tracker defaults by measuring them on out-of-fold scores.

Every real clip's windows (2 s at a 1 s hop) are replayed, in order, through the runtime's EventTracker
with each candidate setting. A siren clip counts as caught when it gives a start event; every start on a
non-siren clip is a false event. The chosen setting catches the most siren clips within the false-event
budget and with no start on the ordinary road traffic among them (`--traffic`, default EVSS traffic and
UrbanSound8K engine idling: issue 2's bar is no false event on half an hour of traffic; `--traffic-events N`
allows N); ties go to the fewer false events.

With `--confirm YAMNET.npy` (YAMNet's siren score per real window, as `train.baseline` saves it) the grid is
replayed again with the daemon's YAMNet veto (`detector.scoring`) at each of several confirm thresholds.
The delay is how far into a caught siren clip its start event is published (window end), median and p95.

Usage: python -m train.tune_tracker --data INDEX.csv --oof PATH.npy [--budget 10] [--out tracker.json]
       [--card models/emergency.json]   (writes the choice into the card, where the daemon reads it)
       [--confirm yamnet_oof.npy]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from detector.scoring import vetoed
from detector.tracker import OFF_FRACTION, EventTracker, TrackerSettings
from train.datasets import load_dataset
from train.examples import load_siren_task_windows

# every 0.025 from 0.5 to 0.975: 0.05 steps left up to 3 points of siren clips between neighbours (session 28)
ON_THRESHOLDS = tuple(round(0.5 + 0.025 * step, 3) for step in range(20))
# the off-threshold is the daemon's default (OFF_FRACTION of the on-threshold): it changes how long events
# last, not how many start
ONSETS = ((1, 1), (2, 2), (2, 3), (3, 3))  # (k, n)
INSTANTS = (None, 0.95, 0.97, 0.99)  # one window this sure starts an event at once (None: k of n only)
CONFIRM_THRESHOLDS = (0.02, 0.05, 0.1, 0.2, 0.3)
WINDOW_S, HOP_S = 2.0, 1.0
DEFAULT_TRAFFIC = ("evss-traffic", "urbansound8k/engine_idling")  # ordinary road traffic in ../shared/data


def grid(instants: tuple[float | None, ...] = INSTANTS) -> list[TrackerSettings]:
    """Every candidate setting; an instant threshold only where it adds a path (k > 1, above the on-threshold)."""
    return [TrackerSettings(on_threshold=on, off_threshold=on * OFF_FRACTION, onset_windows=k, onset_of=n,
                            instant_threshold=instant)
            for on, (k, n), instant in itertools.product(ON_THRESHOLDS, ONSETS, instants)
            if instant is None or (k > 1 and instant > on)]


def _rank(row: dict[str, Any]) -> tuple[float, float, float]:
    """Most siren clips caught, then fewest false events, then the soonest start."""
    return row["siren_clip_recall"], -row["false_events_per_hour"], -(row["delay_s_median"] or 99.0)


def replay(settings: TrackerSettings, scores: np.ndarray) -> tuple[int, float | None]:
    """Start events one clip's scores give, and when the first was published (end of its window)."""
    tracker = EventTracker("emergency", settings, WINDOW_S)
    starts, first = 0, None
    for i, score in enumerate(scores):
        for event in tracker.update(i * HOP_S, float(score)):
            if event.type == "start":
                starts += 1
                first = i * HOP_S + WINDOW_S if first is None else first
    return starts, first


def clip_sources(data: list[Path]) -> list[str]:
    """Each clip's `dataset/label` by its source label, in `load_dataset`'s order (the `clip_ids` of its windows),
    whichever label column the clips were trained on: what `traffic_mask` matches."""
    return [f"{clip.dataset}/{clip.label}" for source in data for clip in load_dataset(source, "label")]


def traffic_mask(sources: list[str], traffic: tuple[str, ...]) -> np.ndarray:
    """Which windows (or clips) are traffic: `sources[i]` is the window's `dataset/label`; a spec matches the dataset
    alone or the dataset and label."""
    return np.array([source in traffic or source.split("/", 1)[0] in traffic for source in sources], bool)


def choose(rows: list[dict[str, Any]], budget: float, traffic_events: int) -> dict[str, Any] | None:
    """The best row (`_rank`) within `budget` false events/h and at most `traffic_events` starts on traffic."""
    within = [r for r in rows if r["false_events_per_hour"] <= budget and r["traffic_events"] <= traffic_events]
    return max(within, key=_rank) if within else None


def measure(settings: TrackerSettings, clips: list[tuple[bool, np.ndarray]], negative_hours: float,
            traffic: np.ndarray) -> dict[str, Any]:
    """One setting replayed over every clip (positive?, scores); `traffic` flags the clips of ordinary road
    traffic, whose starts are also counted on their own."""
    positives = false_events = traffic_events = 0
    delays = []
    for (positive, scores), is_traffic in zip(clips, traffic, strict=True):
        starts, first = replay(settings, scores)
        if positive:
            positives += 1
            delays += [first] if first is not None else []
        else:
            false_events += starts
            traffic_events += starts if is_traffic else 0
    return {"on_threshold": settings.on_threshold, "off_threshold": round(settings.off_threshold, 4),
            "onset_windows": settings.onset_windows, "onset_of": settings.onset_of,
            "instant_threshold": settings.instant_threshold,
            "siren_clip_recall": round(len(delays) / max(positives, 1), 4),
            "false_events_per_hour": round(false_events / negative_hours, 2), "traffic_events": traffic_events,
            "delay_s_median": float(np.median(delays)) if delays else None,
            "delay_s_p95": round(float(np.percentile(delays, 95)), 2) if delays else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--label-column", default="binary_label")
    parser.add_argument("--oof", type=Path, required=True, help="<model>_oof.npy saved by siren-train")
    parser.add_argument("--budget", type=float, default=10.0, help="false events per hour of non-siren audio")
    parser.add_argument("--out", type=Path, help="JSON of every setting measured and the choice")
    parser.add_argument("--card", type=Path, help="model card to write the chosen settings into")
    parser.add_argument("--confirm", type=Path, help="YAMNet siren scores per real window (.npy): measure the veto")
    parser.add_argument("--traffic", action="append", metavar="DATASET[/LABEL]",
                        help=f"ordinary road traffic (default: {', '.join(DEFAULT_TRAFFIC)})")
    parser.add_argument("--traffic-events", type=int, default=0,
                        help="false events allowed on the traffic clips (default 0)")
    args = parser.parse_args(argv)
    for given in (args.oof, args.confirm, args.card):
        if given is not None and not given.is_file():
            print(f"tune_tracker: error: {given}: no such file", file=sys.stderr)
            return 2

    all_clips = [clip for source in args.data for clip in load_dataset(source, args.label_column)]
    real = load_siren_task_windows(all_clips)
    scores = np.load(args.oof)
    if len(scores) != len(real.labels):
        print(f"tune_tracker: error: {args.oof} has {len(scores)} scores for {len(real.labels)} windows",
              file=sys.stderr)
        return 2
    order = np.argsort(real.clip_ids, kind="stable")  # windows stay in time order within a clip
    boundaries = np.flatnonzero(np.diff(real.clip_ids[order])) + 1
    parts = np.split(order, boundaries)
    clips = [(bool(real.labels[part[0]]), scores[part]) for part in parts]
    sources = clip_sources(args.data)
    traffic_specs = tuple(args.traffic or DEFAULT_TRAFFIC)
    is_traffic = traffic_mask([sources[real.clip_ids[part[0]]] for part in parts], traffic_specs)
    if args.traffic and not is_traffic.any():
        print(f"tune_tracker: error: --traffic {', '.join(args.traffic)} matches no clip", file=sys.stderr)
        return 2
    negative_hours = float((real.labels == 0).sum()) * HOP_S / 3600
    rows = [measure(settings, clips, negative_hours, is_traffic) for settings in grid()]
    choice = choose(rows, args.budget, args.traffic_events)
    print(f"traffic: {is_traffic.sum()} clips ({', '.join(traffic_specs)})\n"
          "| on | off | k of n | or one window >= | siren clips caught | false events/h | traffic events | "
          "delay s median / p95 |\n| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in sorted(rows, key=lambda r: -r["siren_clip_recall"]):
        if row["false_events_per_hour"] <= 3 * args.budget:
            print(f"| {row['on_threshold']} | {row['off_threshold']} | {row['onset_windows']} of {row['onset_of']} "
                  f"| {row['instant_threshold'] or '-'} | {row['siren_clip_recall']:.1%} | "
                  f"{row['false_events_per_hour']} | {row['traffic_events']} | "
                  f"{row['delay_s_median']} / {row['delay_s_p95']} |")
    print(f"chosen within {args.budget:g} false events/h and {args.traffic_events} on traffic: {choice}")
    confirm_rows = []
    confirm_choice = None
    if args.confirm:
        yamnet = np.load(args.confirm)
        print("\nwith the YAMNet veto: the best setting within the budget per confirm threshold\n"
              "| confirm threshold | on | k of n | siren clips caught | false events/h | traffic events | "
              "delay s median / p95 |\n| --- | --- | --- | --- | --- | --- | --- |")
        for threshold in CONFIRM_THRESHOLDS:
            measured = []
            for settings in grid(instants=(None,)):
                held = vetoed(scores, yamnet, settings.on_threshold, threshold)
                measured.append({"confirm_threshold": threshold,
                                 **measure(settings, [(c[0], held[part]) for part, c in zip(parts, clips, strict=True)],
                                           negative_hours, is_traffic)})
            best = choose(measured, args.budget, args.traffic_events)
            confirm_rows += measured
            if best and (confirm_choice is None or _rank(best) > _rank(confirm_choice)):
                confirm_choice = best
            if best:
                print(f"| {threshold} | {best['on_threshold']} | {best['onset_windows']} of {best['onset_of']} | "
                      f"{best['siren_clip_recall']:.1%} | {best['false_events_per_hour']} | {best['traffic_events']} | "
                      f"{best['delay_s_median']} / {best['delay_s_p95']} |")
    protocol = (f"out-of-fold scores of grouped CV replayed through the daemon's tracker, {len(clips)} real clips "
                f"of {', '.join(str(d) for d in args.data)}, {negative_hours:.2f} h non-siren; a siren clip is caught "
                "when the tracker starts an event in it; false events are starts on non-siren clips; chosen: most "
                f"siren clips caught within {args.budget:g} false events/h and with at most {args.traffic_events} "
                f"on the {is_traffic.sum()} clips of ordinary traffic among them ({', '.join(traffic_specs)})")
    if args.out:
        args.out.write_text(json.dumps({"protocol": protocol, "budget_per_hour": args.budget, "choice": choice,
                                        "settings": rows, "yamnet_veto": confirm_rows}, indent=2) + "\n")
    if args.card and choice:
        card = json.loads(args.card.read_text())
        keys = ("on_threshold", "off_threshold", "onset_windows", "onset_of", "instant_threshold")
        card["tracker"] = {**{k: choice[k] for k in keys},
                           "measured": {k: choice[k] for k in ("siren_clip_recall", "false_events_per_hour",
                                                               "traffic_events")},
                           "protocol": protocol}
        if confirm_choice:  # what the daemon uses when a YAMNet file is configured to confirm onsets
            veto_keys = ("on_threshold", "off_threshold", "onset_windows", "onset_of", "confirm_threshold")
            card["tracker_with_yamnet_veto"] = {
                **{k: confirm_choice[k] for k in veto_keys},
                "measured": {k: confirm_choice[k] for k in ("siren_clip_recall", "false_events_per_hour",
                                                            "traffic_events")},
                "protocol": protocol + "; onsets YAMNet does not confirm are vetoed (detector.scoring)"}
        args.card.write_text(json.dumps(card, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
