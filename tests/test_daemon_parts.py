"""The daemon's parts on their own: config, tracker, spool, resampler, ring buffer, sources, worker."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from math import gcd
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import resample_poly

from detector import synth
from detector.config import Config, check_files, load_config, parse_config
from detector.daemon import Daemon
from detector.errors import ConfigError
from detector.resample import StreamResampler
from detector.ringbuffer import RingBuffer
from detector.sources import EndOfAudio, FileSource, SyntheticSource
from detector.spool import Message, Spool
from detector.tracker import BACKTRACK_WINDOWS, EventTracker, TrackerSettings

REPO = Path(__file__).resolve().parent.parent
CONFIGS = REPO / "configs"
SR = 16000


# --- config ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["demo.yaml", "raspberry-pi.yaml"])
def test_shipped_configs_are_valid(name: str) -> None:
    config = load_config(CONFIGS / name)
    assert isinstance(config, Config)


def test_every_config_key_is_documented_in_the_pi_config() -> None:
    documented = yaml.safe_load((CONFIGS / "raspberry-pi.yaml").read_text())

    def keys(value: object, prefix: str = "") -> set[str]:
        if dataclasses.is_dataclass(value):
            found = set()
            for f in dataclasses.fields(value):
                found |= {f"{prefix}{f.name}"} | keys(getattr(value, f.name), f"{prefix}{f.name}.")
            return found
        return set()

    def present(data: object, prefix: str = "") -> set[str]:
        if not isinstance(data, dict):
            return set()
        return {f"{prefix}{k}" for k in data} | {x for k, v in data.items() for x in present(v, f"{prefix}{k}.")}

    expected = keys(Config()) - {f"mqtt.tls.{k}" for k in ("ca_file", "cert_file", "key_file")}  # tls: null there
    assert expected <= present(documented)


@pytest.mark.parametrize(("data", "message"), [
    ({"mqtt": {"prot": 5}}, "mqtt.prot: unknown key"),
    ({"mqtt": {"port": "x"}}, "mqtt.port: 'x' is not a whole number"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: must be between 1 and 65535"),
    ({"mqtt": {"protocol": 4}}, "mqtt.protocol: 4 is not one of 3.1.1, 5"),
    ({"detection": {"hop_s": 0.1}}, "detection.hop_s: must be between 0.25 and 2.0"),
    ({"detection": {"on_threshold": 0.5, "off_threshold": 0.6}}, "detection.off_threshold: must not exceed"),
    ({"audio": {"source": "file"}}, "audio.file: is required when source is file"),
    ({"audio": {"synthetic": {"seed": 1.5}}}, "audio.synthetic.seed: 1.5 is not a whole number"),
    ({"audio": "microphone"}, "audio: must be a mapping"),
    ({"stdout": "yes"}, "stdout: 'yes' is not true or false"),
    ({"mqtt": {"password_file": "/p"}}, "mqtt.username: is required when a password is configured"),
])
def test_bad_config_values_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_config(data)


def test_missing_files_named_by_key(tmp_path: Path) -> None:
    config = parse_config({"mqtt": {"tls": {"ca_file": str(tmp_path / "ca.crt")}}})
    with pytest.raises(ConfigError, match=r"mqtt\.tls\.ca_file: no such file"):
        check_files(config)
    with pytest.raises(ConfigError, match=r"detection\.model: no such file"):
        check_files(parse_config({"detection": {"model": str(tmp_path / "m.tflite")}}))


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["audio", "mqtt", "port", "source", "hop_s", "seed", "x"]), inner,
                        max_size=3),
                    max_leaves=8))
@settings(max_examples=300, deadline=None)
def test_config_parser_fuzz_gives_config_or_config_error(data: object) -> None:
    try:
        parse_config(data)
    except ConfigError as error:
        assert "\n" not in str(error)


def test_check_config_cli(tmp_path: Path) -> None:
    secret = "s3cr3t-never-shown"
    (tmp_path / "password").write_text(secret)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"mqtt": {"username": "u", "password_file": str(tmp_path / "password")}}))
    run = subprocess.run([sys.executable, "-m", "detector.cli", "check-config", str(good)], capture_output=True,
                         text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert secret not in run.stdout + run.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("detection:\n  onset_of: 0\n")
    run = subprocess.run([sys.executable, "-m", "detector.cli", "check-config", str(bad)], capture_output=True,
                         text=True)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "detection.onset_of" in run.stderr


# --- tracker ------------------------------------------------------------------------------------------

TRACKER = TrackerSettings(on_threshold=0.8, off_threshold=0.4, onset_windows=2, onset_of=3, offset_windows=2,
                          min_event_s=3.0, refractory_s=2.0)


def run_tracker(scores: list[float], settings: TrackerSettings = TRACKER) -> list:
    tracker = EventTracker("emergency", settings, window_s=2.0)
    events = [e for i, s in enumerate(scores) for e in tracker.update(float(i), s)]
    return events + tracker.close()


def test_one_loud_window_is_not_an_event() -> None:
    assert run_tracker([0.1, 0.95, 0.1, 0.1, 0.2, 0.1]) == []


def test_k_of_n_onset_and_hysteresis_keep_one_event() -> None:
    scores = [0.1, 0.5, 0.9, 0.3, 0.85, 0.6, 0.5, 0.9, 0.45, 0.2, 0.1, 0.1]
    events = run_tracker(scores)
    assert [e.type for e in events] == ["start", "end"]
    start, end = events
    assert start.start_s == pytest.approx(2.0)  # window 1 (0.5 >= off) is where the evidence rose; centre 1 + 1
    assert end.end_s == pytest.approx(9.0)  # last window >= off is 8, centre 9
    assert start.event_id == end.event_id and end.confidence == pytest.approx(0.9)


def test_a_slowly_confirmed_siren_starts_where_its_evidence_rose() -> None:
    scores = [0.1, 0.1] + [0.5] * 7 + [0.9, 0.9, 0.9] + [0.1] * 4  # between off and on for 7 windows
    assert run_tracker(scores)[0].start_s == pytest.approx(3.0)  # window 2, centre 2 + 1
    always_above_off = [0.5] * 15 + [0.9, 0.9]
    earliest_held = len(always_above_off) - (TRACKER.onset_of + BACKTRACK_WINDOWS)
    assert run_tracker(always_above_off)[0].start_s == pytest.approx(earliest_held + 1.0)  # no further back


def test_minimum_length_and_refractory_gap() -> None:
    events = run_tracker([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1])
    assert [e.type for e in events] == ["start", "end", "start", "end"]
    assert events[1].duration_s == pytest.approx(3.0)  # two windows of evidence, held for min_event_s
    refractory = dataclasses.replace(TRACKER, refractory_s=10.0)
    events = run_tracker([0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1], refractory)
    assert [e.type for e in events] == ["start", "end"]


def test_an_instant_threshold_starts_a_clear_siren_one_window_sooner() -> None:
    scores = [0.1, 0.97, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1]
    fast = dataclasses.replace(TRACKER, instant_threshold=0.95)
    tracker = EventTracker("emergency", fast, window_s=2.0)
    assert tracker.update(0.0, scores[0]) == []
    started = tracker.update(1.0, scores[1])  # k of n alone would wait for the next window
    assert [e.type for e in started] == ["start"] and started[0].start_s == pytest.approx(2.0)
    assert [e.type for e in run_tracker(scores)][:1] == ["start"]  # k of n still starts, a window later
    assert run_tracker([0.1, 0.9, 0.1, 0.1, 0.1], fast) == []  # below the instant threshold: still k of n


def test_close_ends_an_open_event() -> None:
    events = run_tracker([0.1, 0.9, 0.9, 0.9])  # start at centre 2; the audio ends with window 3's end, 5
    assert [e.type for e in events] == ["start", "end"] and events[1].end_s == pytest.approx(5.0)  # min_event_s
    long_event = run_tracker([0.1, 0.9, 0.9, 0.9, 0.9, 0.9, 0.3])  # one quiet window: still open at the end
    assert long_event[1].end_s == pytest.approx(6.0)  # where its evidence stopped (window 5's centre)


def test_close_holds_a_one_window_event_to_the_end_of_the_audio() -> None:
    tracker = EventTracker("emergency", dataclasses.replace(TRACKER, instant_threshold=0.95), window_s=2.0)
    started = tracker.update(0.0, 0.97)  # a 2 s clip: one window, centre 1
    end = tracker.close()
    assert [e.type for e in started + end] == ["start", "end"]
    assert started[0].start_s == pytest.approx(1.0) and end[0].end_s == pytest.approx(2.0)  # not 1.0 - 1.0


# --- spool --------------------------------------------------------------------------------------------

def message(kind: str, n: int) -> Message:
    return Message(kind, kind, {"n": n}, qos=1 if kind == "event" else 0, retain=False)


def test_spool_keeps_order_across_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_messages=100)
    for n in range(5):
        spool.put(message("event", n))
    first = spool.peek()
    assert first is not None
    spool.remove(first[0])
    reopened = Spool(tmp_path, max_messages=100)
    delivered = []
    while (oldest := reopened.peek()) is not None:
        delivered.append(oldest[1].payload["n"])
        reopened.remove(oldest[0])
    assert delivered == [1, 2, 3, 4]
    assert list(tmp_path.glob("*.json")) == []


def test_full_spool_drops_health_before_events(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_messages=10)
    for n in range(8):
        spool.put(message("event", n))
        spool.put(message("health", n))
    assert len(spool) == 10
    assert spool.count("event") == 8 and spool.dropped == {"health": 6}
    for n in range(8, 12):
        spool.put(message("event", n))
    assert spool.count("health") == 0 and spool.dropped == {"health": 8, "event": 2}


# --- resampler and ring buffer --------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_streamed_resampling_equals_whole_signal(rate: int) -> None:
    rng = np.random.default_rng(rate)
    signal = rng.standard_normal(rate * 2)
    divisor = gcd(rate, SR)
    whole = resample_poly(signal, SR // divisor, rate // divisor)
    resampler = StreamResampler(rate, SR)
    parts, i = [], 0
    while i < len(signal):
        size = int(rng.integers(1, 5000))
        parts.append(resampler.push(signal[i : i + size]))
        i += size
    parts.append(resampler.flush())
    np.testing.assert_allclose(np.concatenate(parts), whole, atol=1e-5)


def test_ring_buffer_overwrites_oldest_and_counts() -> None:
    ring = RingBuffer(capacity_frames=100, channels=2)
    data = np.arange(300, dtype=np.float32).reshape(150, 2)
    ring.write(data[:60])
    ring.write(data[60:150])
    frames, dropped = ring.read(0.0)
    np.testing.assert_array_equal(frames, data[50:150])
    assert dropped == ring.dropped_frames == 50 and ring.overruns == 1
    frames, dropped = ring.read(0.01)
    assert len(frames) == 0 and dropped == 0


# --- sources and the worker -------------------------------------------------------------------------------

def scene_file(path: Path, rate: int = 44100, channels: int = 2) -> list[synth.SceneEvent]:
    """A 30 s street scene with two sirens, written at `rate` with `channels` channels."""
    audio, truth = synth.generate_scene(30.0, np.random.default_rng(3), SR, siren_times=[(4.0, 12.0), (19.0, 27.0)])
    divisor = gcd(rate, SR)
    resampled = resample_poly(audio, rate // divisor, SR // divisor)
    sf.write(path, np.stack([resampled] * channels, axis=1), rate)
    return truth


class Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def submit(self, message: Message) -> None:
        self.messages.append(message)

    def events(self) -> list[dict]:
        return [m.payload for m in self.messages if m.kind == "event"]


def run_daemon(config: Config) -> tuple[int, Collector]:
    daemon = Daemon(config)
    collector = Collector()
    daemon.sinks.append(collector)
    return daemon.run(), collector


def file_config(path: Path, realtime: bool) -> Config:
    return parse_config({"audio": {"source": "file", "file": str(path), "realtime": realtime},
                         "mqtt": {"enabled": False, "spool_dir": None}})


def test_file_replay_fast_and_realtime_give_identical_events(tmp_path: Path) -> None:
    path = tmp_path / "scene.wav"
    truth = scene_file(path)
    code_fast, fast = run_daemon(file_config(path, realtime=False))
    code_real, real = run_daemon(file_config(path, realtime=True))
    assert code_fast == code_real == 0
    strip = [{k: v for k, v in e.items() if k in ("type", "start_offset_s", "duration_s", "confidence", "seq")}
             for e in fast.events()]
    assert strip == [{k: v for k, v in e.items() if k in ("type", "start_offset_s", "duration_s", "confidence",
                                                           "seq")} for e in real.events()]
    starts = [e["start_offset_s"] for e in fast.events() if e["type"] == "start"]
    assert len(starts) == len(truth) and all(abs(s - t.start_s) <= 2.5 for s, t in zip(starts, truth, strict=True))
    assert fast.messages[-1].kind == "health"


def test_file_source_matches_whole_file_reading(tmp_path: Path) -> None:
    from detector.audio import read_audio

    path = tmp_path / "scene.flac"
    scene_file(path, rate=22050, channels=3)
    source = FileSource(path, SR, block_s=0.37, realtime=False)
    source.open()
    parts = []
    with pytest.raises(EndOfAudio):
        while True:
            chunk = source.read(1.0)
            assert chunk is not None and chunk.start == sum(len(p) for p in parts)
            parts.append(chunk.samples)
    np.testing.assert_allclose(np.concatenate(parts), read_audio(path, SR).samples, atol=1e-5)


def test_endless_synthetic_source_keeps_going_with_truth() -> None:
    config = parse_config({"audio": {"synthetic": {"duration_s": None, "seed": 2}}}).audio.synthetic
    source = SyntheticSource(config, SR, block_s=1.0, realtime=False)
    source.open()
    total = 0
    while total < 700 * SR:
        chunk = source.read(1.0)
        assert chunk is not None and chunk.start == total
        total += len(chunk.samples)
    assert source.truth and source.truth[-1].start_s > 300.0


def test_broken_audio_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "noise.wav"
    path.write_bytes(b"RIFF not really a wav file")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"audio": {"source": "file", "file": str(path)},
                                      "mqtt": {"enabled": False}}))
    run = subprocess.run([sys.executable, "-m", "detector.cli", "run", "--config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert "noise.wav: not a readable audio file" in run.stderr and "Traceback" not in run.stderr


def test_run_never_imports_tensorflow(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"audio": {"source": "synthetic", "realtime": False,
                                                "synthetic": {"duration_s": 10}}, "mqtt": {"enabled": False}}))
    code = ("import sys; from detector.cli import main; rc = main(['run', '--config', sys.argv[1]]); "
            "assert rc == 0, rc; assert not [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]")
    run = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
