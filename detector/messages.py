"""The payloads of PRODUCT.md's topics, built from tracker events, state and health figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detector.spool import Message, write_atomically
from detector.tracker import TrackedEvent


def iso_utc(timestamp: float) -> str:
    """ISO-8601 UTC with milliseconds, e.g. 2026-11-23T10:15:02.125Z."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str


class SequenceCounter:
    """Event sequence numbers that keep increasing across restarts when a state directory is given."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.value = 0
        if path is not None and path.exists():
            try:
                self.value = int(path.read_text().strip())
            except (OSError, ValueError):
                self.value = 0

    def next(self) -> int:
        self.value += 1
        if self.path is not None:
            write_atomically(self.path, str(self.value))
        return self.value


def event_message(event: TrackedEvent, seq: int, start_wall: float, end_wall: float | None, device_id: str,
                  model: ModelIdentity, topic: str = "event") -> Message:
    payload: dict[str, Any] = {
        "event_id": event.event_id,
        "seq": seq,
        "type": event.type,
        "label": event.label,
        "confidence": round(event.confidence, 4),
        "start": iso_utc(start_wall),
        "end": None if end_wall is None else iso_utc(end_wall),
        "start_offset_s": round(event.start_s, 3),
        "duration_s": None if event.duration_s is None else round(event.duration_s, 3),
        "device_id": device_id,
        "model": {"name": model.name, "sha256": model.sha256},
    }
    return Message("event", topic, payload, qos=1, retain=False)


def state_message(active: bool, label: str | None, confidence: float | None, since_wall: float) -> Message:
    payload = {"active": active, "label": label, "confidence": None if confidence is None else round(confidence, 4),
               "since": iso_utc(since_wall)}
    return Message("state", "state", payload, qos=1, retain=True)


def health_message(figures: dict[str, Any]) -> Message:
    return Message("health", "health", figures, qos=0, retain=True)


def scores_message(start_offset_s: float, wall: float, scores: dict[str, float]) -> Message:
    payload = {"start_offset_s": round(start_offset_s, 3), "time": iso_utc(wall),
               "scores": {label: round(value, 4) for label, value in scores.items()}}
    return Message("scores", "scores", payload, qos=0, retain=False)
