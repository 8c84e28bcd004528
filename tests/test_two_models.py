"""Several models on the same windows: the siren model on <p>/event, the others on <p>/sound; YAMNet's roles."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from detector.classify import clip_labels, score_names
from detector.config import INSTALL_ROOT, parse_config
from detector.daemon import SAMPLE_RATE, WINDOW_S
from detector.errors import ModelError
from detector.messages import ModelIdentity
from detector.scoring import SIREN_TOPIC, SOUND_TOPIC, ScoredModel, Scorer
from detector.synth import generate_scene
from detector.yamnet import URBAN_CLASSES
from tests.test_daemon_mqtt import Subscriber, broker, daemon, finish, write_config  # noqa: F401  (fixture)
from tests.yamnet_file import YAMNET, needs_yamnet

EMERGENCY = INSTALL_ROOT / "models" / "emergency.tflite"


def renamed_copy(folder: Path, name: str) -> Path:
    """The shipped siren model under another card name: a second model whose events are easy to predict."""
    model = folder / f"{name}.tflite"
    shutil.copyfile(EMERGENCY, model)
    card = json.loads(EMERGENCY.with_suffix(".json").read_text())
    model.with_suffix(".json").write_text(json.dumps({**card, "name": name}))
    return model


def test_second_model_publishes_on_sound_and_never_on_event(broker, tmp_path: Path) -> None:  # noqa: F811
    second = renamed_copy(tmp_path, "second")
    subscriber = Subscriber(broker.port)
    config = write_config(tmp_path, broker.port, {"source": "synthetic", "realtime": False,
                                                   "synthetic": {"duration_s": 120, "seed": 7}})
    text = yaml.safe_load(config.read_text())
    text["detection"] = {"models": [str(second)]}
    config.write_text(yaml.safe_dump(text))
    finish(daemon(config))
    time.sleep(0.5)
    subscriber.close()
    sirens, sounds = subscriber.of("event"), subscriber.of("sound")
    assert len(sirens) == 6 and {e["model"]["name"] for e in sirens} == {"emergency"}
    assert {e["model"]["name"] for e in sounds} == {"second"}
    # the same network on the same windows: the same events, each on its own topic, with its own ids
    assert [(e["type"], e["start_offset_s"]) for e in sounds] == [(e["type"], e["start_offset_s"]) for e in sirens]
    assert not {e["event_id"] for e in sounds} & {e["event_id"] for e in sirens}
    assert [s["active"] for s in subscriber.of("state")] == [False] + [True, False] * 3  # siren channel only
    health = subscriber.of("health")[-1]
    assert set(health["model_inference_ms"]) == {"emergency", "second"}
    assert all(figures["p50"] > 0 for figures in health["model_inference_ms"].values())


def test_models_that_share_a_name_are_refused(tmp_path: Path) -> None:
    detection = parse_config({"detection": {"models": [str(renamed_copy(tmp_path, "emergency"))]}}).detection
    with pytest.raises(ModelError, match="share the name 'emergency'"):
        Scorer(detection, SAMPLE_RATE, WINDOW_S)


def test_classify_with_a_config_shows_every_configured_model(tmp_path: Path) -> None:
    import subprocess
    import sys

    import soundfile as sf

    audio, _ = generate_scene(20.0, np.random.default_rng(3), SAMPLE_RATE, siren_times=[(5.0, 15.0)])
    wav = tmp_path / "scene.wav"
    sf.write(wav, audio, SAMPLE_RATE)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"detection": {"models": [str(renamed_copy(tmp_path, "second"))]}}))
    run = subprocess.run([sys.executable, "-m", "detector.cli", "classify", "--config", str(config), "--json",
                          str(wav)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert len(result["events"]) == 2  # the siren, once per model


def test_each_model_gets_its_own_clip_label_under_shared_label_names() -> None:
    """urban.tflite and YAMNet's tagging share all ten labels; each model's clip label reads its own columns."""
    names = score_names([ScoredModel(ModelIdentity(name, ""), labels, labels, SOUND_TOPIC, None)
                         for name, labels in [("emergency", ("non_emergency", "emergency")),
                                              ("urban", ("dog_bark", "siren")), ("yamnet", ("dog_bark", "siren"))]])
    assert names[2] == ["yamnet/dog_bark", "yamnet/siren"]
    windows = [{"scores": {"non_emergency": 0.9, "emergency": 0.1, "dog_bark": 0.2, "siren": 0.8,
                           "yamnet/dog_bark": 0.7, "yamnet/siren": 0.3}},
               {"scores": {"non_emergency": 0.3, "emergency": 0.7, "dog_bark": 0.4, "siren": 0.6,
                           "yamnet/dog_bark": 0.6, "yamnet/siren": 0.4}}]
    labels = clip_labels(windows, names)
    assert [label for label, _ in labels] == ["non_emergency", "siren", "dog_bark"]
    assert [round(mean, 3) for _, mean in labels] == [0.6, 0.7, 0.65]


@needs_yamnet
def test_yamnet_tags_urban_labels_and_vetoes_unconfirmed_onsets(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    audio, _ = generate_scene(12.0, rng, SAMPLE_RATE, siren_times=[(0.5, 11.5)], siren_snr_db=(15.0, 15.0))
    window = audio[SAMPLE_RATE * 4 : SAMPLE_RATE * 6]

    def scorer(confirm: float) -> Scorer:
        return Scorer(parse_config({"detection": {"yamnet": str(YAMNET), "yamnet_confirm": True,
                                                    "yamnet_confirm_threshold": confirm}})
                      .detection, SAMPLE_RATE, WINDOW_S)

    lenient = scorer(0.0001)
    assert [m.topic for m in lenient.models] == [SIREN_TOPIC, SOUND_TOPIC]
    assert lenient.models[1].labels == tuple(URBAN_CLASSES)
    plain = lenient.score(window, siren_on_threshold=0.5)
    assert not plain.vetoed and set(plain.model_ms) == {"emergency", "yamnet"}
    assert plain.scores[0][1] >= 0.5  # the siren model flags this window, so YAMNet is asked
    strict = scorer(0.9999).score(window, siren_on_threshold=0.5)
    assert strict.vetoed and 0.49 < strict.scores[0][1] < 0.5  # held just below the on-threshold
    np.testing.assert_allclose(strict.scores[1], plain.scores[1])  # the urban tags do not depend on the veto


def test_classify_with_a_config_gives_the_events_the_daemon_publishes(tmp_path: Path) -> None:
    """Tracker overrides, the hop and a second model (its own card's tracker, events on <p>/sound): offline
    classify and the daemon on the same file agree event for event."""
    import subprocess
    import sys

    import soundfile as sf

    audio, _ = generate_scene(40.0, np.random.default_rng(11), SAMPLE_RATE, siren_times=[(6.0, 18.0), (26.0, 34.0)])
    wav = tmp_path / "scene.wav"
    sf.write(wav, audio, SAMPLE_RATE)
    detection = {"hop_s": 0.5, "on_threshold": 0.975, "instant_threshold": 0.99, "onset_windows": 1, "onset_of": 1,
                 "models": [str(renamed_copy(tmp_path, "second"))]}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"audio": {"source": "file", "file": str(wav), "realtime": False},
                                      "mqtt": {"enabled": False}, "stdout": True, "detection": detection}))

    def run(*command: str) -> str:
        done = subprocess.run([sys.executable, "-m", "detector.cli", *command], capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr
        return done.stdout

    published = [json.loads(line) for line in run("run", "--config", str(config)).splitlines()]
    ends = {topic: sorted((m["payload"]["label"], round(m["payload"]["start_offset_s"], 3),
                           round(m["payload"]["start_offset_s"] + m["payload"]["duration_s"], 3))
                          for m in published if m["topic"].endswith(topic) and m["payload"]["type"] == "end")
            for topic in ("/event", "/sound")}
    assert ends["/event"] and ends["/sound"] and ends["/event"] != ends["/sound"]  # the overrides are the siren's
    classified = json.loads(run("classify", "--config", str(config), "--json", str(wav)))
    offline_events = sorted((e["label"], round(e["start_s"], 3), round(e["end_s"], 3)) for e in classified["events"])
    assert offline_events == sorted(ends["/event"] + ends["/sound"])
    assert classified["windows"][1]["start_s"] == 0.5  # the config's hop, not the card's
    assert {"emergency", "second/emergency"} <= set(classified["windows"][0]["scores"])
