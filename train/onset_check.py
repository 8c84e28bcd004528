"""How soon the daemon starts an event after a generated siren begins, for an exported model and its card.

Why: the grouped CV counts which clips a model catches, not how soon. Session 30's candidate caught more real
clips than the shipped model and started one generated two-tone 8 s late; only the real-time latency benchmark
(50 sirens, minutes of wall time) showed it. This scores the benchmark's scenes offline (street traffic and
wind, an 8 s siren every 18 s; scene k is seed 100 + k, so the first five are the benchmark's), window by window
with the int8 model, through the daemon's tracker with the card's settings. A siren's delay is audio time: the
end of the window whose score starts its event, minus its onset (the benchmark adds a few ms of processing).

The check fails (exit 1) when a siren starts no event, or the delays' p95 or max exceed the limits
(`OnsetLimits`); with `--card` the result is written into the card (`"onset_check"`) either way, so the card
says how its model starts sirens.

`--snr-db` sets how loud the sirens are against the street (default 0 to 15 dB, the benchmark's): the same
scenes with quieter sirens show how far down a model still starts them, and how late.

`--yamnet PATH --tracker JSON` scores the same scenes with YAMNet off the shelf (the baseline beside every
model of ours), through the tracker `train.tune_tracker --oof yamnet_oof.npy --out JSON` chose for its
out-of-fold scores by the card's rule.

Usage: python -m train.onset_check --model models/emergency.tflite [--scenes 40] [--p95-limit-s 3]
       [--max-limit-s 5] [--snr-db LOW HIGH] [--tracker JSON] [--card]
       python -m train.onset_check --yamnet yamnet.tflite --tracker JSON [--scenes 40] [--snr-db LOW HIGH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import DetectionConfig
from detector.errors import ConfigError, DetectorError, ModelError
from detector.model import Classifier, card_path_for
from detector.synth import SIREN_KINDS, SceneEvent, generate_scene, periodic_siren_times
from detector.tracker import EventTracker, TrackerSettings, settings_for
from detector.windows import WindowSpec, cut_windows
from detector.yamnet import SAMPLE_RATE as YAMNET_RATE
from detector.yamnet import YamnetTagger

FIRST_SEED = 100  # the latency benchmark's first stream
SIRENS_PER_SCENE = 10
LATE_LISTED = 10  # the slowest sirens the card names
SCENE_SNR_DB = (0.0, 15.0)  # each siren against the street during it: the latency benchmark's (generate_scene's)


@dataclass(frozen=True)
class OnsetLimits:
    """What a model must keep to pass: 95 % of sirens started within `p95_s` (PRODUCT.md's couple of seconds:
    the first window holding 2 s of siren ends 2 s after the onset, plus one hop), none later than `max_s`,
    none missed. The shipped session-28 model measured 2 / 4 s on 400 sirens; session 30's rejected candidate
    started a two-tone 8 s late."""

    p95_s: float = 3.0
    max_s: float = 5.0

    def kept(self, overall: dict[str, Any]) -> bool:
        return (overall["started"] == overall["sirens"] and overall["p95_s"] is not None
                and overall["p95_s"] <= self.p95_s and overall["max_s"] <= self.max_s)


@dataclass(frozen=True)
class SirenOnset:
    """One generated siren: which scene, what kind, when it began, how late its event started (None: never)."""

    seed: int
    kind: str
    onset_s: float
    delay_s: float | None
    peak_score: float  # the highest score of a window holding some of it


@dataclass(frozen=True)
class SceneScorer:
    """What scores the scenes: a siren score for each window, the audio it needs, and how the protocol names it."""

    description: str
    sample_rate: int
    window_s: float
    siren_scores: Callable[[np.ndarray], np.ndarray]  # (windows, samples) -> (windows,)


def model_scorer(model: Path, hop_s: float) -> tuple[SceneScorer, TrackerSettings]:
    """An exported siren model, and the tracker the daemon would run it with (its card's, at this hop)."""
    classifier = Classifier(model)
    card = classifier.card
    if len(card.positive_labels) != 1:
        raise ModelError(f"{model}: a siren model has one positive label; its card lists {len(card.positive_labels)}")
    column = card.labels.index(card.positive_labels[0])
    scorer = SceneScorer("this int8 model", card.sample_rate, card.window_s,
                         lambda windows: classifier.predict(windows)[:, column])
    return scorer, settings_for(card, DetectionConfig(model=model, hop_s=hop_s))


def yamnet_scorer(path: Path) -> SceneScorer:
    """YAMNet off the shelf, scored as `train.baseline` scores it (its siren classes' max over a window's frames):
    the baseline beside our models, never shipped."""
    tagger = YamnetTagger(path)
    return SceneScorer("YAMNet off the shelf (the max of its siren and emergency-vehicle classes)", YAMNET_RATE, 2.0,
                       lambda windows: np.array([tagger.siren_score(tagger.window_scores(w)) for w in windows]))


def tracker_from_choice(path: Path) -> TrackerSettings:
    """The setting `train.tune_tracker --out` chose, with the daemon's defaults for how events end."""
    try:
        choice = json.loads(path.read_text())["choice"]
        defaults = DetectionConfig()
        return TrackerSettings(on_threshold=float(choice["on_threshold"]), off_threshold=float(choice["off_threshold"]),
                               onset_windows=int(choice["onset_windows"]), onset_of=int(choice["onset_of"]),
                               offset_windows=defaults.offset_windows, min_event_s=defaults.min_event_s,
                               refractory_s=defaults.refractory_s, instant_threshold=choice["instant_threshold"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(f"{path}: not a tracker choice written by train.tune_tracker --out "
                          f"({type(error).__name__}: {error})") from None


def siren_onsets(truth: list[SceneEvent], window_starts_s: np.ndarray, scores: np.ndarray, window_s: float,
                 settings: TrackerSettings, seed: int) -> tuple[list[SirenOnset], int]:
    """One scene's window scores (in time order) through the tracker: each true siren's onset delay, and the
    starts published while no window holding a siren could have ended (false starts on the street)."""
    tracker = EventTracker("emergency", settings, window_s)
    published_s = [float(start_s) + window_s for start_s, score in zip(window_starts_s, scores, strict=True)
                   for event in tracker.update(float(start_s), float(score)) if event.type == "start"]
    ends_s = window_starts_s + window_s
    onsets, claimed = [], set()
    for siren in truth:
        mine = [p for p in published_s if siren.start_s < p < siren.end_s + window_s]
        claimed.update(mine)
        holding = (ends_s > siren.start_s) & (window_starts_s < siren.end_s)
        onsets.append(SirenOnset(seed, siren.kind, siren.start_s,
                                 round(mine[0] - siren.start_s, 3) if mine else None,
                                 round(float(scores[holding].max()), 4) if holding.any() else 0.0))
    return onsets, len(set(published_s) - claimed)


def check_scene(scorer: SceneScorer, settings: TrackerSettings, seed: int, hop_s: float,
                snr_db: tuple[float, float]) -> tuple[list[SirenOnset], int]:
    """Scene `seed` generated, scored window by window, and measured (`siren_onsets`). Another `snr_db` keeps
    the scene's sirens, kinds and street, and changes only how loud each siren is."""
    siren_times, duration_s = periodic_siren_times(SIRENS_PER_SCENE)
    audio, truth = generate_scene(duration_s, np.random.default_rng(seed), scorer.sample_rate,
                                  siren_times=siren_times, siren_snr_db=snr_db)
    windows, starts = cut_windows(audio, WindowSpec.from_seconds(scorer.sample_rate, scorer.window_s, hop_s))
    scores = scorer.siren_scores(windows)
    return siren_onsets(truth, starts / scorer.sample_rate, scores, scorer.window_s, settings, seed)


def summarise(onsets: list[SirenOnset]) -> dict[str, Any]:
    """Sirens, how many started an event, and the delays' median, p95 and max: each a siren's own delay (no
    interpolation), where a siren never started counts as infinitely late, so a percentile cannot hide misses."""
    delays = np.array([o.delay_s if o.delay_s is not None else np.inf for o in onsets])

    def rounded(value: float) -> float | None:
        return round(float(value), 2) if np.isfinite(value) else None

    return {"sirens": len(onsets), "started": int(np.isfinite(delays).sum()),
            "median_s": rounded(np.percentile(delays, 50, method="higher")),
            "p95_s": rounded(np.percentile(delays, 95, method="higher")),
            "max_s": rounded(delays.max())}


def run_check(scorer: SceneScorer, settings: TrackerSettings, scenes: int, hop_s: float, limits: OnsetLimits,
              snr_db: tuple[float, float] = SCENE_SNR_DB) -> dict[str, Any]:
    """Every scene checked; the card's record: protocol, tracker, overall and per-kind delays, the slowest
    sirens, false starts, the limits and whether they were kept."""
    onsets: list[SirenOnset] = []
    false_starts = 0
    for seed in range(FIRST_SEED, FIRST_SEED + scenes):
        scene_onsets, scene_false = check_scene(scorer, settings, seed, hop_s, snr_db)
        onsets += scene_onsets
        false_starts += scene_false
    late = sorted(onsets, key=lambda o: -(o.delay_s if o.delay_s is not None else np.inf))[:LATE_LISTED]
    overall = summarise(onsets)
    _, duration_s = periodic_siren_times(SIRENS_PER_SCENE)
    return {
        "protocol": (f"{scenes} generated street scenes of {duration_s:g} s (detector.synth, seeds {FIRST_SEED}-"
                     f"{FIRST_SEED + scenes - 1}: traffic and wind, an 8 s siren of a random kind every 18 s at "
                     f"{snr_db[0]:g} to {snr_db[1]:g} dB SNR), "
                     f"2 s windows at a {hop_s:g} s hop scored by {scorer.description}, through the daemon's tracker "
                     "with the settings below; delay = end of the window that starts the event - siren onset "
                     "(audio time); a siren that starts no event counts as infinitely late"),
        "hop_s": hop_s,
        "snr_db": list(snr_db),
        "tracker": asdict(settings),
        **overall,
        "by_kind": {kind: summarise([o for o in onsets if o.kind == kind])
                    for kind in SIREN_KINDS if any(o.kind == kind for o in onsets)},
        "slowest": [asdict(o) for o in late],
        "false_starts": false_starts,
        "limits": asdict(limits),
        "passed": limits.kept(overall),
    }


def table(result: dict[str, Any]) -> str:
    """The per-kind delays as a Markdown table, the slowest sirens below it."""
    lines = ["| siren kind | sirens | started | median s | p95 s | max s |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for kind, row in [*result["by_kind"].items(), ("all", result)]:
        lines.append(f"| {kind} | {row['sirens']} | {row['started']} | {row['median_s']} | {row['p95_s']} | "
                     f"{row['max_s']} |")
    slowest = ", ".join(f"{o['kind']} (seed {o['seed']}, {o['onset_s']:g} s) "
                        f"{'never' if o['delay_s'] is None else format(o['delay_s'], 'g') + ' s'}, "
                        f"peak {o['peak_score']:.2f}" for o in result["slowest"][:5])
    return "\n".join([*lines, f"slowest: {slowest}", f"false starts on the street: {result['false_starts']}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    scored = parser.add_mutually_exclusive_group(required=True)
    scored.add_argument("--model", type=Path, help="an exported .tflite with its card beside it")
    scored.add_argument("--yamnet", type=Path, help="YAMNet's .tflite instead, as the baseline (needs --tracker)")
    parser.add_argument("--tracker", type=Path,
                        help="train.tune_tracker --out JSON whose choice replaces the card's tracker")
    parser.add_argument("--scenes", type=int, default=40, help=f"scenes of {SIRENS_PER_SCENE} sirens (default 40)")
    parser.add_argument("--hop", type=float, default=DetectionConfig.hop_s, help="seconds between windows")
    parser.add_argument("--p95-limit-s", type=float, default=OnsetLimits.p95_s,
                        help="95 %% of sirens must start an event within this many seconds (default %(default)g)")
    parser.add_argument("--max-limit-s", type=float, default=OnsetLimits.max_s,
                        help="every siren must start an event within this many seconds (default %(default)g)")
    parser.add_argument("--snr-db", type=float, nargs=2, default=SCENE_SNR_DB, metavar=("LOW", "HIGH"),
                        help="each siren's level against the street, drawn from LOW..HIGH dB (default 0 15)")
    parser.add_argument("--card", action="store_true", help="write the result into the model's card")
    args = parser.parse_args(argv)
    if args.scenes < 1 or args.snr_db[0] > args.snr_db[1]:
        print("onset_check: error: --scenes must be at least 1 and --snr-db LOW at most HIGH", file=sys.stderr)
        return 2
    if (args.yamnet and not args.tracker) or (args.card and (args.yamnet or args.tracker)):
        print("onset_check: error: --yamnet needs --tracker; --card records a model with its card's own tracker",
              file=sys.stderr)
        return 2
    try:
        DetectionConfig(hop_s=args.hop).check()
        if args.model:
            scorer, settings = model_scorer(args.model, args.hop)
        else:
            scorer = yamnet_scorer(args.yamnet)
        if args.tracker:
            settings = tracker_from_choice(args.tracker)
        limits = OnsetLimits(args.p95_limit_s, args.max_limit_s)
        result = run_check(scorer, settings, args.scenes, args.hop, limits, tuple(args.snr_db))
    except DetectorError as error:
        print(f"onset_check: error: {error}", file=sys.stderr)
        return 2
    print(table(result))
    if args.card:
        card_path = card_path_for(args.model)
        card = json.loads(card_path.read_text())
        card["onset_check"] = result
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote onset_check into {card_path}")
    missed = result["sirens"] - result["started"]
    p95, slowest = (f"{v:g} s" if v is not None else "never" for v in (result["p95_s"], result["max_s"]))
    if not result["passed"]:
        print(f"onset_check: failed: {missed} of {result['sirens']} sirens started no event, p95 {p95} "
              f"(limit {limits.p95_s:g} s), slowest {slowest} (limit {limits.max_s:g} s)", file=sys.stderr)
        return 1
    print(f"passed: all {result['sirens']} sirens started, p95 {result['p95_s']} s, slowest {result['max_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
