"""Per-window scores to events by the simple run rule that training uses to count false events.

The daemon and `classify` use the event tracker (`detector/tracker.py`); this rule stays for choosing a
card's per-window threshold, where it is the conservative count.

A label's event is a run of windows whose score reaches the label's threshold; runs separated by fewer
than `merge_gap_windows` quiet windows are one event, so a siren that dips behind a bus for a second is
reported once. Times are audio time in seconds from the start of the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class EventRule:
    threshold: float
    merge_gap_windows: int = 1


@dataclass(frozen=True)
class Event:
    label: str
    start_s: float
    end_s: float
    confidence: float

    def to_dict(self) -> dict[str, object]:
        return {"label": self.label, "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
                "confidence": round(self.confidence, 4)}


def active_runs(active: np.ndarray, merge_gap_windows: int) -> list[tuple[int, int]]:
    """(first, last) window indices of runs of True, bridging gaps of at most `merge_gap_windows`."""
    runs: list[tuple[int, int]] = []
    for index in np.flatnonzero(active):
        if runs and index - runs[-1][1] - 1 <= merge_gap_windows:
            runs[-1] = (runs[-1][0], int(index))
        else:
            runs.append((int(index), int(index)))
    return runs
