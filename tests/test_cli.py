"""`siren-detector classify`: PRODUCT.md's JSON, any audio format, and one clear line for every bad input."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import LABELS, SR
from scipy.signal import butter, resample_poly, sosfiltfilt

from detector import synth
from detector.cli import main

SCENE_S = 20.0
SIREN = (5.0, 13.0)


@functools.cache
def scene(duration_s: float = SCENE_S, siren: tuple[float, float] = SIREN, seed: int = 1) -> np.ndarray:
    """A street scene with one clearly audible siren at known times (read-only, shared between tests)."""
    samples, _ = synth.generate_scene(duration_s, np.random.default_rng(seed), siren_times=[siren],
                                      siren_snr_db=(15.0, 20.0))
    samples.setflags(write=False)
    return samples


def console_script() -> list[str]:
    """The installed `siren-detector` entry point, or the module when the venv has no script."""
    script = Path(sys.executable).with_name("siren-detector")
    return [str(script)] if script.exists() else [sys.executable, "-m", "detector.cli"]


def run_console(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*console_script(), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def classify_json(capsys: pytest.CaptureFixture[str], model: Path, *files: Path) -> tuple[int, list[dict]]:
    """Run `classify --json` in-process; the exit status and one parsed object per output line."""
    status = main(["classify", *map(str, files), "--json", "--model", str(model)])
    out = capsys.readouterr().out
    return status, [json.loads(line) for line in out.splitlines()]


def assert_product_shape(result: dict, duration_s: float) -> None:
    """PRODUCT.md: {file, duration_s, windows[{start_s, scores{label: float}}], events[{label, start_s, end_s,
    confidence}]}."""
    assert set(result) == {"file", "duration_s", "windows", "events"}
    assert isinstance(result["file"], str)
    assert result["duration_s"] == pytest.approx(duration_s, abs=1e-3)
    assert result["windows"], "a file at least one window long has windows"
    for window in result["windows"]:
        assert set(window) == {"start_s", "scores"}
        assert isinstance(window["start_s"], float)
        assert set(window["scores"]) == set(LABELS)
        assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in window["scores"].values())
    for event in result["events"]:
        assert set(event) == {"label", "start_s", "end_s", "confidence"}
        assert event["label"] == "emergency"
        assert 0.0 <= event["start_s"] < event["end_s"] <= duration_s + 1e-6
        assert 0.5 <= event["confidence"] <= 1.0  # an event's windows reached the card's threshold
    starts = [e["start_s"] for e in result["events"]]
    assert starts == sorted(starts)


def test_classify_json_of_a_scene_follows_product_md(tiny_model, write_audio, capsys) -> None:
    """Scripts parse this output: its shape, the window times and the events' place are the contract."""
    wav = write_audio("scene.wav", scene())
    status, results = classify_json(capsys, tiny_model, wav)
    assert status == 0
    assert len(results) == 1
    result = results[0]
    assert_product_shape(result, SCENE_S)
    assert result["file"] == str(wav)
    starts = [w["start_s"] for w in result["windows"]]
    assert starts == [float(s) for s in range(int(SCENE_S) - 1)]  # 2 s windows at a 1 s hop, all complete
    # The tiny model is imprecise, but a siren 15-20 dB over the traffic must show where it is.
    assert any(e["start_s"] < SIREN[1] and e["end_s"] > SIREN[0] for e in result["events"]), result["events"]
    emergency = np.array([w["scores"]["emergency"] for w in result["windows"]])
    inside = emergency[[SIREN[0] <= s and s + 2.0 <= SIREN[1] for s in starts]]
    outside = emergency[[s + 2.0 <= SIREN[0] or s >= SIREN[1] for s in starts]]
    assert inside.mean() > outside.mean() + 0.3, (inside, outside)


@pytest.mark.parametrize("seconds", [0.15, 0.4])
def test_a_clip_shorter_than_a_window_is_scored_as_that_clip_zero_padded(tiny_model, write_audio, capsys,
                                                                          seconds) -> None:
    """UrbanSound8K holds horns, barks and shots this short: one window, as training padded them."""
    burst = scene()[int((SIREN[0] + 1.0) * SR):][: int(seconds * SR)]  # a piece of the scene's siren
    _, (short,) = classify_json(capsys, tiny_model, write_audio("short.wav", burst, subtype="FLOAT"))
    padded = np.concatenate([burst, np.zeros(2 * SR - len(burst), np.float32)])
    _, (reference,) = classify_json(capsys, tiny_model, write_audio("padded.wav", padded, subtype="FLOAT"))
    assert short["duration_s"] == pytest.approx(seconds, abs=1e-3)
    assert [w["start_s"] for w in short["windows"]] == [0.0]
    assert short["windows"] == reference["windows"]


