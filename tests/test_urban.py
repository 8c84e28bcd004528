"""The UrbanSound8K task: loader, leave-one-fold-out split, extra-data mapping, and a tiny end-to-end run.

Everything runs on an UrbanSound8K-shaped tree of generated audio the tests build in tmp_path.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from detector.errors import DetectorError
from detector.model import Classifier
from detector.yamnet import URBAN_CLASSES
from tests.yamnet_file import YAMNET, needs_yamnet
from train.datasets import Clip, DatasetError, load_dataset, load_datasets, load_urbansound8k
from train.fit import FitSettings
from train.urban import (
    EXTRA_LABELS,
    URBAN_LABELS,
    UrbanConfig,
    blend_targets,
    check_recordings_disjoint,
    extra_label,
    leave_one_fold_out,
    load_transfer_windows,
    load_urban_data,
    select_clips,
    split_folds,
    teacher_probabilities,
    transfer_mask_for,
)
from train.yamnet_teacher import cross_fitted_probabilities, fit_head, head_probabilities

RATE = 16000
CLASS_IDS = {  # UrbanSound8K's own classID numbering
    "air_conditioner": 0, "car_horn": 1, "children_playing": 2, "dog_bark": 3, "drilling": 4,
    "engine_idling": 5, "gun_shot": 6, "jackhammer": 7, "siren": 8, "street_music": 9,
}


def class_audio(label: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A tone per class (so a model can tell them apart) under a little noise."""
    t = np.arange(round(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * (300 + 350 * URBAN_LABELS.index(label)) * t)
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def build_tree(root: Path, fs_in_two_folds: bool = False) -> None:
    """metadata/UrbanSound8K.csv + audio/foldN/fsID-classID-occurrence-slice.wav: folds 1 and 2 complete
    (every class, two recordings of two slices each), fold 3 a single siren recording (training-only)."""
    rng = np.random.default_rng(0)
    rows = ["slice_file_name,fsID,start,end,salience,fold,classID,class"]
    plan = [(fold, label, 1000 * fold + 10 * CLASS_IDS[label] + k)
            for fold in (1, 2) for label in URBAN_LABELS for k in range(2)]
    plan.append((3, "siren", 3999))
    for fold, label, fs_id in plan:
        for slice_index in range(2):
            # a recording cut into slices of 1-4 s, like the real ones; optionally one leaks into fold 2
            slice_fold = 2 if fs_in_two_folds and fs_id == 1000 and slice_index == 1 else fold
            name = f"{fs_id}-{CLASS_IDS[label]}-0-{slice_index}.wav"
            seconds = float(rng.choice([1.0, 2.5, 4.0]))
            path = root / "audio" / f"fold{slice_fold}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, class_audio(label, seconds, rng), RATE)
            rows.append(f"{name},{fs_id},0,{seconds},1,{slice_fold},{CLASS_IDS[label]},{label}")
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "UrbanSound8K.csv").write_text("\n".join(rows) + "\n")


def build_extras(root: Path) -> Path:
    """An index CSV of other datasets' recordings: some map onto the ten classes, some do not."""
    rng = np.random.default_rng(1)
    rows = ["path,dataset,label,group"]
    for dataset, label, name, urban in [("esc50", "dog", "1-1-A-0", "dog_bark"),
                                        ("esc50", "rain", "1-2-A-10", None),
                                        ("sesa", "siren", "train_siren_001", "siren"),
                                        ("sesa", "siren", "train_siren_057", None),  # an alarm
                                        ("evss-firetruck", "firetruck", "sound_1", "siren")]:
        path = root / dataset / label / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, class_audio(urban or "air_conditioner", 3.0, rng), RATE)
        rows.append(f"{dataset}/{label}/{name}.wav,{dataset},{label},{dataset}-{name}")
    (root / "index.csv").write_text("\n".join(rows) + "\n")
    return root / "index.csv"


def test_labels_are_yamnets_urban_classes_in_order() -> None:
    assert URBAN_LABELS == tuple(URBAN_CLASSES) == tuple(sorted(URBAN_CLASSES))
    assert len(URBAN_LABELS) == 10


def test_loader_reads_the_tree_with_official_folds(tmp_path: Path) -> None:
    build_tree(tmp_path)
    clips = load_dataset(tmp_path)
    assert len(clips) == (2 * 10 * 2 + 1) * 2
    assert {c.fold for c in clips} == {1, 2, 3}
    us8k, extras = select_clips(clips)
    assert len(us8k) == len(clips) and not extras
    assert split_folds(us8k) == ([1, 2], [3])  # fold 3 lacks classes: training-only


