"""The urban head on YAMNet's embedding: what the daemon's YAMNet option tags the ten urban labels with.

YAMNet's own AudioSet classes, mapped onto the UrbanSound8K labels (`detector.yamnet.URBAN_CLASSES`), reach
62.9 % slice accuracy on the held-out folds here; a multinomial logistic regression on its 1024-d embedding
reaches 67.6 % (README, "Urban model"). `train.yamnet_head` fits that regression on every labelled window
and writes it as JSON (`models/yamnet_head.json`): plain weights, with the standardisation folded in, so the
runtime needs numpy only. The head is only valid for the YAMNet file it was fitted on, whose sha256 it
records: `load_head` refuses any other file and says what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.errors import ModelError
from detector.model import file_sha256
from detector.yamnet import EMBEDDING_SIZE, URBAN_CLASSES


@dataclass(frozen=True)
class YamnetHead:
    """softmax(weights @ embedding + bias) over `labels`."""

    path: Path
    labels: tuple[str, ...]
    weights: np.ndarray  # (labels, 1024)
    bias: np.ndarray  # (labels,)
    yamnet_sha256: str  # the YAMNet file whose embedding this head reads

    def probabilities(self, embedding: np.ndarray) -> np.ndarray:
        """(1024,) embedding -> (labels,) probabilities summing to 1."""
        logits = self.weights @ embedding.astype(np.float32) + self.bias
        exp = np.exp(logits - logits.max())
        return exp / exp.sum()


def load_head(path: Path, yamnet_path: Path) -> YamnetHead:
    """Read and check a head file against the YAMNet file it will run on; one-line ModelError otherwise."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelError(f"{path}: YAMNet head not found (detection.yamnet_head; null uses YAMNet's own "
                         "classes)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelError(f"{path}: not a YAMNet head ({type(error).__name__}: {error})") from None
    try:
        labels = tuple(str(label) for label in raw["labels"])
        weights = np.asarray(raw["weights"], dtype=np.float32)
        bias = np.asarray(raw["bias"], dtype=np.float32)
        expected_sha256 = str(raw["yamnet_sha256"])
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: not a YAMNet head ({type(error).__name__}: {error})") from None
    if labels != tuple(URBAN_CLASSES):
        raise ModelError(f"{path}: labels {list(labels)} are not the urban labels {list(URBAN_CLASSES)}")
    if weights.shape != (len(labels), EMBEDDING_SIZE) or bias.shape != (len(labels),):
        raise ModelError(f"{path}: weights {weights.shape} and bias {bias.shape} do not fit "
                         f"{len(labels)} labels of a {EMBEDDING_SIZE}-d embedding")
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))):
        raise ModelError(f"{path}: weights are not all finite")
    actual_sha256 = file_sha256(yamnet_path)
    if actual_sha256 != expected_sha256:
        raise ModelError(f"{path}: fitted on the YAMNet file with sha256 {expected_sha256[:12]}…, but "
                         f"{yamnet_path} has {actual_sha256[:12]}… (refit it with train.yamnet_head, or set "
                         "detection.yamnet_head: null)")
    return YamnetHead(path, labels, weights, bias, expected_sha256)