def test_console_script_prints_the_same_json(tiny_model, write_audio, capsys, tmp_path) -> None:
    """The installed command is what users run: it must give exactly what main() gives, cleanly."""
    wav = write_audio("scene.wav", scene())
    _, expected = classify_json(capsys, tiny_model, wav)
    done = run_console("classify", str(wav), "--json", "--model", str(tiny_model), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == expected


def test_human_output_summarises_each_file(tiny_model, write_audio, capsys) -> None:
    """Without --json a person gets one summary line per file, each model's clip label, then one line per event."""
    wav = write_audio("scene.wav", scene())
    _, (result,) = classify_json(capsys, tiny_model, wav)
    assert main(["classify", str(wav), "--model", str(tiny_model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{wav}: 20.0 s, 19 windows, {len(result['events'])} events"
    assert lines[1].startswith(f"  clip {json.loads(tiny_model.with_suffix('.json').read_text())['name']}: ")
    assert len(lines) == 2 + len(result["events"])
    assert all("emergency" in line and "confidence" in line for line in lines[2:])


def test_the_clip_label_is_the_top_mean_window_score(tiny_model, write_audio, capsys) -> None:
    """The rule the README's slice accuracy uses, printed per file: a stretch of siren is labelled a siren, a
    stretch of traffic is not, and the printed mean is the mean of the JSON's window scores."""
    siren = write_audio("siren.wav", scene()[int((SIREN[0] + 0.5) * SR): int((SIREN[1] - 0.5) * SR)])
    traffic = write_audio("traffic.wav", scene()[: int((SIREN[0] - 0.5) * SR)])
    _, results = classify_json(capsys, tiny_model, siren, traffic)
    assert main(["classify", str(siren), str(traffic), "--model", str(tiny_model)]) == 0
    clip_lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  clip ")]
    assert [line.split(": ")[1].split(" ")[0] for line in clip_lines] == ["emergency", "non_emergency"]
    for line, result in zip(clip_lines, results, strict=True):
        label = line.split(": ")[1].split(" ")[0]
        mean = np.mean([window["scores"][label] for window in result["windows"]])
        assert line.endswith(f"(mean score {mean:.2f})")
        assert mean > 0.5


def _band_limited(samples: np.ndarray) -> np.ndarray:
    """Below 6 kHz, so resampling filters near 8 kHz cannot make the two versions differ."""
    return sosfiltfilt(butter(8, 6000.0, fs=SR, output="sos"), samples).astype(np.float32)


@pytest.mark.parametrize(("name", "rate"), [("scene96k.flac", 96000), ("scene44k.ogg", 44100)])
def test_other_formats_rates_and_channels_give_the_same_windows(tiny_model, write_audio, capsys, name,
                                                                rate) -> None:
    """PRODUCT.md: any WAV/FLAC/OGG at any rate and channel count is resampled and mixed to 16 kHz mono."""
    mono16k = 0.5 * _band_limited(scene(8.0, (2.0, 6.0), 4))  # headroom: 16-bit FLAC must not clip
    resampled = resample_poly(mono16k, rate // np.gcd(rate, SR), SR // np.gcd(rate, SR)).astype(np.float32)
    # Unequal channels whose mean is the mono signal: taking one channel would change the level.
    stereo = np.stack([1.6 * resampled, 0.4 * resampled], axis=1)
    reference = write_audio("scene16k.wav", mono16k, subtype="FLOAT")
    other = write_audio(name, stereo, rate)
    assert sf.info(str(other)).samplerate == rate and sf.info(str(other)).channels == 2
    status, (expected, result) = classify_json(capsys, tiny_model, reference, other)
    assert status == 0
    assert_product_shape(result, 8.0)
    assert [w["start_s"] for w in result["windows"]] == [w["start_s"] for w in expected["windows"]]
    ours = np.array([w["scores"]["emergency"] for w in result["windows"]])
    theirs = np.array([w["scores"]["emergency"] for w in expected["windows"]])
    # int8 inputs round features to steps of ~0.03, so tiny audio differences can move a score a little;
    # lossy Vorbis moves it more. A wrong rate, channel or level moves it far more than this.
    assert np.abs(ours - theirs).max() <= (0.06 if name.endswith(".flac") else 0.15), (ours, theirs)
    assert np.abs(ours - theirs).mean() <= 0.03, (ours, theirs)


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input and a fragment its one-line message must contain."""
    text = folder / "notes.wav"
    text.write_text("this is a shopping list, not audio\n")
    empty = folder / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), SR)
    short = folder / "short.wav"
    sf.write(str(short), np.full(SR // 10, 0.1, np.float32), SR)
    nan = folder / "nan.wav"
    sf.write(str(nan), np.array([0.1, np.nan] * SR, np.float32), SR, subtype="FLOAT")
    return {
        "missing": (folder / "missing.wav", "no such file"),
        "text": (text, "not a readable audio file"),
        "empty": (empty, "no audio samples"),
        "short": (short, "too short"),
        "nan": (nan, "NaN"),
        "directory": (folder, "is a directory"),
    }


@pytest.mark.parametrize("kind", ["missing", "text", "empty", "short", "nan", "directory"])
def test_a_bad_audio_file_gives_one_clear_line(tiny_model, tmp_path, capsys, kind) -> None:
    """A user must see which file is wrong and why, in one line, with a failing exit status."""
    path, reason = _bad_inputs(tmp_path)[kind]
    assert main(["classify", str(path), "--model", str(tiny_model)]) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [captured.out.strip()]
    assert captured.out.startswith(f"{path}: error: ") and reason in captured.out
    assert captured.err == ""

    assert main(["classify", str(path), "--json", "--model", str(tiny_model)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    result = json.loads(line)
    assert set(result) == {"file", "error"} and result["file"] == str(path) and reason in result["error"]


def test_one_bad_file_does_not_stop_the_others(tiny_model, write_audio, tmp_path, capsys) -> None:
    """A batch with one broken file still classifies the rest, in order, and says it failed (exit 1)."""
    first = write_audio("first.wav", scene(6.0, (1.0, 4.0), 2))
    last = write_audio("last.flac", scene(5.0, (1.0, 4.0), 3))
    missing = tmp_path / "gone.wav"
    status, results = classify_json(capsys, tiny_model, first, missing, last)
    assert status == 1
    assert [r["file"] for r in results] == [str(first), str(missing), str(last)]
    assert_product_shape(results[0], 6.0)
    assert results[1] == {"file": str(missing), "error": f"{missing}: no such file"}
    assert_product_shape(results[2], 5.0)
    assert len(results[0]["windows"]) == 5 and len(results[2]["windows"]) == 4


def test_bad_files_in_the_console_script_give_no_traceback(tiny_model, write_audio, tmp_path) -> None:
    """Through the real entry point: one line per bad file, the good file still summarised, no traceback."""
    bad = _bad_inputs(tmp_path)
    good = write_audio("good.wav", scene(6.0, (1.0, 4.0), 2))
    files = [str(path) for path, _ in bad.values()] + [str(good)]
    done = run_console("classify", *files, "--model", str(tiny_model), cwd=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    lines = done.stdout.splitlines()
    for (path, reason), line in zip(bad.values(), lines, strict=False):
        assert line.startswith(f"{path}: error: ") and reason in line
    assert lines[len(bad)].startswith(f"{good}: 6.0 s, 5 windows, ")


def _model_problems(model_variant, tiny_card) -> dict[str, tuple[Path, str]]:
    tiny_card["tflite_sha256"] = "0" * 64
    return {
        "no card": (model_variant(without_card=True), "model card missing"),
        "sha256": (model_variant(card=tiny_card), "sha256"),
    }


@pytest.mark.parametrize("problem", ["no card", "sha256"])
def test_a_bad_model_gives_one_line_on_stderr_and_exit_2(model_variant, tiny_card, write_audio, capsys,
                                                          problem) -> None:
    """No file can be classified with a model that fails its checks: say so once, exit 2."""
    model, reason = _model_problems(model_variant, tiny_card)[problem]
    wav = write_audio("scene.wav", scene(6.0, (1.0, 4.0), 2))
    assert main(["classify", str(wav), "--json", "--model", str(model)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("siren-detector: error: ") and str(model.with_suffix("")) in line and reason in line


@pytest.mark.parametrize("problem", ["no card", "sha256"])
def test_a_bad_model_in_the_console_script_gives_no_traceback(model_variant, tiny_card, write_audio, tmp_path,
                                                              problem) -> None:
    """Through the real entry point: exactly one stderr line, exit 2, no traceback."""
    model, reason = _model_problems(model_variant, tiny_card)[problem]
    wav = write_audio("scene.wav", scene(6.0, (1.0, 4.0), 2))
    done = run_console("classify", str(wav), "--model", str(model), cwd=tmp_path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("siren-detector: error: ") and reason in line


def test_the_same_model_twice_on_the_command_line_names_the_option(tiny_model, write_audio, capsys) -> None:
    """Two --model files with one card name: the error points at --model, not at a config key the user never wrote."""
    wav = write_audio("scene.wav", scene(3.0, (1.0, 2.0), 2))
    assert main(["classify", str(wav), "--model", str(tiny_model), "--model", str(tiny_model)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("siren-detector: error: --model: two models share the name ")