def test_leave_one_fold_out_keeps_each_recording_on_one_side(tmp_path: Path) -> None:
    build_tree(tmp_path)
    clips = load_urbansound8k(tmp_path)
    check_recordings_disjoint([c.group for c in clips], [int(c.fold or 0) for c in clips])
    folds = np.array([c.fold for c in clips])
    groups = tuple(frozenset({c.group}) for c in clips)
    for test_fold in (1, 2):
        train, test = leave_one_fold_out(folds, groups, test_fold)
        assert not {c.group for c, t in zip(clips, test, strict=True) if t} & \
            {c.group for c, t in zip(clips, train, strict=True) if t}
        assert train[folds == 3].all()  # the incomplete fold always trains


def test_an_extra_cut_from_a_held_out_recording_sits_that_split_out() -> None:
    window_fold = np.array([1, 1, 2, 2, 0, 0])
    groups = tuple(frozenset({g}) for g in ("us8k-fs1", "us8k-fs1", "us8k-fs2", "us8k-fs2", "us8k-fs1", "esc50-fs9"))
    train, test = leave_one_fold_out(window_fold, groups, 1)
    assert test.tolist() == [True, True, False, False, False, False]
    assert train.tolist() == [False, False, True, True, False, True]  # the fs1 extra waits for fold 2's split
    train, _test = leave_one_fold_out(window_fold, groups, 2)
    assert train.tolist() == [True, True, False, False, True, True]


def test_split_fails_when_a_recording_spans_two_folds(tmp_path: Path) -> None:
    build_tree(tmp_path, fs_in_two_folds=True)
    clips = load_urbansound8k(tmp_path)
    with pytest.raises(DatasetError, match="us8k-fs1000"):
        check_recordings_disjoint([c.group for c in clips], [int(c.fold or 0) for c in clips])
    folds = np.array([c.fold for c in clips])
    with pytest.raises(DatasetError, match="both sides"):
        leave_one_fold_out(folds, tuple(frozenset({c.group}) for c in clips), 1)


def test_extra_data_mapping() -> None:
    def clip(dataset: str, label: str, stem: str = "x") -> Clip:
        return Clip(Path(f"{dataset}/{label}/{stem}.flac"), label, stem, None, dataset)

    assert extra_label(clip("esc50", "dog")) == "dog_bark"
    assert extra_label(clip("esc50", "car_horn")) == "car_horn"
    assert extra_label(clip("esc50", "engine")) == "engine_idling"
    assert extra_label(clip("sesa", "gunshot")) == "gun_shot"
    assert extra_label(clip("evss-ambulance", "ambulance")) == "siren"
    assert extra_label(clip("evss-firetruck", "firetruck")) == "siren"
    assert extra_label(clip("sesa", "siren", "train_siren_001")) == "siren"
    for alarm in ("test_siren_097", "test_siren_099", "train_siren_057", "train_siren_098"):
        assert extra_label(clip("sesa", "siren", alarm)) is None
    assert extra_label(clip("esc50", "rain")) is None
    assert extra_label(clip("sesa", "casual")) is None
    assert extra_label(clip("evss-traffic", "traffic")) is None
    assert set(EXTRA_LABELS.values()) <= set(URBAN_LABELS)


def test_extras_never_become_test_slices(tmp_path: Path) -> None:
    build_tree(tmp_path / "us8k")
    index = build_extras(tmp_path / "other")
    us8k, extras = select_clips([*load_dataset(tmp_path / "us8k"), *load_dataset(index)])
    assert sorted(c.label for c in extras) == ["dog_bark", "siren", "siren"]
    assert all(c.fold is None for c in extras) and all(c.fold for c in us8k)


def test_unlabelled_windows_come_from_unmapped_recordings_and_never_from_a_held_out_one(tmp_path: Path) -> None:
    """The transfer set: ESC-50 rain and the SESA alarm (no urban label), one window each per recording; a rain
    clip cut from fold 1's recording fs1000 waits for the split that holds fold 1 out to be over."""
    from detector.windows import WindowSpec
    from train.examples import features_of
    from train.models import LOGMEL_64

    build_tree(tmp_path / "us8k")
    index = build_extras(tmp_path / "other")
    sf.write(tmp_path / "other" / "esc50" / "rain" / "1-1000-A-10.wav",
             class_audio("air_conditioner", 3.0, np.random.default_rng(2)), RATE)
    with index.open("a") as rows:
        rows.write("esc50/rain/1-1000-A-10.wav,esc50,rain,esc50-fs1000\n")
    clips = tuple(load_datasets([tmp_path / "us8k", index]))
    spec = WindowSpec.from_seconds(RATE, 2.0, 1.0)
    transfer = load_transfer_windows(clips, spec, per_recording=1)
    assert len(transfer) == 3 and set(transfer.labels) == {-1}  # rain, the alarm, the fs1000 rain: 3 s -> 1 each
    assert sorted(transfer.datasets) == ["esc50", "esc50", "sesa"]
    assert len(load_transfer_windows(clips, spec, per_recording=5)) == 6  # every window of the three

    data = load_urban_data(UrbanConfig(clips=clips, report_dir=tmp_path / "report", augment_copies=0), spec)
    data.transfer = transfer

    def embed(windows: np.ndarray) -> np.ndarray:  # a stand-in for YAMNet: each window's mean log-mel
        return features_of(windows, LOGMEL_64).mean(axis=1)

    data.embeddings, data.transfer_embeddings = embed(data.real.windows), embed(transfer.windows)
    data.yamnet, data.transfer_yamnet = embed(data.real.windows)[:, :10] ** 2, embed(transfer.windows)[:, :10] ** 2
    holds_fs1000 = np.array([groups == {"us8k-fs1000"} for groups in transfer.groups])
    assert holds_fs1000.sum() == 1
    for held_out, expected in ((1, ~holds_fs1000), (2, np.ones(3, bool))):
        train, _test = leave_one_fold_out(data.window_fold, data.real.groups, held_out)
        mask = transfer_mask_for(data, train)
        assert np.array_equal(mask, expected)
        _real, _aug, taught = teacher_probabilities(data, train, np.zeros(0, bool), mask, 0.5)
        assert taught.shape == (mask.sum(), 10) and np.allclose(taught.sum(axis=1), 1, atol=1e-5)
        _real, _aug, head_alone = teacher_probabilities(data, train, np.zeros(0, bool), mask, 0.0)
        assert not np.allclose(taught, head_alone, atol=1e-3)  # YAMNet's own scores moved the targets


