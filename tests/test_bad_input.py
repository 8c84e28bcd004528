"""Bad input the commands must survive: truncated and corrupt audio, any bytes at all, a bad model for `run`."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.audio import read_audio
from detector.errors import AudioError


def wav_bytes(seconds: float = 1.0, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(int(16000 * seconds)) / 16000)
    sf.write(buffer, tone, 16000, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_truncated_files_are_read_or_refused_in_one_line(tmp_path: Path, fmt: str) -> None:
    subtype = {"WAV": "PCM_16", "FLAC": "PCM_16", "OGG": "VORBIS"}[fmt]
    data = wav_bytes(2.0, fmt, subtype)
    for keep in (0.9, 0.5, 0.1):
        path = tmp_path / f"cut-{keep}.{fmt.lower()}"
        path.write_bytes(data[: int(len(data) * keep)])
        try:
            audio = read_audio(path, 16000)
        except AudioError as error:
            assert str(path) in str(error) and "\n" not in str(error)
        else:
            assert 0 < audio.duration_s <= 2.0 and np.all(np.isfinite(audio.samples))


@given(st.binary(max_size=2048), st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS"]))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_audio_decoding_fuzz_gives_audio_or_one_line_error(tmp_path: Path, body: bytes, magic: bytes) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(magic + body)
    try:
        audio = read_audio(path, 16000)
    except AudioError as error:
        assert "\n" not in str(error)
    else:
        assert np.all(np.isfinite(audio.samples))


def test_infinite_samples_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "inf.wav"
    samples = np.zeros(16000, dtype=np.float32)
    samples[100] = np.inf
    sf.write(path, samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        read_audio(path, 16000)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "card_mismatch"])
def test_run_with_a_bad_model_says_what_is_wrong_in_one_line(tmp_path: Path, damage: str) -> None:
    repo = Path(__file__).resolve().parent.parent
    model = tmp_path / "emergency.tflite"
    original = (repo / "models" / "emergency.tflite").read_bytes()
    model.write_bytes({"truncated": original[: len(original) // 2], "garbage": b"\x00" * 4096,
                       "card_mismatch": original}[damage])
    card = (repo / "models" / "emergency.json").read_text()
    if damage == "card_mismatch":
        card = card.replace('"window_s": 2.0', '"window_s": 1.0')
    (tmp_path / "emergency.json").write_text(card)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"audio": {"source": "synthetic"}, "detection": {"model": str(model)},
                                      "mqtt": {"enabled": False}}))
    run = subprocess.run([sys.executable, "-m", "detector.cli", "run", "--config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr and str(model) in run.stderr
    expected = {"truncated": "sha256", "garbage": "sha256", "card_mismatch": "does not fit the card"}[damage]
    assert expected in run.stderr
