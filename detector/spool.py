"""The outbox: messages waiting for the broker, in order, on disk, bounded.

Every event and state message goes through it, so one that the broker has not acknowledged survives a
broker outage, a daemon restart and a power cut (one small file per message, written atomically and
fsync'ed; events are rare, so the SD card is spared). Health and score messages enter only while the
broker is away. At the bound, the oldest health and score messages are dropped first, events last.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DROPPABLE_KINDS = ("scores", "health")  # dropped first, in this order, when the spool is full


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` so that a power cut leaves the old content or the new, never half."""
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


@dataclass(frozen=True)
class Message:
    """One MQTT message; `topic` is relative to the device's prefix (`event`, `state`, ...)."""

    kind: str
    topic: str
    payload: dict[str, Any] | str
    qos: int
    retain: bool

    def encoded(self) -> bytes:
        text = self.payload if isinstance(self.payload, str) else json.dumps(self.payload, separators=(",", ":"))
        return text.encode("utf-8")

    def to_json(self) -> str:
        return json.dumps({"kind": self.kind, "topic": self.topic, "payload": self.payload, "qos": self.qos,
                           "retain": self.retain})

    @classmethod
    def from_json(cls, text: str) -> Message:
        data = json.loads(text)
        return cls(data["kind"], data["topic"], data["payload"], int(data["qos"]), bool(data["retain"]))


class Spool:
    """A FIFO of Messages, persisted in `directory` (None: memory only). Safe to use from two threads."""

    def __init__(self, directory: Path | None, max_messages: int) -> None:
        self.directory = directory
        self.max_messages = max_messages
        self.dropped: dict[str, int] = {}
        self._lock = threading.Lock()
        self._items: OrderedDict[int, Message] = OrderedDict()
        self._next_number = 0
        if directory is not None:
            self._load(directory)

    def _load(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for stray in directory.glob("*.tmp"):
            stray.unlink(missing_ok=True)
        for path in sorted(directory.glob("*.json")):
            try:
                number = int(path.stem)
                self._items[number] = Message.from_json(path.read_text(encoding="utf-8"))
            except (ValueError, KeyError, OSError) as error:
                log.warning("spool: skipping unreadable %s (%s)", path.name, error)
                continue
            self._next_number = max(self._next_number, number + 1)
        if self._items:
            log.info("spool: %d undelivered messages from before the restart", len(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def count(self, kind: str) -> int:
        with self._lock:
            return sum(1 for message in self._items.values() if message.kind == kind)

    def put(self, message: Message) -> None:
        with self._lock:
            number = self._next_number
            self._next_number += 1
            if self.directory is not None:
                write_atomically(self.directory / f"{number:012d}.json", message.to_json())
            self._items[number] = message
            while len(self._items) > self.max_messages:
                self._drop_one()

    def peek(self) -> tuple[int, Message] | None:
        """The oldest message and its number, left in place until `remove` says it was delivered."""
        with self._lock:
            if not self._items:
                return None
            number = next(iter(self._items))
            return number, self._items[number]

    def remove(self, number: int) -> None:
        with self._lock:
            if self._items.pop(number, None) is not None and self.directory is not None:
                (self.directory / f"{number:012d}.json").unlink(missing_ok=True)

    def _drop_one(self) -> None:
        for kind in (*DROPPABLE_KINDS, None):
            victim = next((n for n, m in self._items.items() if kind is None or m.kind == kind), None)
            if victim is None:
                continue
            message = self._items.pop(victim)
            if self.directory is not None:
                (self.directory / f"{victim:012d}.json").unlink(missing_ok=True)
            self.dropped[message.kind] = self.dropped.get(message.kind, 0) + 1
            level = logging.ERROR if kind is None else logging.WARNING
            log.log(level, "spool full (%d messages): dropped the oldest %s message", self.max_messages,
                    message.kind)
            return