def test_generated_windows_lie_over_other_classes_and_keep_their_label_through_the_teacher(
        tmp_path: Path) -> None:
    """Each generated sound is mixed over a real window of another class and carries that window's
    recording, so a split trains only on those over its own recordings; the teacher labels every other
    training window but leaves theirs hard (YAMNet hardly knows generated sounds, issue 2)."""
    from detector.windows import WindowSpec
    from train.examples import features_of
    from train.models import LOGMEL_64

    build_tree(tmp_path / "us8k")
    clips = tuple(load_datasets([tmp_path / "us8k"]))
    config = UrbanConfig(clips=clips, report_dir=tmp_path / "report", augment_copies=1,
                         generated=(("engine_idling", 5), ("jackhammer", 12)))
    data = load_urban_data(config, WindowSpec.from_seconds(RATE, 2.0, 1.0))
    jackhammer, engine = URBAN_LABELS.index("jackhammer"), URBAN_LABELS.index("engine_idling")
    generated = data.augmented.kinds == "generated"
    assert np.array_equal(data.augmented.labels[generated], [jackhammer] * 12 + [engine] * 5)  # generators' order
    assert (data.augmented.kinds == "real_aug").sum() == len(data.real)
    group_label = {next(iter(g)): label for g, label in zip(data.real.groups, data.real.labels, strict=True)}
    under = [group_label[next(iter(g))] for g in np.array(data.augmented.groups, object)[generated]]
    assert all(u != label for u, label in zip(under, data.augmented.labels[generated], strict=True))
    alone = load_urban_data(dataclasses.replace(config, generated=(("jackhammer", 12),)),
                            WindowSpec.from_seconds(RATE, 2.0, 1.0))
    assert np.array_equal(alone.augmented.windows, data.augmented.windows[:-5])  # its own stream: unchanged

    def embed(windows: np.ndarray) -> np.ndarray:  # a stand-in for YAMNet: each window's mean log-mel
        return features_of(windows, LOGMEL_64).mean(axis=1)

    data.embeddings, data.augmented_embeddings = embed(data.real.windows), embed(data.augmented.windows)
    data.yamnet, data.augmented_yamnet = data.embeddings[:, :10] ** 2, data.augmented_embeddings[:, :10] ** 2
    train, _test = leave_one_fold_out(data.window_fold, data.real.groups, 1)
    aug_mask = data.augmented.within(set().union(*(data.real.groups[i] for i in np.flatnonzero(train))))
    assert 0 < (aug_mask & generated).sum() < 17  # only those over fold 2's recordings
    _real, taught, _transfer = teacher_probabilities(data, train, aug_mask, np.zeros(0, bool), 0.0)
    kept = generated[aug_mask]
    assert np.array_equal(taught[kept], np.eye(10, dtype=np.float32)[data.augmented.labels[aug_mask][kept]])
    assert not np.any(taught[~kept].max(axis=1) == 1.0)  # the rest are the teacher's soft probabilities


def test_blend_targets_mix_hard_labels_with_the_teacher() -> None:
    labels = np.array([0, 8])
    teacher = np.full((2, 10), 0.1, np.float32)
    targets = blend_targets(labels, teacher, 0.5)
    assert np.allclose(targets.sum(axis=1), 1)
    assert targets[0, 0] == pytest.approx(0.55) and targets[1, 8] == pytest.approx(0.55)
    assert np.array_equal(blend_targets(labels, teacher, 0.0), np.eye(10, dtype=np.float32)[labels])


