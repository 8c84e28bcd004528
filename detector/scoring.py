"""Every model the daemon runs, scored on the same window: each feature recipe once, each model timed.

The siren model comes first and its events go to `<p>/event`; further models (the urban tagger) go to
`<p>/sound`. YAMNet, when the user supplies it, has two optional roles: it re-scores the windows where the
siren model reaches its on-threshold and vetoes an onset it does not confirm (it never cuts a running
event short), and it tags the urban labels on every window: with the shipped head on its embedding
(`detector.yamnet_head`, model name `yamnet_head`), or with its own AudioSet classes mapped (`yamnet`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.config import DetectionConfig, resolve_path
from detector.errors import ModelError
from detector.features import FeatureRecipe
from detector.messages import ModelIdentity
from detector.model import Classifier, ModelCard, file_sha256
from detector.tracker import OFF_FRACTION, TrackerSettings, settings_for
from detector.yamnet import URBAN_CLASSES, YamnetTagger
from detector.yamnet_head import YamnetHead, load_head

SIREN_TOPIC, SOUND_TOPIC = "event", "sound"
YAMNET_NAME = "yamnet"  # YAMNet's time on health; the urban model's name when its own classes tag
YAMNET_HEAD_NAME = "yamnet_head"  # the urban model's name when the shipped head on its embedding tags
DEFAULT_CONFIRM_THRESHOLD = 0.2  # YAMNet siren score that confirms an onset when the card measured none


@dataclass(frozen=True)
class ScoredModel:
    """What the daemon needs to know of one model: who it is, its labels, which ones become events, where."""

    identity: ModelIdentity
    labels: tuple[str, ...]
    positive_labels: tuple[str, ...]
    topic: str
    classifier: Classifier | None  # None: YAMNet's urban tagging


@dataclass
class WindowScores:
    """Per model (in `Scorer.models` order) the label scores, and the milliseconds each model took."""

    scores: list[np.ndarray]
    model_ms: dict[str, float]
    vetoed: bool = False  # YAMNet did not confirm a siren onset in this window


def confirm_threshold_for(siren: Classifier, detection: DetectionConfig) -> float | None:
    """YAMNet siren score that confirms an onset: the config's, else the card's measured one; None = no veto."""
    if not detection.yamnet_confirm:
        return None
    if detection.yamnet_confirm_threshold is not None:
        return detection.yamnet_confirm_threshold
    measured = siren.card.raw.get("tracker_with_yamnet_veto") or {}
    return float(measured.get("confirm_threshold", DEFAULT_CONFIRM_THRESHOLD))


def vetoed(scores: np.ndarray, yamnet_siren: np.ndarray | float, on_threshold: float,
           confirm_threshold: float) -> np.ndarray:
    """Siren scores after YAMNet's veto: those at the on-threshold that YAMNet does not confirm are held just
    below it, so they cannot start an event but still keep a running one going."""
    held = np.array(scores, dtype=np.float32)
    held[(held >= on_threshold) & (np.asarray(yamnet_siren) < confirm_threshold)] = np.nextafter(
        np.float32(on_threshold), np.float32(0))
    return held


def tracker_settings(model: ScoredModel, detection: DetectionConfig) -> TrackerSettings:
    """How one model's scores become events, for the daemon and classify alike: the siren model's settings
    follow the config (over its card's), the others' their own cards, YAMNet's tagging its urban threshold."""
    if model.classifier is None:
        threshold = detection.yamnet_urban_threshold
        return TrackerSettings(on_threshold=threshold, off_threshold=OFF_FRACTION * threshold)
    return settings_for(model.classifier.card, detection if model.topic == SIREN_TOPIC else DetectionConfig())


def _identity(classifier: Classifier) -> ModelIdentity:
    return ModelIdentity(classifier.card.name, classifier.sha256)


class Scorer:
    """The configured models, loaded and checked once; `score` runs them all on one window."""

    def __init__(self, detection: DetectionConfig, sample_rate: int, window_s: float,
                 models_origin: str = "detection.models") -> None:
        """`models_origin`: where the user named the models, for the error when two share a card name."""
        classifiers = [Classifier(resolve_path(path)) for path in (detection.model, *detection.models)]
        for classifier in classifiers:
            classifier.check_audio_path(sample_rate, window_s)
        names = [c.card.name for c in classifiers]
        if len(set(names)) != len(names):
            raise ModelError(f"{models_origin}: two models share the name {max(names, key=names.count)!r}")
        self.models = [ScoredModel(_identity(c), c.card.labels, c.card.positive_labels,
                                   SIREN_TOPIC if i == 0 else SOUND_TOPIC, c) for i, c in enumerate(classifiers)]
        self._siren_positives = [self.siren.labels.index(label) for label in self.siren.positive_labels]
        self.yamnet: YamnetTagger | None = None
        self.head: YamnetHead | None = None
        if detection.yamnet is not None:
            yamnet_path = Path(detection.yamnet)
            if detection.yamnet_urban and detection.yamnet_head is not None:
                self.head = load_head(resolve_path(detection.yamnet_head), yamnet_path)
            self.yamnet = YamnetTagger(yamnet_path, with_embedding=self.head is not None)
        self.confirm_threshold = confirm_threshold_for(classifiers[0], detection) if self.yamnet else None
        if self.yamnet is not None and detection.yamnet_urban:
            identity = (ModelIdentity(YAMNET_HEAD_NAME, file_sha256(self.head.path)) if self.head is not None
                        else ModelIdentity(YAMNET_NAME, file_sha256(self.yamnet.path)))
            labels = tuple(URBAN_CLASSES)
            self.models.append(ScoredModel(identity, labels, labels, SOUND_TOPIC, None))

    @property
    def siren(self) -> ScoredModel:
        return self.models[0]

    @property
    def siren_card(self) -> ModelCard:
        """The siren model's card: it sets the audio path (the siren model is always ours, never YAMNet)."""
        assert self.siren.classifier is not None
        return self.siren.classifier.card

    def score(self, window: np.ndarray, siren_on_threshold: float) -> WindowScores:
        """All models on one window; a siren score YAMNet does not confirm is held just below the on-threshold."""
        features: dict[FeatureRecipe, np.ndarray] = {}
        yamnet_outputs: tuple[np.ndarray, np.ndarray | None] | None = None
        result = WindowScores([], {})

        def yamnet_window() -> tuple[np.ndarray, np.ndarray | None]:
            """YAMNet's (521,) scores and, where the head needs it, its embedding: one pass per window."""
            nonlocal yamnet_outputs
            if yamnet_outputs is None:
                assert self.yamnet is not None
                began = time.perf_counter()
                yamnet_outputs = (self.yamnet.window_outputs(window) if self.head is not None
                                  else (self.yamnet.window_scores(window), None))
                result.model_ms[YAMNET_NAME] = (time.perf_counter() - began) * 1000.0
            return yamnet_outputs

        for model in self.models:
            if model.classifier is None:
                scores, embedding = yamnet_window()
                urban_scores = YamnetTagger.urban_scores(scores)
                result.scores.append(self.head.probabilities(embedding, urban_scores) if self.head is not None
                                     and embedding is not None else urban_scores)
                continue
            recipe = model.classifier.card.recipe
            began = time.perf_counter()
            if recipe not in features:
                features[recipe] = model.classifier.features(window[None])
            result.scores.append(model.classifier.predict_features(features[recipe])[0])
            result.model_ms[model.identity.name] = (time.perf_counter() - began) * 1000.0
        positives = self._siren_positives
        siren = result.scores[0]
        if self.confirm_threshold is not None and (siren[positives] >= siren_on_threshold).any():
            confirmation = YamnetTagger.siren_score(yamnet_window()[0])  # YAMNet runs only on flagged windows
            siren[positives] = vetoed(siren[positives], confirmation, siren_on_threshold, self.confirm_threshold)
            result.vetoed = confirmation < self.confirm_threshold
        return result
