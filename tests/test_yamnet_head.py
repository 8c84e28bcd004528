"""The urban head on YAMNet's embedding: fitted by train.yamnet_head, read and checked by the runtime, used by
the daemon's YAMNet option in place of YAMNet's own mapped classes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from detector.config import INSTALL_ROOT, parse_config
from detector.daemon import SAMPLE_RATE, WINDOW_S
from detector.errors import ModelError
from detector.model import file_sha256
from detector.scoring import YAMNET_HEAD_NAME, YAMNET_NAME, Scorer
from detector.synth import generate_scene
from detector.yamnet import URBAN_CLASSES, YamnetTagger
from detector.yamnet_head import YamnetHead, load_head, with_yamnet_scores
from tests.yamnet_file import YAMNET, needs_yamnet
from train.yamnet_head import folded_weights, head_json, main
from train.yamnet_teacher import fit_head

SHIPPED_HEAD = INSTALL_ROOT / "models" / "yamnet_head.json"


def fitted_head(rng: np.random.Generator) -> tuple[object, np.ndarray]:
    """A head fitted on embeddings whose class means differ, with unequal feature scales (so folding matters)."""
    means = rng.standard_normal((len(URBAN_CLASSES), 1024))
    labels = np.repeat(np.arange(len(URBAN_CLASSES)), 30)
    scales = rng.uniform(0.1, 10.0, 1024)
    embeddings = ((means[labels] + 2.0 * rng.standard_normal((len(labels), 1024))) * scales).astype(np.float32)
    return fit_head(embeddings, labels), embeddings


def head_file(tmp_path: Path, yamnet: Path, **changes: object) -> Path:
    head, _ = fitted_head(np.random.default_rng(0))
    weights, bias = folded_weights(head)
    content = {"name": "yamnet_head", "labels": list(URBAN_CLASSES), "yamnet_sha256": file_sha256(yamnet),
               "weights": weights.tolist(), "bias": bias.tolist(), **changes}
    path = tmp_path / "head.json"
    path.write_text(head_json(content))
    return path


def test_folded_weights_give_the_fitted_pipelines_probabilities() -> None:
    rng = np.random.default_rng(3)
    head, embeddings = fitted_head(rng)
    weights, bias = folded_weights(head)
    runtime = YamnetHead(Path("head.json"), tuple(URBAN_CLASSES), weights.astype(np.float32),
                         bias.astype(np.float32), "0" * 64)
    expected = head.predict_proba(embeddings[:20])
    uninformative = np.full(len(URBAN_CLASSES), 0.3)  # YAMNet's own scores equal: the product is the head
    got = np.array([runtime.probabilities(e, uninformative) for e in embeddings[:20]])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()
    combined = dataclasses.replace(runtime, yamnet_scores_weight=0.5)
    np.testing.assert_allclose([combined.probabilities(e, uninformative) for e in embeddings[:20]], expected,
                               atol=1e-4)


def test_yamnet_scores_move_the_head_towards_what_yamnet_hears() -> None:
    head = np.array([[0.5, 0.4, 0.1], [0.2, 0.2, 0.6]])
    yamnet_scores = np.array([[0.05, 0.9, 0.1], [0.0, 0.0, 0.0]])  # the second: YAMNet hears none of them
    np.testing.assert_array_equal(with_yamnet_scores(head, yamnet_scores, 0.0), head)
    combined = with_yamnet_scores(head, yamnet_scores, 0.5)
    np.testing.assert_allclose(combined.sum(axis=1), 1.0, atol=1e-6)
    assert combined[0].argmax() == 1  # the head's near tie is settled by YAMNet's own classes
    np.testing.assert_allclose(combined[1], head[1], atol=1e-4)  # silence from YAMNet changes nothing
    expected = head[0] * np.sqrt(yamnet_scores[0] / yamnet_scores[0].sum())
    np.testing.assert_allclose(combined[0], expected / expected.sum(), atol=1e-4)


def test_load_head_reads_what_head_json_writes_and_refuses_what_does_not_fit(tmp_path: Path) -> None:
    yamnet = tmp_path / "yamnet.tflite"
    yamnet.write_bytes(b"stands in for the YAMNet file: only its sha256 is read here")
    loaded = load_head(head_file(tmp_path, yamnet), yamnet)
    assert loaded.labels == tuple(URBAN_CLASSES) and loaded.weights.shape == (10, 1024)
    assert loaded.yamnet_sha256 == file_sha256(yamnet)

    other = tmp_path / "other.tflite"
    other.write_bytes(b"another YAMNet")
    with pytest.raises(ModelError, match=r"fitted on the YAMNet file with sha256 .* but .*other.tflite has"):
        load_head(head_file(tmp_path, yamnet), other)
    with pytest.raises(ModelError, match="YAMNet head not found"):
        load_head(tmp_path / "missing.json", yamnet)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a YAMNet head"):
        load_head(tmp_path / "broken.json", yamnet)
    with pytest.raises(ModelError, match="do not fit 10 labels of a 1024-d embedding"):
        load_head(head_file(tmp_path, yamnet, bias=[0.0] * 9), yamnet)
    with pytest.raises(ModelError, match="are not the urban labels"):
        load_head(head_file(tmp_path, yamnet, labels=list(reversed(URBAN_CLASSES))), yamnet)
    with pytest.raises(ModelError, match="not a YAMNet head"):
        load_head(head_file(tmp_path, yamnet, weights="none"), yamnet)
    assert load_head(head_file(tmp_path, yamnet, yamnet_scores_weight=0.5), yamnet).yamnet_scores_weight == 0.5
    with pytest.raises(ModelError, match=r"yamnet_scores_weight must be a number >= 0, got -1\.0"):
        load_head(head_file(tmp_path, yamnet, yamnet_scores_weight=-1), yamnet)


@needs_yamnet
def test_shipped_head_fits_the_yamnet_file_and_hears_a_siren_as_a_siren() -> None:
    scorer = Scorer(parse_config({"detection": {"yamnet": str(YAMNET)}}).detection, SAMPLE_RATE, WINDOW_S)
    tagger = scorer.models[-1]
    assert tagger.identity.name == YAMNET_HEAD_NAME and tagger.identity.sha256 == file_sha256(SHIPPED_HEAD)
    audio, _ = generate_scene(12.0, np.random.default_rng(5), SAMPLE_RATE, siren_times=[(0.5, 11.5)],
                              siren_snr_db=(25.0, 25.0))  # YAMNet hears generated sirens under 15 dB poorly
    windows = [audio[SAMPLE_RATE * start : SAMPLE_RATE * (start + 2)] for start in (2, 4, 6, 8)]
    scored = [scorer.score(window, siren_on_threshold=0.5) for window in windows]
    urban = np.array([s.scores[-1] for s in scored])
    assert urban.shape == (4, 10) and np.allclose(urban.sum(axis=1), 1.0, atol=1e-5)
    assert list(URBAN_CLASSES)[int(urban.mean(axis=0).argmax())] == "siren"
    assert set(scored[0].model_ms) == {"emergency", YAMNET_NAME}

    mapped = Scorer(parse_config({"detection": {"yamnet": str(YAMNET), "yamnet_head": None}}).detection,
                    SAMPLE_RATE, WINDOW_S)
    assert mapped.models[-1].identity.name == YAMNET_NAME
    np.testing.assert_allclose(mapped.score(windows[0], 0.5).scores[-1],
                               YamnetTagger.urban_scores(YamnetTagger(YAMNET).window_scores(windows[0])))


@needs_yamnet
def test_a_head_for_another_yamnet_file_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    stand_in = tmp_path / "not-this-yamnet.tflite"
    stand_in.write_bytes(b"x")
    config = tmp_path / "config.yaml"
    config.write_text(f"detection:\n  yamnet: {YAMNET}\n  yamnet_head: {head_file(tmp_path, stand_in)}\n")
    run = subprocess.run([sys.executable, "-m", "detector.cli", "check-config", str(config)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "fitted on the YAMNet file with sha256" in lines[0], run.stderr


@needs_yamnet
def test_train_yamnet_head_writes_a_head_the_runtime_loads(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.test_urban import build_tree

    build_tree(tmp_path / "us8k")
    out = tmp_path / "models" / "yamnet_head.json"
    assert main(["--data", str(tmp_path / "us8k"), "--yamnet", str(YAMNET), "--out", str(out),
                 "--report", str(tmp_path / "report")]) == 0
    assert "mean slice accuracy on held-out folds" in capsys.readouterr().out
    head = json.loads(out.read_text())
    assert set(head["evaluation"]["this_model"]["slice_accuracy_per_fold"]) == {"1", "2"}
    assert load_head(out, YAMNET).weights.shape == (10, 1024)
    assert "weights" not in json.loads((tmp_path / "report" / "report.json").read_text())

    missing = tmp_path / "none.tflite"
    assert main(["--data", str(tmp_path / "us8k"), "--yamnet", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"train.yamnet_head: error: {missing}: YAMNet model file not found"


@needs_yamnet
def test_classify_with_a_yamnet_config_shows_its_tags_beside_the_urban_models(tmp_path: Path) -> None:
    import soundfile as sf

    audio, _ = generate_scene(8.0, np.random.default_rng(2), SAMPLE_RATE, siren_times=[(0.5, 7.5)],
                              siren_snr_db=(25.0, 25.0))
    wav = tmp_path / "scene.wav"
    sf.write(wav, audio, SAMPLE_RATE)
    config = tmp_path / "config.yaml"
    config.write_text(f"detection:\n  yamnet: {YAMNET}\n  models: [{INSTALL_ROOT / 'models' / 'urban.tflite'}]\n")
    run = subprocess.run([sys.executable, "-m", "detector.cli", "classify", "--config", str(config), "--json",
                          str(wav)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    scores = json.loads(run.stdout)["windows"][0]["scores"]
    assert {"emergency", "siren", f"{YAMNET_HEAD_NAME}/siren"} <= set(scores)  # the shared labels, told apart
    assert len(scores) == 2 + 10 + 10
    assert abs(sum(scores[f"{YAMNET_HEAD_NAME}/{label}"] for label in URBAN_CLASSES) - 1.0) < 1e-3