def test_teacher_is_cross_fitted_so_a_mislabelled_recording_gets_an_honest_guess() -> None:
    """Three well-separated clusters, one recording per cluster labelled as the next class: a head that had
    seen that recording would echo its label; the cross-fitted head has not, and follows the sound."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 1, (3, 16)) * 4
    labels, groups, embeddings = [], [], []
    for cls in range(3):
        for recording in range(8):
            wrong = recording == 0
            for _ in range(5):
                embeddings.append(centres[cls] + rng.normal(0, 1, 16))
                labels.append((cls + 1) % 3 if wrong else cls)
                groups.append(frozenset({f"{cls}-{recording}"}))
    x, y = np.array(embeddings, np.float32), np.array(labels)
    probs = cross_fitted_probabilities(x, y, groups, 4)  # label 3 never occurs: its column is 0
    assert probs.shape == (len(y), 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert np.all(probs[:, 3] == 0)
    sound = np.repeat(np.arange(3), 40)
    assert np.mean(probs.argmax(axis=1) == sound) > 0.95
    mislabelled = np.array([next(iter(g)).endswith("-0") for g in groups])
    assert np.all(probs[mislabelled].argmax(axis=1) == sound[mislabelled])
    in_sample = head_probabilities(fit_head(x, y), x[mislabelled], 4)
    assert in_sample[np.arange(15), y[mislabelled]].mean() > probs[mislabelled, y[mislabelled]].mean()


def test_siren_train_urban_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """CV, the shipped average of two seeds with its card, a CV reused, and the final fits reused only
    under the same settings."""
    from train.cli import main

    build_tree(tmp_path / "us8k")
    index = build_extras(tmp_path / "other")
    out = tmp_path / "models" / "urban.tflite"
    report = tmp_path / "report"
    code = main(["--task", "urban", "--data", str(tmp_path / "us8k"), "--data", str(index),
                 "--models", "dscnn_s,mfcc_dense", "--ship", "dscnn_s", "--ship-seeds", "2", "--epochs", "2",
                 "--tutorial-epochs", "1", "--out", str(out), "--report", str(report)])
    assert code == 0
    classifier = Classifier(out)
    card = classifier.card
    assert card.labels == URBAN_LABELS and card.positive_labels == URBAN_LABELS
    assert 0.5 <= card.threshold < 1
    assert {"on_threshold", "off_threshold", "onset_windows", "onset_of", "protocol"} <= set(card.raw["tracker"])
    evaluation = card.raw["evaluation"]
    assert set(evaluation["this_model"]["slice_accuracy_per_fold"]) == {"1", "2"}
    assert "mfcc_dense" in evaluation["baselines_same_folds"]
    assert evaluation["this_model"]["members"] == ["dscnn_s", "dscnn_s@1"]  # the shipped average of two seeds
    assert {"dscnn_s", "dscnn_s@1"} <= set(evaluation["baselines_same_folds"])
    assert card.raw["training"]["fit_seeds"] == [0, 1] and "mixup_alpha" not in card.raw["training"]
    assert card.raw["parameters"] == 2 * evaluation["baselines_same_folds"]["dscnn_s"]["parameters"]
    assert "CC BY-NC" in card.raw["training"]["licence_note"]
    assert card.raw["export_check"]["decision"] == "argmax"
    assert out.stat().st_size <= 256 * 1024
    results = json.loads((report / "report.json").read_text())
    assert results["test_folds"] == [1, 2] and results["training_only_folds"] == [3]
    import keras
    import tensorflow as tf

    # the versions a fit repeats on: in the report and the card
    assert results["environment"]["tensorflow"] == tf.__version__ == card.raw["training"]["environment"]["tensorflow"]
    assert results["environment"]["keras"] == keras.__version__ and results["environment"]["python"].startswith("3.")
    assert (report / "dscnn_s_confusion.png").is_file() and (report / "dscnn_s_x2_confusion.png").is_file()
    one_seed, other_seed = (np.load(report / f"{name}_oof.npy") for name in ("dscnn_s", "dscnn_s@1"))
    assert not np.allclose(one_seed, other_seed)  # two fits, not one fit twice
    probabilities = classifier.predict(np.zeros((2, 2 * RATE), np.float32))
    assert probabilities.shape == (2, 10)
    assert main(["--task", "urban", "--data", str(tmp_path / "us8k"), "--data", str(index), "--models",
                 "dscnn_s,mfcc_dense", "--epochs", "2", "--tutorial-epochs", "1", "--no-ship", "--reuse-cv",
                 str(report), "--report", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())["models"]["dscnn_s"]
    assert "cv_seconds" in results["models"]["dscnn_s"] and "cv_seconds" not in again  # no time it did not spend
    assert again["cv_reused_from"] == str(report)
    assert again["slice_accuracy_mean"] == results["models"]["dscnn_s"]["slice_accuracy_mean"]

    # each member's final fit was saved: shipping again from that folder exports the same average
    reshipped = tmp_path / "reshipped.tflite"
    shipping_again = ["--task", "urban", "--data", str(tmp_path / "us8k"), "--data", str(index), "--models",
                      "dscnn_s,mfcc_dense", "--ship", "dscnn_s", "--ship-seeds", "2", "--epochs", "2",
                      "--tutorial-epochs", "1", "--reuse-cv", str(report), "--out", str(reshipped),
                      "--report", str(tmp_path / "again")]
    capsys.readouterr()
    assert main(shipping_again) == 0
    assert capsys.readouterr().out.count("final fit reused") == 2
    windows = np.stack([class_audio(label, 2.0, np.random.default_rng(1)) for label in ("siren", "dog_bark")])
    assert np.allclose(Classifier(reshipped).predict(windows), classifier.predict(windows), atol=0.02)
    saved = report / "dscnn_s@1_final.json"
    facts = json.loads(saved.read_text())
    facts["settings"]["augment_copies"] = 3
    saved.write_text(json.dumps(facts))
    assert main(shipping_again) == 2
    assert "dscnn_s@1's saved final fit was made with other settings (augment_copies 3 there" in (
        capsys.readouterr().err)


def test_members_fitted_in_separate_runs_are_exported_together(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`--member K` runs (one a core) save one fit each; a run reusing them all fits nothing again."""
    import shutil

    from train.cli import main

    build_tree(tmp_path / "us8k")
    data = ["--task", "urban", "--data", str(tmp_path / "us8k"), "--models", "dscnn_s", "--ship", "dscnn_s",
            "--ship-seeds", "2", "--epochs", "1", "--mixup", "0.3"]  # mixup recorded, reused and carded
    for k in (0, 1):
        assert main([*data, "--member", str(k), "--report", str(tmp_path / f"member{k}")]) == 0
    assert not (tmp_path / "models").exists()  # a member run exports nothing
    both = tmp_path / "both"
    both.mkdir()
    for path in [*(tmp_path / "member0").glob("dscnn_s_*"), *(tmp_path / "member1").glob("dscnn_s@1_*")]:
        shutil.copy(path, both)
    assert not list((tmp_path / "member0").glob("dscnn_s@1_*"))  # each run fitted only its own member
    capsys.readouterr()
    out = tmp_path / "urban.tflite"
    assert main([*data, "--reuse-cv", str(both), "--out", str(out), "--report", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("reusing out-of-fold scores") == 2 and printed.count("final fit reused") == 2
    assert Classifier(out).card.raw["training"]["fit_seeds"] == [0, 1]
    assert Classifier(out).card.raw["training"]["mixup_alpha"] == 0.3
    # the same two fits named one by one (`NAME@N` is NAME with fit seed N), then only the second
    named = [arg for arg in data if arg not in ("--ship-seeds", "2")]
    named[named.index("--ship") + 1] = "dscnn_s+dscnn_s@1"
    out_named = tmp_path / "named.tflite"
    assert main([*named, "--reuse-cv", str(both), "--out", str(out_named), "--report", str(tmp_path / "named")]) == 0
    assert capsys.readouterr().out.count("final fit reused") == 2
    assert Classifier(out_named).card.raw["evaluation"]["this_model"]["members"] == ["dscnn_s", "dscnn_s@1"]
    assert out_named.read_bytes() == out.read_bytes()
    named[named.index("--ship") + 1] = "dscnn_s@1"
    assert main([*named, "--reuse-cv", str(both), "--out", str(out_named), "--report", str(tmp_path / "second")]) == 0
    assert Classifier(out_named).card.raw["training"]["fit_seeds"] == [1]
    # the same two fits with one int8 scale per convolution kernel: a smaller file that labels windows alike
    per_tensor = tmp_path / "per_tensor.tflite"
    assert main([*data, "--reuse-cv", str(both), "--per-tensor-weights", "--out", str(per_tensor),
                 "--report", str(tmp_path / "per_tensor")]) == 0
    assert per_tensor.stat().st_size < out.stat().st_size
    conv_scales = {path: [len(d["quantization_parameters"]["scales"]) for d in
                          Classifier(path)._interpreter.get_tensor_details() if len(d["shape"]) == 4]
                   for path in (out, per_tensor)}  # convolution kernels (the ten-way head is not one)
    assert max(conv_scales[out]) > 1 and max(conv_scales[per_tensor]) == 1
    assert Classifier(per_tensor).card.raw["export_check"]["weight_scales"] == "one per convolution kernel"
    windows = np.stack([class_audio(label, 2.0, np.random.default_rng(2)) for label in URBAN_LABELS])
    assert np.array_equal(Classifier(per_tensor).predict(windows).argmax(1), Classifier(out).predict(windows).argmax(1))
    capsys.readouterr()
    assert main([*data, "--member", "2", "--report", str(tmp_path / "member2")]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --member must be 0..1 (--ship dscnn_s, "
                                               "--ship-seeds 2)")


def test_a_log_mel_and_a_pcen_network_ship_as_one_urban_graph(tmp_path: Path) -> None:
    """`--ship a+b` averages two networks that read different features: the int8 file reads both feature sets
    stacked, the log-mel half with the log-mel network's training-set standardisation, and scores what the
    two saved final fits score, each on its own features."""
    import keras

    from detector.features import FeatureRecipe, compute_features
    from train.cli import main

    build_tree(tmp_path / "us8k")
    out, report = tmp_path / "urban.tflite", tmp_path / "report"
    assert main(["--task", "urban", "--data", str(tmp_path / "us8k"), "--models", "dscnn_s,dscnn_m_pcen", "--ship",
                 "dscnn_s+dscnn_m_pcen", "--epochs", "2", "--out", str(out), "--report", str(report)]) == 0
    card = Classifier(out).card.raw
    assert card["architecture"] == "dscnn_s+dscnn_m_pcen"
    assert card["evaluation"]["this_model"]["members"] == ["dscnn_s", "dscnn_m_pcen"]
    fits = []
    for name in ("dscnn_s", "dscnn_m_pcen"):
        saved = json.loads((report / f"{name}_final.json").read_text())
        fits.append((keras.models.load_model(report / f"{name}_final.keras"), FeatureRecipe.from_dict(saved["recipe"])))
    log_mel_recipe = fits[0][1]
    assert log_mel_recipe.standardise == "global" and log_mel_recipe.mean != 0
    features = card["features"]
    assert (features["kind"], features["standardise"]) == ("logmel_pcen", "global")
    assert (features["mean"], features["std"]) == (log_mel_recipe.mean, log_mel_recipe.std)

    rng = np.random.default_rng(3)
    windows = np.stack([class_audio(label, 2.0, rng) for label in URBAN_LABELS]).astype(np.float32)
    each_own = [compute_features(windows, recipe) for _, recipe in fits]
    classifier = Classifier(out)
    np.testing.assert_allclose(classifier.features(windows), np.concatenate(each_own, axis=-1), atol=1e-4)
    expected = np.mean([model.predict(own, verbose=0) for (model, _), own in zip(fits, each_own, strict=True)], axis=0)
    np.testing.assert_allclose(classifier.predict(windows), expected, atol=0.03)


def test_the_joined_input_is_put_together_from_each_networks_own_features() -> None:
    """The urban export calibrates on the stacked input built from the members' saved features (the
    augmented audio is gone by then): log-mel bins first, PCEN bins second, whatever the members' order."""
    from detector.features import compute_features
    from train.models import ARCHITECTURES, joined_recipe
    from train.pipeline import raw_recipe
    from train.urban import Variant, joined_features

    rng = np.random.default_rng(5)
    windows = np.stack([class_audio(label, 2.0, rng) for label in ("siren", "drilling", "dog_bark")])
    members = [Variant(name, ARCHITECTURES[name], True, 0.0, 1) for name in ("dscnn_m_pcen", "dscnn_m")]
    recipes = [member.arch.recipe for member in members]
    joined = joined_recipe(recipes)
    feats = {member.name: tuple(compute_features(part, raw_recipe(member.arch.recipe))
                                for part in (windows[:2], windows[2:], windows[:0])) for member in members}
    real, augmented, unlabelled = joined_features(members, recipes, joined, feats)
    np.testing.assert_allclose(real, compute_features(windows[:2], raw_recipe(joined)), atol=1e-5)
    np.testing.assert_allclose(augmented, compute_features(windows[2:], raw_recipe(joined)), atol=1e-5)
    assert unlabelled.shape == (0, *real.shape[1:])


def test_transfer_windows_mimicry_speed_or_mixup_out_of_place_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main

    assert main(["--task", "urban", "--data", str(tmp_path), "--teacher-weight", "0", "--transfer-windows", "4"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --transfer-windows needs --yamnet PATH and "
                                               "--teacher-weight > 0 (and N >= 0)")
    assert main(["--task", "urban", "--data", str(tmp_path), "--yamnet", str(tmp_path / "y.tflite"),
                 "--teacher-weight", "0", "--mimic-weight", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --mimic-weight needs --teacher-weight > 0 for "
                                               "the urban model (its teacher variant is the one that mimics)")
    assert main(["--task", "urban", "--data", str(tmp_path), "--teacher-yamnet-weight", "-1"]) == 2
    assert capsys.readouterr().err.strip() == "siren-train: error: --teacher-yamnet-weight must be >= 0"
    assert main(["--task", "urban", "--data", str(tmp_path), "--speed-perturb", "13"]) == 2
    assert "0 <= --speed-perturb <= 12" in capsys.readouterr().err
    assert main(["--task", "emergency", "--data", str(tmp_path), "--speed-perturb", "-1"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: need --mixup >= 0 and "
                                               "0 <= --speed-perturb <= 12")
    assert main(["--task", "emergency", "--data", str(tmp_path), "--mixup", "0.3", "--mine-epochs", "2"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --mixup and --mine-epochs do not mix "
                                               "(mining weighs unmixed windows)")
    assert main(["--task", "emergency", "--data", str(tmp_path), "--mimic-weight", "1"]) == 2
    assert capsys.readouterr().err.strip() == "siren-train: error: --mimic-weight needs --yamnet PATH (and W >= 0)"
    assert main(["--task", "emergency", "--data", str(tmp_path), "--yamnet", str(tmp_path / "y.tflite"),
                 "--mimic-weight", "1"]) == 2  # the siren model mimics without a teacher: on to the data
    assert capsys.readouterr().err.strip().endswith("no audio files in class folders (expected <label>/<file>.wav)")
    assert main(["--task", "emergency", "--data", str(tmp_path), "--yamnet", str(tmp_path / "y.tflite"),
                 "--teacher-weight", "0.5", "--mimic-weight", "1", "--mine-epochs", "2"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --mimic-weight and --mine-epochs do not mix "
                                               "(mimicry fits in one pass)")
    assert main(["--task", "emergency", "--data", str(tmp_path), "--yamnet", str(tmp_path / "y.tflite"),
                 "--teacher-weight", "0.5", "--mimic-weight", "1", "--mixup", "0.3"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --mixup and --mimic-weight do not mix "
                                               "(mimicry fits without mixup)")
    assert main(["--task", "emergency", "--data", str(tmp_path), "--mixup", "-1"]) == 2
    assert "need --mixup >= 0" in capsys.readouterr().err
    assert main(["--task", "urban", "--data", str(tmp_path), "--mixup", "-1"]) == 2
    assert "--mixup >= 0" in capsys.readouterr().err
    assert main(["--task", "urban", "--data", str(tmp_path), "--mixup", "0.3", "--mimic-weight", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --mixup and --mimic-weight do not mix "
                                               "(mimicry fits without mixup)")


def test_embedder_refuses_a_model_that_is_not_yamnet() -> None:
    from detector.errors import ModelError
    from detector.yamnet import YamnetTagger

    with pytest.raises(ModelError, match="not YAMNet"):
        YamnetTagger(Path(__file__).resolve().parents[1] / "models" / "emergency.tflite", with_embedding=True)


@needs_yamnet
def test_embedder_gives_one_embedding_per_window_that_tells_sounds_apart() -> None:
    from detector.yamnet import YamnetTagger

    t = np.arange(2 * RATE) / RATE
    wail = (0.3 * np.sin(2 * np.pi * np.cumsum(800 + 500 * np.sin(2 * np.pi * 0.25 * t)) / RATE)).astype(np.float32)
    noise = (0.05 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    embedder = YamnetTagger(YAMNET, with_embedding=True)
    (_, a), (_, b), (_, again) = (embedder.window_outputs(w) for w in (wail, noise, wail))
    assert a.shape == (1024,) and np.all(np.isfinite(a))
    assert np.array_equal(a, again)
    assert np.linalg.norm(a - b) > 0.1 * np.linalg.norm(a)
    scores, _ = embedder.window_outputs(wail)
    np.testing.assert_array_equal(scores, YamnetTagger(YAMNET).window_scores(wail))  # one pass gives both


def test_teacher_only_skips_the_no_teacher_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from train.cli import main
    from train.urban import variants_for

    config = UrbanConfig(clips=(), report_dir=tmp_path, architectures=("dscnn_s", "mfcc_dense"),
                         yamnet_path=tmp_path / "yamnet.tflite", teacher_weight=1.0)
    assert [v.name for v in variants_for(config)] == ["dscnn_s", "dscnn_s+teacher", "mfcc_dense"]
    teacher_only = dataclasses.replace(config, without_teacher_baseline=False)
    assert [v.name for v in variants_for(teacher_only)] == ["dscnn_s+teacher", "mfcc_dense"]
    assert main(["--task", "urban", "--data", str(tmp_path), "--teacher-only"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --teacher-only needs --yamnet PATH and "
                                               "--teacher-weight > 0")
    assert main(["--task", "urban", "--data", str(tmp_path), "--yamnet", str(tmp_path / "yamnet.tflite"),
                 "--teacher-weight", "1", "--ship-seeds", "2", "--member", "1"]) == 2
    assert capsys.readouterr().err.strip() == ("siren-train: error: --member with a teacher needs --teacher-only "
                                               "(one variant to fit)")


def test_saved_urban_cv_is_reused_only_with_the_same_seed_teacher_and_augmentation(tmp_path: Path) -> None:
    """A saved CV stands in for a new one only when nothing that shaped it changed; one that differs stops
    the run naming the difference, rather than spending an hour on a CV nobody asked for."""
    from train.models import ARCHITECTURES
    from train.urban import Variant, _oof_meta, _reused

    config = UrbanConfig(clips=(), report_dir=tmp_path, reuse_cv=tmp_path)
    saved = Variant("dscnn_s+teacher", ARCHITECTURES["dscnn_s"], True, 1.0, 12, transfer_per_recording=4)
    scores = np.random.default_rng(0).random((6, 10)).astype(np.float32)
    np.save(tmp_path / "dscnn_s+teacher_oof.npy", scores)
    (tmp_path / "dscnn_s+teacher_oof.json").write_text(json.dumps(_oof_meta(saved, config)))
    assert np.array_equal(_reused(config, saved, 6), scores)
    changed = [dataclasses.replace(saved, teacher_weight=0.5), dataclasses.replace(saved, fit_seed=1),
               dataclasses.replace(saved, epochs=8), dataclasses.replace(saved, teacher_yamnet_weight=0.5)]
    differences = ["teacher_weight 1.0 there, 0.5 here", "fit.seed 0 there, 1 here", "fit.epochs 12 there, 8 here",
                   "teacher_yamnet_weight None there, 0.5 here"]
    for variant, difference in zip(changed, differences, strict=True):
        with pytest.raises(DetectorError, match=f"dscnn_s\\+teacher's saved CV was made with other settings "
                                                f"\\({difference}\\)"):
            _reused(config, variant, 6)
    for fit, difference in ((FitSettings(epochs=12, learning_rate=1e-3), "fit.learning_rate 0.002 there, 0.001 here"),
                            (FitSettings(epochs=12, batch_size=32), "fit.batch_size 64 there, 32 here")):
        with pytest.raises(DetectorError, match=difference):
            _reused(dataclasses.replace(config, fit=fit), saved, 6)
    with pytest.raises(DetectorError, match="augment_copies 1 there, 2 here"):
        _reused(dataclasses.replace(config, augment_copies=2), saved, 6)
    with pytest.raises(DetectorError, match="augment_seed 0 there, 1 here"):  # another augmentation draw
        _reused(dataclasses.replace(config, seed=1), saved, 6)
    with pytest.raises(DetectorError, match=r"speed_semitones None there, 2\.0 here"):
        _reused(dataclasses.replace(config, speed_semitones=2.0), saved, 6)
    with pytest.raises(DetectorError, match=r"fit\.mixup_alpha None there, 0\.3 here"):
        _reused(dataclasses.replace(config, fit=FitSettings(epochs=12, mixup_alpha=0.3)), saved, 6)
    assert "mixup_alpha" not in _oof_meta(saved, config)["fit"]  # off, it is not recorded: older CVs stay reusable
    with pytest.raises(DetectorError, match="windows 6 there, 7 here"):
        _reused(config, saved, 7)
    assert _reused(config, dataclasses.replace(saved, name="dscnn_m+teacher"), 6) is None  # none saved: CV runs
    (tmp_path / "dscnn_s+teacher_oof.json").write_text(json.dumps({"epochs": 12, "fit_seed": 0}))  # an old record
    with pytest.raises(DetectorError, match="saved CV does not record its fit settings"):
        _reused(config, saved, 6)


def test_mixup_reaches_the_projects_networks_and_not_the_tutorials(tmp_path: Path) -> None:
    """The tutorial baselines train as the tutorials did, whatever the run's --mixup."""
    from train.models import ARCHITECTURES
    from train.urban import Variant, variant_fit_settings

    config = UrbanConfig(clips=(), report_dir=tmp_path, fit=FitSettings(epochs=12, mixup_alpha=0.3))
    ours = Variant("dscnn_m", ARCHITECTURES["dscnn_m"], True, 0.0, 16)
    tutorial = Variant("mfcc_dense", ARCHITECTURES["mfcc_dense"], False, 0.0, 16)
    assert variant_fit_settings(ours, config).mixup_alpha == 0.3
    assert variant_fit_settings(tutorial, config).mixup_alpha == 0.0


def test_speed_perturbation_moves_pitch_within_its_range_and_keeps_the_window() -> None:
    """A 1 kHz tone played faster or slower lands within 2 semitones of 1 kHz, at several places in between,
    and the window keeps its length (padded or cut)."""
    from train.augment import speed_change

    rng = np.random.default_rng(0)
    tone = np.sin(2 * np.pi * 1000 * np.arange(2 * RATE) / RATE).astype(np.float32)
    peaks = []
    for _ in range(40):
        changed = speed_change(tone, rng, 2.0)
        assert changed.shape == tone.shape and changed.dtype == np.float32
        spectrum = np.abs(np.fft.rfft(changed[: RATE] * np.hanning(RATE)))  # the first second is never padding
        peaks.append(float(np.argmax(spectrum)))  # 1 Hz bins
    assert 1000 * 2 ** (-2 / 12) - 2 <= min(peaks) < 960 and 1040 < max(peaks) <= 1000 * 2 ** (2 / 12) + 2
    assert len({round(peak) for peak in peaks}) > 20

