"""Loading a `.tflite` model with its card, checking the two agree, and scoring feature matrices.

The interpreter is LiteRT (`ai-edge-litert`); `tflite_runtime` or TensorFlow's own interpreter are used
only when they are what is installed. Nothing on this path imports TensorFlow unless it is the fallback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.features import FeatureRecipe, compute_features

CARD_REQUIRED_KEYS = ("name", "labels", "sample_rate", "window_s", "hop_s", "features", "input",
                      "output", "threshold", "positive_labels", "tflite_sha256")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Quantization:
    """How a tensor maps to real numbers: real = scale * (q - zero_point); scale 0 means float."""

    dtype: str
    scale: float
    zero_point: int

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> Quantization:
        scale, zero_point = details["quantization"]
        return cls(np.dtype(details["dtype"]).name, float(scale), int(zero_point))

    def to_dict(self) -> dict[str, Any]:
        return {"dtype": self.dtype, "scale": self.scale, "zero_point": self.zero_point}

    def quantize(self, values: np.ndarray) -> np.ndarray:
        """Real values as this tensor's integers (rounded, clipped to the type's range); float as is."""
        if not self.scale:
            return values.astype(self.dtype)
        info = np.iinfo(self.dtype)
        return np.clip(np.round(values / self.scale) + self.zero_point, info.min, info.max).astype(self.dtype)

    def dequantize(self, values: np.ndarray) -> np.ndarray:
        """This tensor's integers as real values (float32); float as is."""
        if not self.scale:
            return values.astype(np.float32, copy=False)
        return (values.astype(np.float32) - self.zero_point) * self.scale


