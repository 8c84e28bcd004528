"""`siren-detector run`: source -> windows -> features -> classifier -> event tracker -> sinks.

One worker loop does everything slow, in audio time: it reads chunks from the source, cuts 2 s windows at
the configured hop, scores each, feeds the trackers and hands messages to the sinks (which never block
it). The same loop pings the systemd watchdog, so a stalled worker gets restarted, and publishes health.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from detector.config import Config, check_files
from detector.errors import ConfigError
from detector.health import HealthMonitor
from detector.messages import (
    SequenceCounter,
    event_message,
    health_message,
    scores_message,
    state_message,
)
from detector.mqtt import FLUSH_TIMEOUT_S, MqttSink
from detector.scoring import SIREN_TOPIC, ScoredModel, Scorer, tracker_settings
from detector.sources import Chunk, EndOfAudio, Source, SourceFault, make_source
from detector.spool import Message, Spool
from detector.systemd import Notifier
from detector.tracker import EventTracker, TrackedEvent, TrackerSettings
from detector.windows import StreamWindower, WindowSpec

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # PRODUCT.md's audio path: 16 kHz mono, 2 s windows
WINDOW_S = 2.0
READ_TIMEOUT_S = 0.2


class Sink(Protocol):
    def submit(self, message: Message) -> None: ...


class StdoutSink:
    """Every message as one JSON line on stdout, with its full topic."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def submit(self, message: Message) -> None:
        print(json.dumps({"topic": f"{self.prefix}/{message.topic}", "payload": message.payload}), flush=True)


@dataclass(frozen=True)
class ModelTrackers:
    """One model's event trackers, one per label it reports, and the topic its events go to."""

    model: ScoredModel
    settings: TrackerSettings
    trackers: dict[int, EventTracker]  # index in the model's output -> that label's tracker


