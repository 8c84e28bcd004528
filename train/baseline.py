"""YAMNet off the shelf, scored on exactly the windows and street sets our models are scored on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from detector.yamnet import YamnetTagger


def yamnet_siren_scores(tagger: YamnetTagger, windows: np.ndarray, desc: str) -> np.ndarray:
    return np.array([tagger.siren_score(tagger.window_scores(w)) for w in tqdm(windows, desc=desc, unit="win")],
                    dtype=np.float32)


def yamnet_report(config: Any, data: Any, street: Sequence[Any], evaluate_scores: Callable[..., dict]
                  ) -> dict[str, Any]:
    """YAMNet needs no training, so its scores on every real window (`data.yamnet_scores`) are out of fold."""
    tagger = YamnetTagger(config.yamnet_path)
    street_scores: dict[str, list[np.ndarray]] = {}
    for street_set in street:
        street_scores.setdefault(street_set.name, []).append(
            yamnet_siren_scores(tagger, street_set.windows, f"YAMNet on {street_set.name}"))
    summary = evaluate_scores("yamnet", data.yamnet_scores, data, config,
                              {name: np.concatenate(parts) for name, parts in street_scores.items()}, street)
    return {"name": "yamnet", "description": "YAMNet (AudioSet, MobileNet-v1) off the shelf: max of classes "
            "316-319 and 390 over three 0.975 s frames per window", "tutorial": False,
            "parameters": 3_700_000, "macs_per_window": 3 * 69_200_000, "trained_on": "AudioSet (not ours)",
            **summary}
