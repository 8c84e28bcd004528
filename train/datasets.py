"""Finding labelled recordings on disk: an index CSV, a folder per class, or the UrbanSound8K layout.

Every loader returns `Clip`s that carry a `group` (clips cut from one source recording share it) and,
for UrbanSound8K, the official `fold`; splits are made on those, never on windows.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from detector.errors import DetectorError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
EMERGENCY = "emergency"
NON_EMERGENCY = "non_emergency"
SIREN_LABELS = frozenset({"siren", "emergency", "ambulance", "firetruck", "fire_truck", "police"})
FREESOUND_GROUP = re.compile(r"^(?:esc50|us8k)-fs(?P<id>\d+)$")  # ESC-50's and UrbanSound8K's group keys


class DatasetError(DetectorError):
    """A dataset folder or index is missing or malformed."""


@dataclass(frozen=True)
class Clip:
    """One labelled recording (or cut of one)."""

    path: Path
    label: str
    group: str
    fold: int | None = None
    dataset: str = ""


def binary_label(label: str) -> str:
    """Map a source's class name onto the emergency model's two labels."""
    return EMERGENCY if label.lower() in SIREN_LABELS else NON_EMERGENCY


def load_index_csv(csv_path: Path, label_column: str = "label") -> list[Clip]:
    """`path,label[,group][,fold]` (extra columns allowed); paths are relative to the CSV's folder."""
    if not csv_path.is_file():
        raise DatasetError(f"{csv_path}: index CSV not found")
    with csv_path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        raise DatasetError(f"{csv_path}: index CSV has no rows")
    for column in ("path", label_column):
        if column not in rows[0]:
            raise DatasetError(f"{csv_path}: index CSV lacks the column {column!r}")
    root = csv_path.parent
    return [
        Clip(
            path=root / row["path"],
            label=row[label_column],
            group=row.get("group") or row["path"],
            fold=int(row["fold"]) if row.get("fold") else None,
            dataset=row.get("dataset") or "",
        )
        for row in rows
    ]


def load_class_folders(root: Path) -> list[Clip]:
    """`root/<label>/<file>`: each file is its own recording; long files are cut into windows later."""
    if not root.is_dir():
        raise DatasetError(f"{root}: folder not found")
    clips = [
        Clip(path=path, label=path.parent.name, group=f"{path.parent.name}/{path.stem}", dataset=root.name)
        for path in sorted(root.glob("*/*"))
        if path.suffix.lower() in AUDIO_SUFFIXES
    ]
    if not clips:
        raise DatasetError(f"{root}: no audio files in class folders (expected <label>/<file>.wav)")
    return clips


def load_urbansound8k(root: Path) -> list[Clip]:
    """UrbanSound8K: `metadata/UrbanSound8K.csv` + `audio/foldN/`, or the CSV beside `foldN/` folders."""
    candidates = [(root / "metadata" / "UrbanSound8K.csv", root / "audio"), (root / "UrbanSound8K.csv", root)]
    found = next(((metadata, audio) for metadata, audio in candidates if metadata.is_file()), None)
    if found is None:
        raise DatasetError(f"{root}: no metadata/UrbanSound8K.csv (nor UrbanSound8K.csv) found")
    metadata, audio_root = found
    clips = []
    with metadata.open(newline="") as stream:
        for row in csv.DictReader(stream):
            fold = int(row["fold"])
            folder = audio_root / f"fold{fold}"
            path = folder / row["slice_file_name"]
            if not path.exists():
                # the shared copy stores FLAC under the original WAV name's stem
                matches = [folder / (Path(row["slice_file_name"]).stem + s) for s in AUDIO_SUFFIXES]
                path = next((m for m in matches if m.exists()), path)
            clips.append(Clip(path=path, label=row["class"], group=f"us8k-fs{row['fsID']}", fold=fold,
                              dataset="urbansound8k"))
    missing = [clip.path for clip in clips if not clip.path.exists()]
    if missing:
        raise DatasetError(f"{root}: {len(missing)} slices listed in the metadata are missing, e.g. {missing[0]}")
    return clips


def merge_freesound_recordings(clips: Sequence[Clip]) -> list[Clip]:
    """One Freesound recording, one group, whichever dataset cut it.

    ESC-50 and UrbanSound8K both cut their clips from Freesound, and their group keys (`esc50-fsN`,
    `us8k-fsN`) keep the datasets apart, yet two of the ESC-50 car horns here are fold-1 UrbanSound8K
    recordings. Every clip of a Freesound id takes the UrbanSound8K group where there is one, so the
    official fold decides its side of every split.
    """
    group_of_id: dict[str, str] = {}
    for clip in sorted(clips, key=lambda c: c.fold is None):  # UrbanSound8K slices (with folds) first
        if match := FREESOUND_GROUP.match(clip.group):
            group_of_id.setdefault(match["id"], clip.group)
    merged = []
    for clip in clips:
        match = FREESOUND_GROUP.match(clip.group)
        merged.append(dataclasses.replace(clip, group=group_of_id[match["id"]]) if match else clip)
    return merged


def load_datasets(sources: Iterable[Path], label_column: str = "label") -> list[Clip]:
    """Every source's clips, with recordings that several datasets share in one group."""
    return merge_freesound_recordings([clip for source in sources for clip in load_dataset(source, label_column)])


def load_dataset(source: Path, label_column: str = "label") -> list[Clip]:
    """Pick the loader from what `source` is: a CSV, an UrbanSound8K tree, or class folders."""
    if source.suffix.lower() == ".csv":
        return load_index_csv(source, label_column)
    if (source / "metadata" / "UrbanSound8K.csv").is_file() or (source / "UrbanSound8K.csv").is_file():
        return load_urbansound8k(source)
    return load_class_folders(source)
