"""train.onset_check: the delay arithmetic on known scores, the shipped model against its card's record, and a
model that starts no siren failing the check with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import INSTALL_ROOT
from detector.synth import SceneEvent, periodic_siren_times
from detector.tracker import TrackerSettings
from tests.yamnet_file import YAMNET, needs_yamnet
from train.onset_check import OnsetLimits, model_scorer, run_check, siren_onsets, tracker_from_choice, yamnet_scorer

SHIPPED = INSTALL_ROOT / "models" / "emergency.tflite"
ONE_OF_ONE = TrackerSettings(on_threshold=0.8, off_threshold=0.4, onset_windows=1, onset_of=1)


def _shipped_check(scenes: int, hop_s: float = 1.0, **kwargs: Any) -> dict[str, Any]:
    scorer, settings = model_scorer(SHIPPED, hop_s)
    return run_check(scorer, settings, scenes, hop_s, OnsetLimits(), **kwargs)


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "train.onset_check", *args], capture_output=True, text=True,
                          timeout=300)


def test_delay_is_the_end_of_the_starting_window_after_the_onset() -> None:
    times, duration_s = periodic_siren_times(3)
    truth = [SceneEvent("two_tone", start, end) for start, end in times]
    starts_s = np.arange(0.0, duration_s - 1.0, 1.0)
    scores = np.zeros(len(starts_s))
    scores[(starts_s >= 5.0) & (starts_s < 12.0)] = 0.9  # first siren (5-13 s): window [5, 7) is the first hit
    scores[(starts_s >= 26.0) & (starts_s < 30.0)] = 0.9  # second (23-31 s): first hit [26, 28), 5 s late
    scores[35] = 0.95  # window [35, 37): a start in the street between the second and third sirens
    onsets, false_starts = siren_onsets(truth, starts_s, scores, 2.0, ONE_OF_ONE, seed=7)
    assert [o.delay_s for o in onsets] == [2.0, 5.0, None]
    assert [o.peak_score for o in onsets] == [0.9, 0.9, 0.0]
    assert false_starts == 1


def test_shipped_card_records_a_passed_check_with_its_own_tracker_and_a_rerun_agrees() -> None:
    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    recorded = card["onset_check"]
    assert recorded["passed"] and recorded["sirens"] == recorded["started"] >= 400
    tracker_keys = ("on_threshold", "off_threshold", "onset_windows", "onset_of", "instant_threshold")
    assert {k: recorded["tracker"][k] for k in tracker_keys} == {k: card["tracker"][k] for k in tracker_keys}
    assert OnsetLimits(**recorded["limits"]) == OnsetLimits()
    rerun = _shipped_check(3, recorded["hop_s"])  # its first 3 scenes: the same seeds
    assert rerun["passed"] and rerun["sirens"] == rerun["started"] == 30
    assert rerun["false_starts"] == 0


def test_quieter_sirens_start_fewer_events_in_the_same_scenes() -> None:
    loud = _shipped_check(2)
    quiet = _shipped_check(2, snr_db=(-20.0, -15.0))
    assert loud["started"] == loud["sirens"] == quiet["sirens"] == 20
    assert quiet["started"] < loud["started"] and not quiet["passed"]
    assert quiet["snr_db"] == [-20.0, -15.0] and "-20 to -15 dB SNR" in quiet["protocol"]


@needs_yamnet
def test_yamnet_through_a_tuned_tracker_starts_fewer_generated_sirens_than_the_shipped_model(tmp_path: Path) -> None:
    choice = tmp_path / "yamnet_tracker.json"  # what tune_tracker chose on YAMNet's out-of-fold scores, session 31
    choice.write_text(json.dumps({"choice": {"on_threshold": 0.65, "off_threshold": 0.325, "onset_windows": 2,
                                             "onset_of": 3, "instant_threshold": 0.95}}))
    yamnet = run_check(yamnet_scorer(YAMNET), tracker_from_choice(choice), 2, 1.0, OnsetLimits())
    assert "YAMNet" in yamnet["protocol"] and yamnet["tracker"]["onset_windows"] == 2
    assert yamnet["started"] < _shipped_check(2)["started"] == 20


def test_a_model_that_starts_no_siren_fails_in_one_line_and_the_card_says_so(
        tiny_card: dict[str, Any], model_variant: Callable[..., Path]) -> None:
    # int8 output tops out at 255/256 of certainty, so this on-threshold is never reached
    tiny_card["tracker"] = {"on_threshold": 0.999, "off_threshold": 0.5, "onset_windows": 1, "onset_of": 1,
                            "instant_threshold": None}
    model = model_variant(card=tiny_card)
    result = _check("--model", str(model), "--scenes", "1", "--card")
    assert result.returncode == 1
    assert result.stderr.strip() == ("onset_check: failed: 10 of 10 sirens started no event, p95 never "
                                     "(limit 3 s), slowest never (limit 5 s)")
    written = json.loads(model.with_suffix(".json").read_text())["onset_check"]
    assert not written["passed"] and written["started"] == 0
    assert [o["delay_s"] for o in written["slowest"]] == [None] * 10


def test_bad_input_gives_one_line_and_exit_2(tmp_path: Path) -> None:
    missing = _check("--model", str(tmp_path / "none.tflite"))
    urban = _check("--model", str(INSTALL_ROOT / "models" / "urban.tflite"), "--scenes", "1")
    upside_down = _check("--model", str(SHIPPED), "--snr-db", "5", "0")
    no_choice = tmp_path / "report.json"
    no_choice.write_text("{}")
    not_a_tracker = _check("--model", str(SHIPPED), "--tracker", str(no_choice))
    yamnet_alone = _check("--yamnet", str(tmp_path / "yamnet.tflite"))
    for result, says in ((missing, "model file not found"), (urban, "one positive label"),
                         (upside_down, "--snr-db LOW at most HIGH"), (not_a_tracker, "not a tracker choice"),
                         (yamnet_alone, "--yamnet needs --tracker")):
        assert result.returncode == 2 and says in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
