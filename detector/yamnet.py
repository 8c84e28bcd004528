"""YAMNet, Google's pretrained AudioSet tagger, as a siren scorer: a teacher and baseline for our models.

The project never ships YAMNet; a user supplies the `.tflite` file. This module needs only numpy and a
TFLite interpreter, so it runs wherever the detector does. Besides the 521 scores it can read the 1024-d
embedding under them (the input of the shipped urban head, `detector.yamnet_head`): that needs the
interpreter to keep its intermediate tensors, about 3 MB more resident memory and no slower here.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from detector.errors import ModelError
from detector.model import make_interpreter

SAMPLE_RATE = 16000
FRAME_SAMPLES = 15600  # 0.975 s, YAMNet's fixed input
N_CLASSES = 521
# AudioSet: Emergency vehicle, Police car (siren), Ambulance (siren), Fire engine (siren), Siren
EMERGENCY_CLASSES = (316, 317, 318, 319, 390)
# The UrbanSound8K classes as YAMNet's AudioSet classes (indices into yamnet_class_map.csv): YAMNet as an
# urban tagger scores each label with the strongest of its classes.
URBAN_CLASSES: dict[str, tuple[int, ...]] = {
    "air_conditioner": (406, 407),  # Mechanical fan, Air conditioning
    "car_horn": (302, 312),  # Vehicle horn, Air horn
    "children_playing": (1, 10, 66),  # Child speech, Children shouting, Children playing
    "dog_bark": (69, 70, 71, 73),  # Dog, Bark, Yip, Bow-wow
    "drilling": (339, 418, 419),  # Dental drill, Power tool, Drill
    "engine_idling": (337, 342, 343, 346),  # Engine, Medium engine, Heavy engine, Idling
    "gun_shot": (421, 422, 425),  # Gunshot, Machine gun, Cap gun
    "jackhammer": (414,),
    "siren": EMERGENCY_CLASSES,
    "street_music": (132, 133),  # Music, Musical instrument
}
EMBEDDING_TENSOR = "global_average_pooling2d/Mean"  # YAMNet's (1, 1024) pooled features
EMBEDDING_SIZE = 1024
FRAMES_PER_WINDOW = 3  # for a 2 s window: offsets 0, 8200, 16400, so the frames cover it end to end


def frame_offsets(n_samples: int) -> np.ndarray:
    """Evenly spaced frame starts from the window's first sample to its last full frame."""
    if n_samples < FRAME_SAMPLES:
        raise ValueError(f"window of {n_samples} samples is shorter than one YAMNet frame ({FRAME_SAMPLES})")
    return np.linspace(0, n_samples - FRAME_SAMPLES, FRAMES_PER_WINDOW).round().astype(int)


def read_class_names(path: Path) -> tuple[str, ...]:
    """Display names from `yamnet_class_map.csv` (index,mid,display_name), in index order."""
    try:
        with path.open(newline="") as stream:
            rows = list(csv.DictReader(stream))
        names = tuple(row["display_name"] for row in sorted(rows, key=lambda row: int(row["index"])))
    except FileNotFoundError:
        raise ModelError(f"{path}: YAMNet class map not found") from None
    except (OSError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise ModelError(f"{path}: not a YAMNet class map ({type(error).__name__}: {error})") from None
    if len(names) != N_CLASSES:
        raise ModelError(f"{path}: YAMNet class map lists {len(names)} classes, expected {N_CLASSES}")
    return names


class YamnetTagger:
    """YAMNet's 521 AudioSet scores for 16 kHz mono float32 audio in [-1, 1], and with `with_embedding` its
    1024-d embedding from the same invoke."""

    def __init__(self, model_path: str | Path, class_map_path: str | Path | None = None,
                 num_threads: int = 1, with_embedding: bool = False) -> None:
        self.path = Path(model_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: YAMNet model file not found")
        self.class_names = read_class_names(Path(class_map_path)) if class_map_path is not None else ()
        # The shipped YAMNet tflite has a static [1, 15600] input: resizing it fails in XNNPACK, so one
        # invoke per frame is the only way (about 2.5 ms each on one core).
        self._interpreter = make_interpreter(self.path, num_threads, keep_all_tensors=with_embedding)
        input_details = self._interpreter.get_input_details()
        if len(input_details) != 1 or list(input_details[0]["shape"]) != [1, FRAME_SAMPLES]:
            raise ModelError(f"{self.path}: input is not one [1, {FRAME_SAMPLES}] waveform; not YAMNet")
        self._input_index = input_details[0]["index"]
        scores = [d for d in self._interpreter.get_output_details() if list(d["shape"]) == [1, N_CLASSES]]
        if len(scores) != 1:
            raise ModelError(f"{self.path}: no [1, {N_CLASSES}] score output; not YAMNet")
        self._output_index = scores[0]["index"]
        self._embedding_index: int | None = None
        if with_embedding:
            found = [d["index"] for d in self._interpreter.get_tensor_details()
                     if d["name"].endswith(EMBEDDING_TENSOR) and list(d["shape"]) == [1, EMBEDDING_SIZE]]
            if len(found) != 1:
                raise ModelError(f"{self.path}: no (1, {EMBEDDING_SIZE}) tensor named *{EMBEDDING_TENSOR}; not YAMNet")
            self._embedding_index = found[0]

    def frame_scores(self, frame: np.ndarray) -> np.ndarray:
        """(15600,) waveform -> (521,) class scores."""
        if frame.shape != (FRAME_SAMPLES,):
            raise ValueError(f"YAMNet frame must have shape ({FRAME_SAMPLES},), got {frame.shape}")
        self._interpreter.set_tensor(self._input_index, frame.astype(np.float32, copy=False)[None, :])
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output_index)[0].copy()

    def window_scores(self, window: np.ndarray) -> np.ndarray:
        """(n,) window -> (521,) per-class max over three frames spanning it: a siren anywhere counts."""
        return np.max([self.frame_scores(window[o : o + FRAME_SAMPLES]) for o in frame_offsets(len(window))],
                      axis=0)

    def window_outputs(self, window: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) window -> (521,) scores, the max over its frames (as `window_scores`), and the (1024,)
        embedding, their mean. Needs `with_embedding`."""
        if self._embedding_index is None:
            raise ValueError("window_outputs needs a YamnetTagger made with with_embedding=True")
        scores, embeddings = [], []
        for offset in frame_offsets(len(window)):
            scores.append(self.frame_scores(window[offset : offset + FRAME_SAMPLES]))
            embeddings.append(self._interpreter.get_tensor(self._embedding_index)[0].copy())
        return np.max(scores, axis=0), np.mean(embeddings, axis=0)

    @staticmethod
    def siren_score(scores: np.ndarray) -> float:
        """(521,) scores -> the strongest of YAMNet's emergency-vehicle and siren classes."""
        return float(scores[list(EMERGENCY_CLASSES)].max())

    @staticmethod
    def urban_scores(scores: np.ndarray) -> np.ndarray:
        """(..., 521) scores -> (..., 10) scores of the UrbanSound8K labels, in `URBAN_CLASSES` order."""
        return np.stack([scores[..., list(classes)].max(axis=-1) for classes in URBAN_CLASSES.values()], axis=-1)
