"""Offline classification of audio files: per-window scores and the events the daemon would emit.

The daemon's own scorer and tracker settings run here, so a config gives the same events offline as live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from detector.audio import read_audio
from detector.config import DetectionConfig
from detector.errors import AudioError, DetectorError
from detector.events import Event
from detector.scoring import ScoredModel, Scorer, tracker_settings
from detector.tracker import EventTracker, TrackerSettings
from detector.windows import WindowSpec, window_view

# Clips of this length or less hold too little audio to judge (issue 2's example of bad input). Anything
# longer is scored, zero-padded to one window as training did: UrbanSound8K has car horns, barks and shots
# of 0.15-0.5 s, which a longer minimum refused.
MIN_DURATION_S = 0.1
MAX_FILE_DURATION_S = 24 * 3600.0


def tracked_events(label: str, starts_s: np.ndarray, scores: np.ndarray, window_s: float,
                   settings: TrackerSettings) -> list[Event]:
    """The events the daemon's tracker makes of these windows (its default settings for this model)."""
    tracker = EventTracker(label, settings, window_s)
    changes = [e for start, score in zip(starts_s, scores, strict=True) for e in tracker.update(float(start),
                                                                                                float(score))]
    return [Event(label, e.start_s, e.end_s, e.confidence) for e in changes + tracker.close()
            if e.type == "end" and e.end_s is not None]


def score_names(models: list[ScoredModel]) -> list[list[str]]:
    """Each model's labels as classify's score keys: plain, unless an earlier model has the label (urban.tflite
    and YAMNet's tagging share all ten), then `<model>/<label>` as on the daemon's scores topic. Events keep
    the plain label, as the daemon publishes them."""
    seen: set[str] = set()
    names = []
    for model in models:
        names.append([f"{model.identity.name}/{label}" if label in seen else label for label in model.labels])
        seen.update(model.labels)
    return names


def clip_labels(windows: list[dict[str, Any]], names: list[list[str]]) -> list[tuple[str, float]]:
    """Per model, the label with the highest mean score over the file's windows, and that mean: how the README's
    urban slice accuracy labels a clip (the text output prints it; the JSON keeps PRODUCT.md's shape, and
    its windows give the same numbers). Labels come back plain, without a `<model>/` prefix."""
    labels = []
    for model_names in names:
        means = np.mean([[window["scores"][name] for name in model_names] for window in windows], axis=0)
        best = int(np.argmax(means))
        labels.append((model_names[best].rpartition("/")[2], float(means[best])))
    return labels


def classify_samples(samples: np.ndarray, scorer: Scorer, detection: DetectionConfig
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Windows with every model's scores, and the events the daemon would emit for each positive label: the
    same scorer (YAMNet's veto and tagging included) and the same tracker settings as `detector.daemon`."""
    card = scorer.siren_card
    spec = WindowSpec.from_seconds(card.sample_rate, card.window_s, detection.hop_s)
    windows, starts = window_view(samples.astype(np.float32, copy=False), spec)
    starts_s = starts / spec.sample_rate
    settings = [tracker_settings(model, detection) for model in scorer.models]
    scored = [scorer.score(np.array(window), settings[0].on_threshold).scores for window in windows]
    names = score_names(scorer.models)
    rows: list[dict[str, Any]] = [{"start_s": round(float(s), 3), "scores": {}} for s in starts_s]
    events = []
    for index, (model, model_settings, model_names) in enumerate(zip(scorer.models, settings, names, strict=True)):
        probabilities = np.stack([window_scores[index] for window_scores in scored])
        for row, values in zip(rows, probabilities, strict=True):
            row["scores"].update({name: round(float(v), 4) for name, v in zip(model_names, values, strict=True)})
        for label in model.positive_labels:
            column = model.labels.index(label)
            events.extend(tracked_events(label, starts_s, probabilities[:, column], card.window_s, model_settings))
    events.sort(key=lambda event: event.start_s)
    return rows, [event.to_dict() for event in events]


def classify_file(path: Path, scorer: Scorer, detection: DetectionConfig) -> dict[str, Any]:
    """PRODUCT.md's per-file JSON object; raises AudioError for a file that cannot be classified."""
    first = scorer.siren_card
    audio = read_audio(path, first.sample_rate, max_duration_s=MAX_FILE_DURATION_S)
    if len(audio.samples) <= round(MIN_DURATION_S * first.sample_rate):
        raise AudioError(f"{path}: {audio.duration_s:.2f} s of audio is too short to classify "
                         f"(more than {MIN_DURATION_S:.2f} s needed)")
    windows, events = classify_samples(audio.samples, scorer, detection)
    return {"file": str(path), "duration_s": round(audio.duration_s, 3), "windows": windows, "events": events}


def classify_or_error(path: Path, scorer: Scorer, detection: DetectionConfig) -> dict[str, Any]:
    try:
        return classify_file(path, scorer, detection)
    except DetectorError as error:
        return {"file": str(path), "error": str(error)}
