"""`python -m benchmarks`: every benchmark in one run, printing tables and writing benchmarks/results/.

Per-window cost (ours vs the tutorial pipeline), replay throughput and the frontier run in this process,
pinned to one core; the live-cost and latency runs start daemons of their own. `--only` picks some.
Needs the `bench` extra (TensorFlow, librosa, matplotlib): `./script/bench` installs it and runs this.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import frontier, latency, live, per_window, replay
from benchmarks.common import RESULTS_DIR, machine, pin_to_one_core, scene_windows

ALL = ("per_window", "replay", "live", "latency", "frontier")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(ALL), help=f"comma-separated, from {', '.join(ALL)}")
    parser.add_argument("--model", type=Path, default=Path("models/emergency.tflite"))
    parser.add_argument("--windows", type=int, default=520, help="windows timed per pipeline (20 are warm-up)")
    parser.add_argument("--replay-hours", type=float, default=1.0)
    parser.add_argument("--live-seconds", type=float, default=60.0)
    parser.add_argument("--onsets", type=int, default=50, help="siren onsets per hop for the latency run")
    parser.add_argument("--streams", type=int, default=5, help="real-time daemons per hop in the latency run")
    parser.add_argument("--yamnet", type=Path, default=Path("../shared/models/yamnet.tflite"),
                        help="YAMNet .tflite: timed as the urban tagger, placed on the frontier and timed as the onset "
                             "veto when present")
    parser.add_argument("--core", type=int, default=0, help="the core in-process benchmarks are pinned to")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(ALL))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(ALL)}")

    RESULTS_DIR.mkdir(exist_ok=True)
    results_path = RESULTS_DIR / "results.json"
    # each section names its own machine: `--only` re-runs some sections and keeps the others
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    pin_to_one_core(args.core)
    this_machine = machine()
    print(f"{this_machine}; in-process benchmarks pinned to core {args.core}\n", flush=True)
    windows = scene_windows(args.windows) if {"per_window", "frontier"} & set(chosen) else None
    yamnet = args.yamnet if args.yamnet.is_file() else None
    runs: dict[str, tuple[Any, Callable[[], dict[str, Any]]]] = {
        "per_window": (per_window, lambda: per_window.run(windows, args.model, yamnet)),
        "replay": (replay, lambda: replay.run(args.replay_hours, args.model)),
        "live": (live, lambda: live.run(args.live_seconds, args.model)),
        "latency": (latency, lambda: latency.run(args.onsets, args.streams, (1.0, 0.5), args.model, yamnet)),
        "frontier": (frontier, lambda: frontier.run(windows, yamnet)),
    }
    for name in chosen:
        started = time.monotonic()
        module, run = runs[name]
        result = run()
        text = module.table(result)
        if name == "frontier":
            frontier.plot(result, RESULTS_DIR / "frontier.png")
            text += f"\n(plot: {RESULTS_DIR / 'frontier.png'})"
        results[name] = {**result, "machine": this_machine, "measured": time.strftime("%Y-%m-%d %H:%M"),
                         "took_s": round(time.monotonic() - started)}
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print(text + "\n", flush=True)
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
