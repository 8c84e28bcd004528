"""A stronger YAMNet teacher: a logistic regression on YAMNet's embeddings, for both models.

YAMNet's AudioSet scores mapped onto the ten urban classes (`detector.yamnet.URBAN_CLASSES`) reach 62.9 %
slice accuracy on the held-out folds here; a logistic regression on its 1024-d embeddings (the pooled layer
under those scores), fitted on the training fold only, reaches 67 %. For sirens the same head on two labels
reaches ROC AUC 0.987 in the emergency CV, against 0.970 for YAMNet's own emergency classes. That
regression, not YAMNet's own head, is what the students learn from. The embeddings are read from an
intermediate tensor (`YamnetTagger(with_embedding=True)`). The urban head fitted on all the data also ships,
for the daemon's YAMNet option (`train.yamnet_head`, `detector.yamnet_head`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from detector.yamnet import YamnetTagger

REGULARISATION_C = 0.01  # best of 0.01 / 0.1 / 1 on both held-out folds (67.1 % at 0.1, 67.6 % at 0.01)
CROSS_FIT_SPLITS = 5
MIMIC_COMPONENTS = 128  # of the 1024-d embedding: what a student has room to copy


def yamnet_outputs(model_path: Path, windows: np.ndarray, cache_dir: Path, what: str
                   ) -> tuple[np.ndarray, np.ndarray]:
    """YAMNet's (n, 10) urban scores (the off-the-shelf baseline) and (n, 1024) embeddings (the teacher's
    input) of `windows` in one pass, cached in `cache_dir` by the windows' content."""
    key = hashlib.sha256(np.ascontiguousarray(windows[:, ::97]).tobytes()).hexdigest()[:16]
    cache = cache_dir / f"yamnet_{key}.npz"
    if cache.exists():
        saved = np.load(cache)
        return saved["urban"], saved["embeddings"]
    embedder = YamnetTagger(model_path, with_embedding=True)
    urban, embeddings = [], []
    for window in tqdm(windows, desc=f"YAMNet on {what}", unit="win"):
        scores, embedding = embedder.window_outputs(window)
        urban.append(YamnetTagger.urban_scores(scores))
        embeddings.append(embedding)
    result = np.array(urban, np.float32), np.array(embeddings, np.float32)
    np.savez(cache, urban=result[0], embeddings=result[1])
    return result


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


def cross_fitted_probabilities(embeddings: np.ndarray, labels: np.ndarray, groups: Sequence[frozenset[str]],
                               n_labels: int) -> np.ndarray:
    """The head's probabilities for each window from a head that never saw its recordings (`groups`: the
    recordings each window contains, as `Examples.groups`): the targets a student learns on its training
    windows are then the teacher's honest guesses, not its memory."""
    out = np.zeros((len(labels), n_labels), np.float32)
    keys = ["|".join(sorted(recordings)) for recordings in groups]
    splits = min(CROSS_FIT_SPLITS, len(set(keys)))
    for fit_rows, apply_rows in GroupKFold(splits).split(embeddings, labels, keys):
        head = fit_head(embeddings[fit_rows], labels[fit_rows])
        out[apply_rows] = head_probabilities(head, embeddings[apply_rows], n_labels)
    return out


def mimicry_phrase(weight: float) -> str:
    """How a card says that a model also learnt to predict YAMNet's embedding (both tasks)."""
    return f"also predicting YAMNet's embedding (top {MIMIC_COMPONENTS} principal components, loss weight {weight:g})"


def embedding_targets(embeddings: np.ndarray, components: int = MIMIC_COMPONENTS) -> np.ndarray:
    """What a student mimics of YAMNet: the embeddings' top principal components (fitted on these training
    windows), scaled so the first has unit standard deviation and the rest keep their relative sizes."""
    centred = embeddings - embeddings.mean(axis=0)
    _, singular, basis = np.linalg.svd(centred, full_matrices=False)
    scale = singular[0] / np.sqrt(len(embeddings))
    return (centred @ basis[:components].T / scale).astype(np.float32)
