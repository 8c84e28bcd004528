"""The built-in demo: a generated street scene with sirens at known times, run through the detector.

It needs no microphone, no broker and no data: it shows what the detector reports and how that compares
with where the sirens really were.
"""

from __future__ import annotations

import numpy as np

from detector.classify import classify_samples
from detector.model import Classifier
from detector.synth import generate_scene

ONSET_TOLERANCE_S = 2.5


def run_demo(classifier: Classifier, duration_s: float = 120.0, seed: int = 7) -> int:
    """Print truth and detections side by side; exit 0 when every siren was found and nothing else."""
    card = classifier.card
    audio, truth = generate_scene(duration_s, np.random.default_rng(seed), card.sample_rate)
    print(f"scene: {duration_s:.0f} s of generated traffic and wind (seed {seed}), "
          f"{len(truth)} sirens; model {classifier.path.name} (threshold {card.threshold:.2f})")
    _windows, events = classify_samples(audio, [classifier])
    found = 0
    for siren in truth:
        match = next((e for e in events if abs(e["start_s"] - siren.start_s) <= ONSET_TOLERANCE_S
                      or siren.start_s <= e["start_s"] <= siren.end_s), None)
        found += match is not None
        detected = (f"detected {match['start_s']:6.1f}–{match['end_s']:6.1f} s ({match['confidence']:.2f})"
                    if match else "MISSED")
        print(f"  siren {siren.kind:<10} {siren.start_s:6.1f}–{siren.end_s:6.1f} s  ->  {detected}")
    false_events = [e for e in events if not any(s.start_s - ONSET_TOLERANCE_S <= e["start_s"] <= s.end_s
                                                 for s in truth)]
    for event in false_events:
        print(f"  false alarm {event['start_s']:6.1f}–{event['end_s']:6.1f} s ({event['confidence']:.2f})")
    print(f"found {found} of {len(truth)} sirens, {len(false_events)} false alarms")
    return 0 if found == len(truth) and not false_events else 1
