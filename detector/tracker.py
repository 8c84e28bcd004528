"""The event tracker: per-window scores of one label in, start and end events out.

Hysteresis keeps a siren that fades behind a bus as one event: an event starts when `onset_windows` of
the last `onset_of` windows reach the on-threshold (or, with an `instant_threshold`, at once on one window
that reaches it: a clear siren need not wait for the next window), and ends only after `offset_windows` windows in a row
fall below the lower off-threshold. The start is placed where the evidence first rose above the
off-threshold (hysteresis backwards: the windows just before the onset often hold the siren's first,
quieter second). An event lasts at least `min_event_s` (the controller keeps its green
wave that long) and no new one starts within `refractory_s` of an end. Times are audio time: a window's
evidence is placed at its centre, so start and end estimates do not depend on the hop.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass
from typing import Literal

from detector.config import DetectionConfig
from detector.errors import ConfigError
from detector.model import ModelCard

OFF_FRACTION = 0.5  # default off-threshold as a share of the on-threshold
# how far before the onset windows the start may be placed (8 s at a 1 s hop): a siren the model is unsure of
# can sit between off and on for several windows before it confirms (docs/EXPERIMENTS.md, session 18)
BACKTRACK_WINDOWS = 8


@dataclass(frozen=True)
class TrackerSettings:
    on_threshold: float
    off_threshold: float
    onset_windows: int = 2
    onset_of: int = 3
    offset_windows: int = 2
    min_event_s: float = 3.0
    refractory_s: float = 2.0
    instant_threshold: float | None = None  # one window this sure starts an event without waiting for k of n


@dataclass(frozen=True)
class TrackedEvent:
    """One start or end message's content; `end_s` and `duration_s` are None on a start."""

    event_id: str
    type: Literal["start", "end"]
    label: str
    confidence: float
    start_s: float
    end_s: float | None

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else self.end_s - self.start_s


class EventTracker:
    """Tracks one label. Feed it every window in order with `update`; call `close` at the end of audio."""

    def __init__(self, label: str, settings: TrackerSettings, window_s: float) -> None:
        self.label = label
        self.settings = settings
        self.window_s = window_s
        # (centre_s, score) of the windows since the last event, as far back as a start may be placed
        self._recent: deque[tuple[float, float]] = deque(maxlen=settings.onset_of + BACKTRACK_WINDOWS)
        self._event_id: str | None = None
        self._start_s = 0.0
        self._last_active_s = 0.0
        self._heard_until_s = 0.0  # end of the last window fed: how far the audio reached
        self._confidence = 0.0
        self._quiet_windows = 0
        self._refractory_until_s = float("-inf")

    @property
    def active(self) -> bool:
        return self._event_id is not None

    @property
    def confidence(self) -> float | None:
        return self._confidence if self.active else None

    def update(self, window_start_s: float, score: float) -> list[TrackedEvent]:
        """The events this window completes (none, a start, or an end)."""
        centre_s = window_start_s + self.window_s / 2
        self._heard_until_s = window_start_s + self.window_s
        settings = self.settings
        if self._event_id is None:
            self._recent.append((centre_s, score))
            window = list(self._recent)[-settings.onset_of :]
            hits = [(c, s) for c, s in window if s >= settings.on_threshold]
            instant = settings.instant_threshold is not None and score >= settings.instant_threshold
            if (len(hits) < settings.onset_windows and not instant) or hits[0][0] < self._refractory_until_s:
                return []
            self._event_id = uuid.uuid4().hex
            self._start_s = self._rise_before(hits[0][0])
            self._last_active_s = hits[-1][0]
            self._confidence = max(s for _c, s in hits)
            self._quiet_windows = 0
            self._recent.clear()
            return [TrackedEvent(self._event_id, "start", self.label, self._confidence, self._start_s, None)]
        if score >= settings.off_threshold:
            self._last_active_s = centre_s
            self._confidence = max(self._confidence, score)
            self._quiet_windows = 0
            return []
        self._quiet_windows += 1
        if self._quiet_windows < settings.offset_windows or centre_s - self._start_s < settings.min_event_s:
            return []
        return [self._end(max(self._last_active_s, self._start_s + settings.min_event_s))]

    def _rise_before(self, first_hit_s: float) -> float:
        """The earliest window centre from which scores stayed above the off-threshold up to the first hit."""
        start_s = first_hit_s
        for centre_s, score in reversed(self._recent):
            if centre_s > first_hit_s:
                continue
            if score < self.settings.off_threshold or centre_s < self._refractory_until_s:
                break
            start_s = centre_s
        return start_s

    def close(self) -> list[TrackedEvent]:
        """End an open event at the end of the audio, or where the audio was lost: held for `min_event_s` as
        while audio continues, but never past the end of the audio heard (a one-window event of a short clip
        lasts to the clip's end, not zero seconds)."""
        self._recent.clear()
        if self._event_id is None:
            return []
        held_until_s = min(self._start_s + self.settings.min_event_s, self._heard_until_s)
        return [self._end(max(self._last_active_s, held_until_s))]

    def _end(self, end_s: float) -> TrackedEvent:
        event = TrackedEvent(self._event_id or "", "end", self.label, self._confidence, self._start_s, end_s)
        self._event_id = None
        self._refractory_until_s = end_s + self.settings.refractory_s
        return event


def settings_for(card: ModelCard, detection: DetectionConfig) -> TrackerSettings:
    """The config's values where given, else those measured for this model (its card's "tracker", or with a
    YAMNet veto configured its "tracker_with_yamnet_veto")."""
    vetoed = detection.yamnet is not None and detection.yamnet_confirm
    measured = (vetoed and card.raw.get("tracker_with_yamnet_veto")) or card.raw.get("tracker") or {}

    def pick(key: str, fallback: float) -> float:
        value = getattr(detection, key)
        return value if value is not None else measured.get(key, fallback)

    on = float(pick("on_threshold", card.threshold))
    off = float(pick("off_threshold", OFF_FRACTION * on))
    onset_of = int(pick("onset_of", 3))
    onset_windows = int(pick("onset_windows", min(2, onset_of)))
    instant = detection.instant_threshold
    if instant is None and measured.get("instant_threshold") is not None:
        instant = float(measured["instant_threshold"])
    if not 0.0 < off <= on < 1.0:
        raise ConfigError(f"detection.off_threshold: {off:g} must be above 0 and at most the on-threshold {on:g}")
    if not 1 <= onset_windows <= onset_of:
        raise ConfigError(f"detection.onset_windows: {onset_windows} must be between 1 and onset_of ({onset_of})")
    if instant is not None and instant < on:
        raise ConfigError(f"detection.instant_threshold: {instant:g} must not be below the on-threshold {on:g}")
    return TrackerSettings(on_threshold=on, off_threshold=off, onset_windows=onset_windows, onset_of=onset_of,
                           offset_windows=detection.offset_windows, min_event_s=detection.min_event_s,
                           refractory_s=detection.refractory_s, instant_threshold=instant)
