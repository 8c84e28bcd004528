"""A stronger YAMNet teacher for the urban model: a logistic regression on YAMNet's embeddings.

YAMNet's AudioSet scores mapped onto the ten urban classes (`detector.yamnet.URBAN_CLASSES`) reach 62.9 %
slice accuracy on the held-out folds here; a logistic regression on its 1024-d embeddings (the pooled layer
under those scores), fitted on the training fold only, reaches 67 %. That regression, not YAMNet's own
head, is what the student learns from. Training time only: the embeddings are read from an intermediate
tensor, which needs LiteRT's debugging option to keep every tensor, so nothing here belongs on the Pi.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from detector.errors import ModelError
from detector.yamnet import FRAME_SAMPLES, frame_offsets

EMBEDDING_TENSOR = "global_average_pooling2d/Mean"  # YAMNet's (1, 1024) pooled features
REGULARISATION_C = 0.01  # best of 0.01 / 0.1 / 1 on both held-out folds (67.1 % at 0.1, 67.6 % at 0.01)
CROSS_FIT_SPLITS = 5


class YamnetEmbedder:
    """YAMNet's 1024-d embedding of a window: the mean over the frames that span it."""

    def __init__(self, model_path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.path = model_path
        with warnings.catch_warnings():  # "intended for debugging": training time is where it is used
            warnings.simplefilter("ignore", UserWarning)
            self._interpreter = Interpreter(model_path=str(model_path), num_threads=1,
                                            experimental_preserve_all_tensors=True)
        self._interpreter.allocate_tensors()
        self._input_index = self._interpreter.get_input_details()[0]["index"]
        found = [d["index"] for d in self._interpreter.get_tensor_details()
                 if d["name"].endswith(EMBEDDING_TENSOR) and list(d["shape"]) == [1, 1024]]
        if len(found) != 1:
            raise ModelError(f"{model_path}: no (1, 1024) tensor named *{EMBEDDING_TENSOR}; not YAMNet")
        self._embedding_index = found[0]

    def embed(self, window: np.ndarray) -> np.ndarray:
        frames = []
        for offset in frame_offsets(len(window)):
            frame = window[offset : offset + FRAME_SAMPLES].astype(np.float32, copy=False)
            self._interpreter.set_tensor(self._input_index, frame[None, :])
            self._interpreter.invoke()
            frames.append(self._interpreter.get_tensor(self._embedding_index)[0].copy())
        return np.mean(frames, axis=0)


def embed_windows(model_path: Path, windows: np.ndarray, cache_dir: Path, what: str) -> np.ndarray:
    """(n, 1024) embeddings of `windows`, cached in `cache_dir` by the windows' content."""
    key = hashlib.sha256(np.ascontiguousarray(windows[:, ::97]).tobytes()).hexdigest()[:16]
    cache = cache_dir / f"yamnet_embeddings_{key}.npy"
    if cache.exists():
        return np.load(cache)
    embedder = YamnetEmbedder(model_path)
    embeddings = np.array([embedder.embed(w) for w in tqdm(windows, desc=f"YAMNet embeddings of {what}",
                                                             unit="win")], np.float32)
    np.save(cache, embeddings)
    return embeddings


def fit_head(embeddings: np.ndarray, labels: np.ndarray) -> Pipeline:
    """Standardise, then a class-balanced multinomial logistic regression."""
    head = make_pipeline(StandardScaler(), LogisticRegression(C=REGULARISATION_C, max_iter=2000,
                                                              class_weight="balanced"))
    return head.fit(embeddings, labels)


def head_probabilities(head: Pipeline, embeddings: np.ndarray, n_labels: int) -> np.ndarray:
    """(n, n_labels) probabilities; a label the head never saw gets 0."""
    out = np.zeros((len(embeddings), n_labels), np.float32)
    out[:, head.classes_] = head.predict_proba(embeddings)
    return out


def cross_fitted_probabilities(embeddings: np.ndarray, labels: np.ndarray, groups: Sequence[str],
                               n_labels: int) -> np.ndarray:
    """The head's probabilities for each window from a head that never saw its recording: the targets a
    student learns on its training windows are then the teacher's honest guesses, not its memory."""
    out = np.zeros((len(labels), n_labels), np.float32)
    splits = min(CROSS_FIT_SPLITS, len(set(groups)))
    for fit_rows, apply_rows in GroupKFold(splits).split(embeddings, labels, list(groups)):
        head = fit_head(embeddings[fit_rows], labels[fit_rows])
        out[apply_rows] = head_probabilities(head, embeddings[apply_rows], n_labels)
    return out
