"""The tutorial-style live pipeline, for the live-cost comparison: TensorFlow resident, Keras per window.

`python -m benchmarks.tutorial_live FILE SECONDS` replays FILE in real time through the same source and
windowing as the daemon, scoring every window with scipy's spectrogram and Keras `model.predict`, as the
tutorials' live demos do. It prints one line when it is ready, so the measurement can start after start-up.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from benchmarks.per_window import tutorial_spectrogram
from detector.sources import FileSource
from detector.windows import StreamWindower, WindowSpec


def main(path: Path, seconds: float) -> None:
    from train.models import ARCHITECTURES

    windower = StreamWindower(WindowSpec.from_seconds(16000, 2.0, 1.0))
    model = None
    source = FileSource(path, 16000, 0.1, realtime=True)
    source.open()
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunk = source.read(0.2)
        if chunk is None:
            continue
        for _, window in windower.push(chunk.samples):
            matrix = tutorial_spectrogram(window)
            if model is None:
                model = ARCHITECTURES["logspec_cnn"].build(matrix.shape, 2)
            model.predict(matrix[None], verbose=0)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
