"""Per-window cost on one core: this project's pipeline against the tutorial pipeline, same windows, same run.

Ours: numpy log-mel features + the shipped int8 model in LiteRT. The tutorials': scipy's spectrogram +
Keras `model.predict` for the spectrogram CNN, and librosa's MFCC + Keras for the MFCC net, the models
built by the same code `siren-train` trains them with (`train.models`). Weights do not change the cost of
a forward pass, so the tutorial models are not trained here. With a YAMNet file, the daemon's two ways of
tagging the urban labels with it are timed too: its AudioSet classes mapped, and the shipped head on its
embedding (the interpreter then keeps its intermediate tensors). The shipped urban model is timed as the
daemon adds it (`detection.models`): its own features and inference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import SAMPLE_RATE, summary_ms
from detector.model import Classifier

WARM_UP = 20


def _timed(windows: np.ndarray, features: Callable[[np.ndarray], Any], infer: Callable[[Any], Any]
           ) -> dict[str, dict[str, float]]:
    feature_ms, inference_ms = [], []
    for index, window in enumerate(windows):
        started = time.perf_counter()
        matrix = features(window)
        computed = time.perf_counter()
        infer(matrix)
        done = time.perf_counter()
        if index >= WARM_UP:
            feature_ms.append((computed - started) * 1e3)
            inference_ms.append((done - computed) * 1e3)
    return {"features": summary_ms(feature_ms), "inference": summary_ms(inference_ms),
            "total": summary_ms(np.add(feature_ms, inference_ms))}


FEATURE_NAMES = {"logmel": "log-mel", "pcen": "PCEN", "logmel_pcen": "log-mel + PCEN", "mfcc": "MFCC",
                 "logspec": "log spectrogram", "waveform": "waveform"}


def _ours(model_path: Path) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], Any]]:
    classifier = Classifier(model_path, num_threads=1)
    return (lambda window: classifier.features(window[None]), classifier.predict_features)


def _ours_name(model_path: Path) -> str:
    """`numpy <features> + <model> int8 (LiteRT)`, the features as the model's card names them."""
    return f"numpy {FEATURE_NAMES[Classifier(model_path).card.recipe.kind]} + {model_path.stem} int8 (LiteRT)"


def tutorial_spectrogram(window: np.ndarray) -> np.ndarray:
    """The seed recipe as the tutorials wrote it: scipy's spectrogram, 20 ms frames at a 10 ms hop, log."""
    from scipy import signal

    _, _, power = signal.spectrogram(window, fs=SAMPLE_RATE, nperseg=320, noverlap=160)
    logged = np.log(power + 1e-10).T
    return ((logged - logged.mean()) / (logged.std() + 1e-8)).astype(np.float32)


def tutorial_mfcc(window: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.mfcc(y=window, sr=SAMPLE_RATE, n_mfcc=40).T.astype(np.float32)


def _keras(architecture: str, shape: tuple[int, ...], call: bool = False) -> Callable[[np.ndarray], Any]:
    """`model.predict` per window as the tutorials do, or (`call`) the model called directly, its cheapest form."""
    from train.models import ARCHITECTURES

    model = ARCHITECTURES[architecture].build(shape, 2)
    if call:
        return lambda matrix: model(matrix[None], training=False)
    return lambda matrix: model.predict(matrix[None], verbose=0)


def _yamnet_urban(yamnet: Path, head_path: Path | None) -> tuple[Callable[[np.ndarray], Any], Callable[[Any], Any]]:
    """The daemon's YAMNet urban tagging, waveform in (no features of ours), the ten label scores out."""
    from detector.yamnet import YamnetTagger
    from detector.yamnet_head import load_head

    if head_path is None:
        tagger = YamnetTagger(yamnet, num_threads=1)
        return (lambda window: window), (lambda window: YamnetTagger.urban_scores(tagger.window_scores(window)))
    head = load_head(head_path, yamnet)
    tagger = YamnetTagger(yamnet, num_threads=1, with_embedding=True)

    def tag(window: np.ndarray) -> np.ndarray:
        scores, embedding = tagger.window_outputs(window)
        return head.probabilities(embedding, YamnetTagger.urban_scores(scores))

    return (lambda window: window), tag


def run(windows: np.ndarray, model_path: Path, yamnet: Path | None = None,
        head_path: Path = Path("models/yamnet_head.json"), urban_path: Path = Path("models/urban.tflite")
        ) -> dict[str, Any]:
    example = windows[0]
    pipelines = {
        f"ours: {_ours_name(model_path)}": _ours(model_path),
        f"ours, added by detection.models: {_ours_name(urban_path)}": _ours(urban_path),
        "tutorial: scipy spectrogram + Keras CNN (logspec_cnn)":
            (tutorial_spectrogram, _keras("logspec_cnn", tutorial_spectrogram(example).shape)),
        "tutorial: librosa MFCC-40 + Keras dense net (mfcc_dense)":
            (tutorial_mfcc, _keras("mfcc_dense", tutorial_mfcc(example).shape)),
        "tutorial CNN with Keras called directly instead of predict (its cheapest form)":
            (tutorial_spectrogram, _keras("logspec_cnn", tutorial_spectrogram(example).shape, call=True)),
    }
    if yamnet is not None:
        pipelines["YAMNet urban tagging: its AudioSet classes mapped (detection.yamnet_head: null)"] = (
            _yamnet_urban(yamnet, None))
        pipelines[f"YAMNet urban tagging: embedding + {head_path.stem} (the default with detection.yamnet)"] = (
            _yamnet_urban(yamnet, head_path))
    rows = {name: _timed(windows, *stages) for name, stages in pipelines.items()}
    ours = next(iter(rows.values()))["total"]["median_ms"]
    for row in rows.values():
        row["times_ours"] = round(row["total"]["median_ms"] / ours, 1)
    return {"windows_timed": len(windows) - WARM_UP, "threads": 1, "pipelines": rows}


def table(result: dict[str, Any]) -> str:
    lines = [f"Per-window cost, one core, {result['windows_timed']} windows (median / p95 ms)",
             "| pipeline | features | inference | total | × ours |", "|---|---:|---:|---:|---:|"]
    for name, row in result["pipelines"].items():
        cells = [f"{row[s]['median_ms']:.2f} / {row[s]['p95_ms']:.2f}" for s in ("features", "inference", "total")]
        lines.append(f"| {name} | {' | '.join(cells)} | {row['times_ours']:g} |")
    return "\n".join(lines)
