"""Per-window cost of the shipped model on this machine: features and int8 inference, one thread.

Usage: .venv/bin/python benchmarks/per_window.py [--model models/emergency.tflite] [--windows 500]
Prints a table (median and p95 in milliseconds) and writes benchmarks/per_window.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from detector.model import Classifier
from detector.synth import generate_scene
from detector.windows import WindowSpec, cut_windows


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return f"{cpu}, {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/emergency.tflite"))
    parser.add_argument("--windows", type=int, default=500)
    args = parser.parse_args()

    classifier = Classifier(args.model, num_threads=1)
    card = classifier.card
    audio, _ = generate_scene(args.windows + 2.0, np.random.default_rng(0), card.sample_rate)
    windows, _ = cut_windows(audio, WindowSpec.from_seconds(card.sample_rate, card.window_s, 1.0))
    windows = windows[: args.windows]
    feature_ms, inference_ms = [], []
    for window in windows:
        started = time.perf_counter()
        features = classifier.features(window[None])
        computed = time.perf_counter()
        classifier.predict_features(features)
        feature_ms.append((computed - started) * 1e3)
        inference_ms.append((time.perf_counter() - computed) * 1e3)
    total = np.add(feature_ms, inference_ms)
    rows = {"features": feature_ms, "inference": inference_ms, "total": total}
    result = {"machine": _machine(), "model": str(args.model), "windows": len(windows),
              **{name: {"median_ms": round(float(np.median(v)), 3), "p95_ms": round(float(np.percentile(v, 95)), 3)}
                 for name, v in rows.items()}}
    print(f"{len(windows)} windows, {args.model.name}, one thread; {result['machine']}")
    print("| stage | median ms | p95 ms |\n|---|---:|---:|")
    for name in rows:
        print(f"| {name} | {result[name]['median_ms']:.3f} | {result[name]['p95_ms']:.3f} |")
    (Path(__file__).parent / "per_window.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
