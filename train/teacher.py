"""YAMNet's scores for every training window, computed once and cached: soft targets and the baseline.

Windows are cut exactly as the detector cuts them (`cut_windows`), so a cached row lines up with the
window a student model sees for the same clip and start sample.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detector.audio import read_audio
from detector.model import file_sha256
from detector.windows import WindowSpec, cut_windows
from detector.yamnet import N_CLASSES, SAMPLE_RATE, YamnetTagger
from train.datasets import Clip

CACHE_ARRAYS = ("path", "start", "scores")


def cache_key(clips: Sequence[Clip], model_sha256: str, window_s: float, hop_s: float) -> str:
    """Hash of everything the scores depend on: the clip paths in order, the model and the windowing."""
    recipe = {"paths": [str(clip.path) for clip in clips], "model": model_sha256,
              "window_s": window_s, "hop_s": hop_s}
    return hashlib.sha256(json.dumps(recipe).encode()).hexdigest()


def load_cache(cache_path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The cached arrays when the file exists and was made for `key`; None means recompute."""
    try:
        with np.load(cache_path) as cached:
            if str(cached["key"]) != key:
                return None
            return {name: cached[name] for name in CACHE_ARRAYS}
    except (OSError, KeyError, ValueError, EOFError):
        return None


def save_cache(cache_path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    """Write beside the target, then rename: an interrupted run never leaves a half-written cache."""
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    partial = cache_path.with_name(cache_path.name + ".partial")
    with partial.open("wb") as stream:
        np.savez(stream, key=np.array(key), **arrays)
    os.replace(partial, cache_path)


def yamnet_scores_for_clips(clips: Sequence[Clip], tagger: YamnetTagger, cache_path: Path,
                            window_s: float = 2.0, hop_s: float = 1.0) -> dict[str, np.ndarray]:
    """`path` (n,) str, `start` (n,) int64 sample index and `scores` (n, 521) float16, one row per window."""
    key = cache_key(clips, file_sha256(tagger.path), window_s, hop_s)
    cached = load_cache(cache_path, key)
    if cached is not None:
        return cached
    spec = WindowSpec.from_seconds(SAMPLE_RATE, window_s, hop_s)
    paths: list[str] = []
    starts: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    for clip in tqdm(clips, desc="YAMNet", unit="clip"):
        windows, clip_starts = cut_windows(read_audio(clip.path, SAMPLE_RATE).samples, spec)
        paths.extend([str(clip.path)] * len(windows))
        starts.append(clip_starts.astype(np.int64))
        scores.append(np.array([tagger.window_scores(window) for window in windows], dtype=np.float16))
    arrays = {
        "path": np.array(paths, dtype=str),
        "start": np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64),
        "scores": np.concatenate(scores) if scores else np.zeros((0, N_CLASSES), dtype=np.float16),
    }
    save_cache(cache_path, key, arrays)
    return arrays
