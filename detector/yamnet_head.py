"""The urban head on YAMNet's embedding: what the daemon's YAMNet option tags the ten urban labels with.

YAMNet's own AudioSet classes, mapped onto the UrbanSound8K labels (`detector.yamnet.URBAN_CLASSES`), reach
62.9 % slice accuracy on the held-out folds here; a multinomial logistic regression on its 1024-d embedding
reaches 67.5 %, and that regression's probabilities multiplied by YAMNet's own mapped scores raised to the
power 0.5 (a product of the two experts, renormalised) 70.7 % (README, "Urban model"). `train.yamnet_head`
fits that regression on every labelled window and writes it as JSON (`models/yamnet_head.json`): plain
weights, with the standardisation folded in, and the power, so the runtime needs numpy only. The head is
only valid for the YAMNet file it was fitted on, whose sha256 it records: `load_head` refuses any other
file and says what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.errors import ModelError
from detector.model import file_sha256
from detector.yamnet import EMBEDDING_SIZE, URBAN_CLASSES

PROBABILITY_FLOOR = 1e-6  # under the logarithms: a label one expert rules out is not ruled out outright


def with_yamnet_scores(probabilities: np.ndarray, urban_scores: np.ndarray, weight: float) -> np.ndarray:
    """(..., 10) head probabilities times YAMNet's own (..., 10) mapped scores (normalised) to the power
    `weight`, renormalised: the two disagree in useful ways (the head knows these recordings, YAMNet's
    classes know AudioSet), and together they beat either on the held-out folds. `weight` 0 is the head."""
    if weight == 0:
        return probabilities
    own = urban_scores / np.maximum(urban_scores.sum(axis=-1, keepdims=True), PROBABILITY_FLOOR)
    logits = np.log(probabilities + PROBABILITY_FLOOR) + weight * np.log(own + PROBABILITY_FLOOR)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class YamnetHead:
    """softmax(weights @ embedding + bias) over `labels`, combined with YAMNet's own mapped scores
    (`with_yamnet_scores`) at `yamnet_scores_weight` (0 in head files older than that option)."""

    path: Path
    labels: tuple[str, ...]
    weights: np.ndarray  # (labels, 1024)
    bias: np.ndarray  # (labels,)
    yamnet_sha256: str  # the YAMNet file whose embedding this head reads
    yamnet_scores_weight: float = 0.0

    def probabilities(self, embedding: np.ndarray, urban_scores: np.ndarray) -> np.ndarray:
        """(1024,) embedding and YAMNet's (labels,) mapped scores of the same window -> (labels,)
        probabilities summing to 1."""
        logits = self.weights @ embedding.astype(np.float32) + self.bias
        exp = np.exp(logits - logits.max())
        return with_yamnet_scores(exp / exp.sum(), urban_scores, self.yamnet_scores_weight)


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
        scores_weight = float(raw.get("yamnet_scores_weight", 0.0))
    except (KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: not a YAMNet head ({type(error).__name__}: {error})") from None
    if labels != tuple(URBAN_CLASSES):
        raise ModelError(f"{path}: labels {list(labels)} are not the urban labels {list(URBAN_CLASSES)}")
    if weights.shape != (len(labels), EMBEDDING_SIZE) or bias.shape != (len(labels),):
        raise ModelError(f"{path}: weights {weights.shape} and bias {bias.shape} do not fit "
                         f"{len(labels)} labels of a {EMBEDDING_SIZE}-d embedding")
    if not (np.all(np.isfinite(weights)) and np.all(np.isfinite(bias))):
        raise ModelError(f"{path}: weights are not all finite")
    if not (np.isfinite(scores_weight) and scores_weight >= 0):
        raise ModelError(f"{path}: yamnet_scores_weight must be a number >= 0, got {scores_weight}")
    actual_sha256 = file_sha256(yamnet_path)
    if actual_sha256 != expected_sha256:
        raise ModelError(f"{path}: fitted on the YAMNet file with sha256 {expected_sha256[:12]}…, but "
                         f"{yamnet_path} has {actual_sha256[:12]}… (refit it with train.yamnet_head, or set "
                         "detection.yamnet_head: null)")
    return YamnetHead(path, labels, weights, bias, expected_sha256, scores_weight)