@dataclass(frozen=True)
class ModelCard:
    """The parts of a model card the runtime acts on; the whole JSON is kept in `raw`."""

    name: str
    labels: tuple[str, ...]
    positive_labels: tuple[str, ...]
    sample_rate: int
    window_s: float
    hop_s: float
    recipe: FeatureRecipe
    input_quantization: Quantization
    output_quantization: Quantization
    threshold: float
    tflite_sha256: str
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, path: Path) -> ModelCard:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: model card missing (every .tflite needs its .json card)") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ModelError(f"{path}: model card is not valid JSON ({error})") from None
        if not isinstance(raw, dict):
            raise ModelError(f"{path}: model card must be a JSON object")
        missing = [key for key in CARD_REQUIRED_KEYS if key not in raw]
        if missing:
            raise ModelError(f"{path}: model card lacks {', '.join(missing)}")
        try:
            card = cls(
                name=str(raw["name"]),
                labels=tuple(str(label) for label in raw["labels"]),
                positive_labels=tuple(str(label) for label in raw["positive_labels"]),
                sample_rate=int(raw["sample_rate"]),
                window_s=float(raw["window_s"]),
                hop_s=float(raw["hop_s"]),
                recipe=FeatureRecipe.from_dict(raw["features"]),
                input_quantization=Quantization(**raw["input"]),
                output_quantization=Quantization(**raw["output"]),
                threshold=float(raw["threshold"]),
                tflite_sha256=str(raw["tflite_sha256"]),
                raw=raw,
            )
        except (TypeError, ValueError) as error:
            raise ModelError(f"{path}: model card has a malformed value ({error})") from None
        except ModelError as error:
            raise ModelError(f"{path}: {error}") from None
        if card.recipe.sample_rate != card.sample_rate:
            raise ModelError(f"{path}: feature sample_rate {card.recipe.sample_rate} != card {card.sample_rate}")
        if not set(card.positive_labels) <= set(card.labels):
            raise ModelError(f"{path}: positive_labels must be among labels")
        if not 0 < card.hop_s <= card.window_s or round(card.hop_s * card.sample_rate) < 1:
            raise ModelError(f"{path}: hop_s must be positive and at most window_s (got {card.hop_s})")
        if not 0.0 <= card.threshold <= 1.0:
            raise ModelError(f"{path}: threshold must be within [0, 1] (got {card.threshold})")
        return card

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """LiteRT's C++ side prints an INFO line per model straight to fd 2; keep the user's stderr for errors."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "wb") as devnull:
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def make_interpreter(model_path: Path, num_threads: int = 1, keep_all_tensors: bool = False) -> Any:
    """LiteRT's interpreter, else tflite_runtime's, else TensorFlow's (imported only as a last resort).

    `keep_all_tensors` keeps intermediate tensors readable after `invoke` (YAMNet's embedding: about 3 MB more).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            try:
                from tensorflow.lite import Interpreter  # type: ignore[no-redef]
            except ImportError:
                raise ModelError("no TFLite interpreter installed: pip install ai-edge-litert") from None
    try:
        with _native_stderr_silenced(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # LiteRT: keep_all_tensors is "for debugging"
            interpreter = Interpreter(model_path=str(model_path), num_threads=num_threads,
                                      **({"experimental_preserve_all_tensors": True} if keep_all_tensors else {}))
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{model_path}: not a valid TFLite model ({reason})") from None
    return interpreter


def card_path_for(model_path: Path) -> Path:
    return model_path.with_suffix(".json")


class Classifier:
    """A checked model and its card: features in, per-label probabilities out."""

    def __init__(self, model_path: str | Path, num_threads: int = 1) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        self.card = ModelCard.from_json(card_path_for(self.path))
        actual_sha = file_sha256(self.path)
        if actual_sha != self.card.tflite_sha256:
            raise ModelError(
                f"{self.path}: sha256 {actual_sha[:12]}… does not match its card's "
                f"{self.card.tflite_sha256[:12]}… (model and card are from different trainings)"
            )
        self.sha256 = actual_sha
        self._interpreter = make_interpreter(self.path, num_threads)
        input_details = self._interpreter.get_input_details()[0]
        output_details = self._interpreter.get_output_details()[0]
        self._input_index = input_details["index"]
        self._output_index = output_details["index"]
        self._input_shape = tuple(int(n) for n in input_details["shape"])
        self._check_against_card(input_details, output_details)

    def _check_against_card(self, input_details: dict[str, Any], output_details: dict[str, Any]) -> None:
        card = self.card
        frames, bins = card.recipe.shape(card.window_samples)
        if int(np.prod(self._input_shape[1:])) != frames * bins:
            raise ModelError(
                f"{self.path}: model input {list(self._input_shape)} does not fit the card's features "
                f"({frames} frames x {bins} bins)"
            )
        n_outputs = int(output_details["shape"][-1])
        if n_outputs != len(card.labels):
            raise ModelError(f"{self.path}: model has {n_outputs} outputs, card lists {len(card.labels)} labels")
        for role, details, expected in (
            ("input", input_details, card.input_quantization),
            ("output", output_details, card.output_quantization),
        ):
            actual = Quantization.from_details(details)
            if actual.dtype != expected.dtype or not np.isclose(actual.scale, expected.scale, rtol=1e-5) or (
                actual.zero_point != expected.zero_point
            ):
                raise ModelError(f"{self.path}: {role} quantization {actual} differs from the card's {expected}")

    def check_audio_path(self, sample_rate: int, window_s: float) -> None:
        """Refuse to run on an audio path the model was not trained for."""
        if sample_rate != self.card.sample_rate or abs(window_s - self.card.window_s) > 1e-9:
            raise ModelError(
                f"{self.path}: trained for {self.card.sample_rate} Hz, {self.card.window_s} s windows; "
                f"configured audio is {sample_rate} Hz, {window_s} s windows"
            )

    def features(self, windows: np.ndarray) -> np.ndarray:
        return compute_features(windows, self.card.recipe)

    def predict_features(self, features: np.ndarray) -> np.ndarray:
        """(n, frames, bins) features -> (n, labels) probabilities, one interpreter call per window."""
        quant_in, quant_out = self.card.input_quantization, self.card.output_quantization
        scores = np.empty((len(features), len(self.card.labels)), dtype=np.float32)
        for row, matrix in enumerate(features):
            self._interpreter.set_tensor(self._input_index, quant_in.quantize(matrix.reshape(self._input_shape)))
            self._interpreter.invoke()
            scores[row] = quant_out.dequantize(self._interpreter.get_tensor(self._output_index)[0])
        return scores

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """(n, samples) windows -> (n, labels) probabilities."""
        return self.predict_features(self.features(windows))