class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        check_files(config)
        self.scorer = Scorer(config.detection, SAMPLE_RATE, WINDOW_S)
        self.device_id = config.mqtt.device_id or socket.gethostname()
        self.spec = WindowSpec.from_seconds(SAMPLE_RATE, WINDOW_S, config.detection.hop_s)
        self.tracked = [self._trackers(model) for model in self.scorer.models]
        self.source: Source = make_source(config.audio, SAMPLE_RATE)
        self.health = HealthMonitor()
        self.notifier = Notifier()
        spool_dir = config.mqtt.spool_dir if config.mqtt.enabled else None
        try:
            self.spool = Spool(spool_dir, config.mqtt.spool_max_messages)
            self.sequence = SequenceCounter(None if spool_dir is None else spool_dir.parent / "event-seq")
        except OSError as error:
            raise ConfigError(f"mqtt.spool_dir: cannot use {spool_dir} ({error.strerror or error})") from None
        self.mqtt = MqttSink(config.mqtt, self.device_id, self.spool) if config.mqtt.enabled else None
        prefix = f"{config.mqtt.topic_prefix}/{self.device_id}"
        self.sinks: list[Sink] = [s for s in (self.mqtt, StdoutSink(prefix) if config.stdout else None) if s]
        self.stop_requested = threading.Event()
        self._windower = StreamWindower(self.spec)
        self._expected_start = 0
        self._anchor = (0.0, time.time())  # (audio seconds, wall time) of the latest chunk

    def _trackers(self, model: ScoredModel) -> ModelTrackers:
        """A tracker per label the model reports, with `scoring.tracker_settings`."""
        settings = tracker_settings(model, self.config.detection)
        return ModelTrackers(model, settings, {model.labels.index(label): EventTracker(label, settings, WINDOW_S)
                                               for label in model.positive_labels})

    def wall_time(self, audio_s: float) -> float:
        anchor_s, anchor_wall = self._anchor
        return anchor_wall + (audio_s - anchor_s)

    def _submit(self, message: Message) -> None:
        for sink in self.sinks:
            sink.submit(message)

    def _publish_events(self, model: ScoredModel, events: list[TrackedEvent]) -> None:
        for event in events:
            end_wall = None if event.end_s is None else self.wall_time(event.end_s)
            self._submit(event_message(event, self.sequence.next(), self.wall_time(event.start_s), end_wall,
                                       self.device_id, model.identity, model.topic))
            log.info("%s: %s %s at %.1f s (confidence %.2f)", model.identity.name, event.label, event.type,
                     event.start_s if event.end_s is None else event.end_s, event.confidence)
        if events and model.topic == SIREN_TOPIC:
            self._publish_state(events[-1].end_s if events[-1].type == "end" else events[-1].start_s)

    def _publish_state(self, since_s: float) -> None:
        """The siren channel's state: only the siren model's labels make the intersection 'active'."""
        active = [(t.label, t.confidence) for t in self.tracked[0].trackers.values() if t.active]
        label, confidence = active[0] if active else (None, None)
        self._submit(state_message(bool(active), label, confidence, self.wall_time(since_s)))

    def _publish_health(self) -> None:
        broker = self.mqtt.status() if self.mqtt else {"connected": None}
        self._submit(health_message(self.health.figures(self.source.overflows, self.spool.count("event"), broker)))

    def _close_events(self) -> None:
        for tracked in self.tracked:
            for tracker in tracked.trackers.values():
                self._publish_events(tracked.model, tracker.close())

    def process(self, chunk: Chunk) -> None:
        """Score every window this chunk completes and publish what the trackers conclude."""
        if chunk.start != self._expected_start:
            gap = chunk.start - self._expected_start
            self.health.dropped_windows += max(0, round(gap / self.spec.hop))
            log.warning("audio resumed after a gap of %.1f s", gap / SAMPLE_RATE)
            self._close_events()
            self._windower = StreamWindower(self.spec, start=chunk.start)
        self._expected_start = chunk.start + len(chunk.samples)
        self._anchor = (chunk.start / SAMPLE_RATE, chunk.wall_time)
        self.health.audio_arrived()
        for start, window in self._windower.push(chunk.samples):
            began = time.perf_counter()
            scored = self.scorer.score(window, self.tracked[0].settings.on_threshold)
            self.health.window_done(window, (time.perf_counter() - began) * 1000.0, scored.model_ms, scored.vetoed)
            start_s = start / SAMPLE_RATE
            for tracked, scores in zip(self.tracked, scored.scores, strict=True):
                for index, tracker in tracked.trackers.items():
                    self._publish_events(tracked.model, tracker.update(start_s, float(scores[index])))
            if self.config.detection.publish_scores:
                self._submit(scores_message(start_s, self.wall_time(start_s), {
                    label if model.topic == SIREN_TOPIC else f"{model.identity.name}/{label}": float(value)
                    for model, scores in zip(self.scorer.models, scored.scores, strict=True)
                    for label, value in zip(model.labels, scores, strict=True)}))

    def _reopen_source(self, fault: SourceFault) -> None:
        """Report the fault, end open events, reopen with backoff (pinging the watchdog meanwhile)."""
        self.health.audio_faults += 1
        self.health.source_status = f"fault: {fault}"
        log.error("audio source fault: %s; reopening", fault)
        self._close_events()
        self._publish_health()
        self.source.close()
        delay = 1.0
        while not self.stop_requested.is_set():
            self._sleep_watchful(delay)
            try:
                self.source.open()
                return
            except SourceFault as again:
                self.health.source_status = f"reopening: {again}"
                log.warning("audio source still unavailable (%s); next try in %.0f s", again, delay)
                self._publish_health()
                delay = min(delay * 2, self.config.audio.reopen_backoff_max_s)

    def _sleep_watchful(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop_requested.is_set() and time.monotonic() < deadline:
            self.notifier.watchdog()
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("signal %d: stopping", signum)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)

    def run(self) -> int:
        """Run until the source ends or a stop is requested; 0 on a clean stop, 1 if audio failed for good."""
        self._install_signal_handlers()
        if self.mqtt:
            self.mqtt.start()
        exit_code = 0
        try:
            try:
                self.source.open()
            except SourceFault as fault:
                self._reopen_source(fault)
            self.notifier.ready()
            self.notifier.status("listening, models " + ", ".join(m.identity.name for m in self.scorer.models))
            self._publish_state(0.0)
            self._publish_health()
            exit_code = self._loop()
        finally:
            self._close_events()
            flush_until = time.monotonic() + FLUSH_TIMEOUT_S  # one budget for both flushes: systemd waits 20 s
            if self.mqtt:  # first, so the last health counts what could not be delivered
                self.mqtt.flush(flush_until)
            self._publish_health()
            self.source.close()
            self.notifier.stopping()
            if self.mqtt:
                self.mqtt.stop(flush_until)
        return exit_code

    def _loop(self) -> int:
        watchdog_every = self.notifier.watchdog_interval_s or 1.0
        last_ping = last_health = time.monotonic()
        while not self.stop_requested.is_set():
            try:
                chunk = self.source.read(READ_TIMEOUT_S)
            except EndOfAudio:
                log.info("end of audio after %d windows", self.health.windows_processed)
                return 0
            except SourceFault as fault:
                self._reopen_source(fault)
                continue
            if chunk is not None and len(chunk.samples):
                self.process(chunk)
            now = time.monotonic()
            if now - last_ping >= watchdog_every:
                self.notifier.watchdog()
                last_ping = now
            if now - last_health >= self.config.health_interval_s:
                self._publish_health()
                last_health = now
        return 0

