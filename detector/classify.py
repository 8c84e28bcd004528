"""Offline classification of audio files: per-window scores and the events the daemon would emit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detector.audio import read_audio
from detector.config import DetectionConfig
from detector.errors import AudioError, DetectorError
from detector.events import Event
from detector.model import Classifier
from detector.tracker import EventTracker, TrackerSettings, settings_for
from detector.windows import WindowSpec, cut_windows

MIN_DURATION_FRACTION = 0.25  # of a window: shorter clips hold too little audio to judge
MAX_FILE_DURATION_S = 24 * 3600.0


def tracked_events(label: str, starts_s: np.ndarray, scores: np.ndarray, window_s: float,
                   settings: TrackerSettings) -> list[Event]:
    """The events the daemon's tracker makes of these windows (its default settings for this model)."""
    tracker = EventTracker(label, settings, window_s)
    changes = [e for start, score in zip(starts_s, scores, strict=True) for e in tracker.update(float(start),
                                                                                                float(score))]
    return [Event(label, e.start_s, e.end_s, e.confidence) for e in changes + tracker.close()
            if e.type == "end" and e.end_s is not None]


def classify_samples(samples: np.ndarray, classifiers: list[Classifier], hop_s: float | None = None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Windows with every model's scores, and the events the daemon would emit for each positive label."""
    first = classifiers[0].card
    spec = WindowSpec.from_seconds(first.sample_rate, first.window_s, hop_s or first.hop_s)
    windows, starts = cut_windows(samples, spec)
    starts_s = starts / spec.sample_rate
    rows: list[dict[str, Any]] = [{"start_s": round(float(s), 3), "scores": {}} for s in starts_s]
    events = []
    for classifier in classifiers:
        classifier.check_audio_path(spec.sample_rate, first.window_s)
        probabilities = classifier.predict(windows)
        for row, values in zip(rows, probabilities, strict=True):
            row["scores"].update({label: round(float(v), 4) for label, v in zip(classifier.card.labels, values,
                                                                                  strict=True)})
        settings = settings_for(classifier.card, DetectionConfig())
        for label in classifier.card.positive_labels:
            column = probabilities[:, classifier.card.labels.index(label)]
            events.extend(tracked_events(label, starts_s, column, first.window_s, settings))
    events.sort(key=lambda event: event.start_s)
    return rows, [event.to_dict() for event in events]


def classify_file(path: Path, classifiers: list[Classifier]) -> dict[str, Any]:
    """PRODUCT.md's per-file JSON object; raises AudioError for a file that cannot be classified."""
    first = classifiers[0].card
    audio = read_audio(path, first.sample_rate, max_duration_s=MAX_FILE_DURATION_S)
    if audio.duration_s < MIN_DURATION_FRACTION * first.window_s:
        raise AudioError(
            f"{path}: {audio.duration_s:.2f} s of audio is too short to classify "
            f"(at least {MIN_DURATION_FRACTION * first.window_s:.2f} s needed)"
        )
    windows, events = classify_samples(audio.samples, classifiers)
    return {"file": str(path), "duration_s": round(audio.duration_s, 3), "windows": windows, "events": events}


def classify_or_error(path: Path, classifiers: list[Classifier]) -> dict[str, Any]:
    try:
        return classify_file(path, classifiers)
    except DetectorError as error:
        return {"file": str(path), "error": str(error)}
