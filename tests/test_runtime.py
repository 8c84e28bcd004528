"""The runtime side of a model: LiteRT loads it, the card is checked against it, scores are probabilities."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import SR, WINDOW, siren_over_traffic, traffic_window

from detector import synth
from detector.errors import ModelError
from detector.model import Classifier


def test_classifier_loads_the_model_with_litert(tiny_model: Path) -> None:
    """The Pi has no TensorFlow: the interpreter must be LiteRT's, and the card must be the one written."""
    classifier = Classifier(tiny_model)
    assert type(classifier._interpreter).__module__.startswith("ai_edge_litert")
    assert classifier.card.name == "tiny"
    assert classifier.card.labels == ("non_emergency", "emergency")
    assert classifier.card.positive_labels == ("emergency",)
    assert classifier.card.window_samples == WINDOW
    assert classifier.sha256 == hashlib.sha256(tiny_model.read_bytes()).hexdigest()


def test_exported_model_carries_no_tensor_names(tiny_model: Path) -> None:
    """The size budgets count bytes: the converter's tensor names (a tenth of a shipped file) are stripped
    at export, and the runtime, which addresses tensors by index, still reads the file."""
    classifier = Classifier(tiny_model)
    assert all(detail["name"] == "" for detail in classifier._interpreter.get_tensor_details())
    assert classifier._interpreter.get_signature_list() == {}


def test_scores_are_probabilities(tiny_model: Path) -> None:
    """Events compare scores with a threshold in [0, 1]; raw int8 values or logits would be meaningless."""
    rng = np.random.default_rng(5)
    windows = np.array([
        siren_over_traffic("yelp", rng, 10.0),
        traffic_window(rng),
        np.zeros(WINDOW, np.float32),  # digital silence: every band at the log floor
        np.clip(rng.standard_normal(WINDOW), -1, 1).astype(np.float32),  # full-scale noise
        (0.99 * np.sign(np.sin(np.arange(WINDOW) * 0.3))).astype(np.float32),  # clipped square wave
    ])
    scores = Classifier(tiny_model).predict(windows)
    assert scores.shape == (len(windows), 2)
    assert scores.dtype == np.float32
    assert np.all(scores >= 0.0) and np.all(scores <= 1.0)
    # Each int8 output step is 1/256, so two outputs may miss a sum of 1 by about a step each.
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=0.02)


def test_a_loud_siren_scores_higher_than_traffic(tiny_model: Path) -> None:
    """The model (and the feature path feeding it) must carry the siren/traffic difference it was trained on."""
    classifier = Classifier(tiny_model)
    rng = np.random.default_rng(2024)
    sirens = np.array([siren_over_traffic(kind, rng, 20.0) for kind in ("wail", "yelp", "two_tone", "hilo")])
    traffic = np.array([traffic_window(rng) for _ in range(6)])
    emergency = classifier.card.labels.index("emergency")
    siren_scores = classifier.predict(sirens)[:, emergency]
    traffic_scores = classifier.predict(traffic)[:, emergency]
    assert np.all(siren_scores > np.median(traffic_scores)), (siren_scores, traffic_scores)
    assert siren_scores.mean() - traffic_scores.mean() > 0.5, (siren_scores, traffic_scores)
    assert siren_scores.min() > 0.5


def test_int8_input_and_output_are_quantised_and_dequantised(tiny_training) -> None:
    """A full-integer model takes int8 in and gives int8 out; the classifier must scale both ways."""
    classifier = Classifier(tiny_training.path)
    card = classifier.card
    assert card.input_quantization.dtype == "int8" and card.input_quantization.scale > 0
    assert card.output_quantization.dtype == "int8" and card.output_quantization.scale > 0
    rng = np.random.default_rng(77)
    windows = np.array([siren_over_traffic("wail", rng, 12.0), siren_over_traffic("phaser", rng, 3.0),
                        traffic_window(rng), traffic_window(rng)])
    features = classifier.features(windows)
    float_scores = tiny_training.keras_model.predict(features, verbose=0)
    int8_scores = classifier.predict_features(features)
    np.testing.assert_allclose(int8_scores, float_scores, atol=0.08)


def test_card_quantization_must_match_the_model(model_variant, tiny_card) -> None:
    """A card whose input scale disagrees would make every input wrong without any error."""
    tiny_card["input"]["scale"] *= 2
    with pytest.raises(ModelError, match="input quantization"):
        Classifier(model_variant(card=tiny_card))


def test_model_changed_after_its_card_is_refused(model_variant) -> None:
    """A model and card from different trainings must not be paired silently."""
    changed = model_variant(tflite=(model_variant().read_bytes() + b"\0"))
    with pytest.raises(ModelError, match="sha256"):
        Classifier(changed)


def test_card_with_another_sha256_is_refused(model_variant, tiny_card) -> None:
    """The same check seen from the card side: the card names another model file."""
    tiny_card["tflite_sha256"] = hashlib.sha256(b"some other model").hexdigest()
    with pytest.raises(ModelError, match="sha256"):
        Classifier(model_variant(card=tiny_card))


def test_model_without_card_is_refused(model_variant) -> None:
    """Without its card the runtime cannot know the features, labels or threshold."""
    with pytest.raises(ModelError, match="card missing"):
        Classifier(model_variant(without_card=True))


def test_card_that_is_not_json_is_refused(model_variant) -> None:
    """A damaged card is a ModelError (one line for the user), not a JSONDecodeError traceback."""
    path = model_variant()
    path.with_suffix(".json").write_text('{"name": "tiny", ')
    with pytest.raises(ModelError, match="not valid JSON"):
        Classifier(path)


def test_card_with_missing_keys_names_them(model_variant, tiny_card) -> None:
    """The message must say which keys to add, not just that the card is wrong."""
    del tiny_card["threshold"], tiny_card["positive_labels"]
    with pytest.raises(ModelError) as caught:
        Classifier(model_variant(card=tiny_card))
    assert "threshold" in str(caught.value) and "positive_labels" in str(caught.value)


@pytest.mark.parametrize(("change", "value"), [("n_mels", 40), ("hop_length", 320)])
def test_card_features_that_do_not_fit_the_input_are_refused(model_variant, tiny_card, change, value) -> None:
    """Features of another shape would be reshaped into garbage (or crash the interpreter)."""
    tiny_card["features"][change] = value
    with pytest.raises(ModelError, match="does not fit"):
        Classifier(model_variant(card=tiny_card))


def test_card_window_that_does_not_fit_the_input_is_refused(model_variant, tiny_card) -> None:
    """A 1 s window gives half the frames the model takes."""
    tiny_card["window_s"] = 1.0
    with pytest.raises(ModelError, match="does not fit"):
        Classifier(model_variant(card=tiny_card))


@pytest.mark.parametrize(("key", "value", "message"), [("hop_s", 0, "hop_s"), ("hop_s", -1.0, "hop_s"),
                                                       ("hop_s", 3.0, "hop_s"), ("threshold", 1.5, "threshold")])
def test_card_with_impossible_values_is_refused(model_variant, tiny_card, key, value, message) -> None:
    """A zero hop would loop forever and a threshold above 1 would silently disable every event."""
    tiny_card[key] = value
    with pytest.raises(ModelError, match=message):
        Classifier(model_variant(card=tiny_card))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_tflite_is_refused(model_variant, tiny_card, tiny_model, damage) -> None:
    """A half-copied model with a card that matches its bytes gets past the sha256 check: LiteRT must refuse it."""
    original = tiny_model.read_bytes()
    data = {"truncated": original[: len(original) // 2], "garbage": b"not a flatbuffer " * 64,
            "empty": b""}[damage]
    tiny_card["tflite_sha256"] = hashlib.sha256(data).hexdigest()
    with pytest.raises(ModelError, match="not a valid TFLite model"):
        Classifier(model_variant(tflite=data, card=tiny_card))


def test_missing_model_file_is_refused(tmp_path: Path) -> None:
    """A wrong --model path is the commonest mistake; it must be a ModelError naming the path."""
    with pytest.raises(ModelError, match=r"missing\.tflite: model file not found"):
        Classifier(tmp_path / "missing.tflite")


@pytest.mark.parametrize(("rate", "window_s"), [(48000, 2.0), (16000, 1.0), (8000, 2.0)])
def test_audio_path_the_model_was_not_trained_for_is_refused(tiny_model, rate, window_s) -> None:
    """A 48 kHz stream or a 1 s window gives features the model never saw."""
    classifier = Classifier(tiny_model)
    with pytest.raises(ModelError, match="trained for 16000 Hz"):
        classifier.check_audio_path(rate, window_s)
    classifier.check_audio_path(SR, 2.0)  # the trained path is accepted


BLOCK_TENSORFLOW = textwrap.dedent("""
    import importlib.abc, json, sys

    BLOCKED = ("tensorflow", "keras", "tf_keras")
    attempts = []

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                attempts.append(name)
                raise ImportError(f"{name} is blocked in this test")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    try:
        import tensorflow  # the blocker must really block, or this test proves nothing
    except ImportError:
        attempts.clear()
    else:
        sys.exit(99)
    from detector.cli import main

    status = main(["classify", sys.argv[1], "--json", "--model", sys.argv[2]])
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    print(json.dumps({"status": status, "loaded": loaded, "attempts": attempts}), file=sys.stderr)
    sys.exit(status)
""")


def test_classify_runs_without_tensorflow(tiny_model, write_audio, tmp_path) -> None:
    """The Pi installs only the runtime: classify must not need (or import) TensorFlow or Keras."""
    rng = np.random.default_rng(3)
    wav = write_audio("siren.wav", np.concatenate([traffic_window(rng), synth.generate_siren("wail", 3.0, rng)]))
    done = subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW, str(wav), str(tiny_model)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["loaded"] == [] and report["attempts"] == [], report
    result = json.loads(done.stdout)
    assert result["file"] == str(wav)
    assert len(result["windows"]) == 4  # 5 s at a 2 s window and a 1 s hop
    assert set(result["windows"][0]["scores"]) == {"non_emergency", "emergency"}
