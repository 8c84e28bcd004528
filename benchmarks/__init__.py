"""Speed, memory and latency of the detector, measured side by side with the tutorial pipeline.

Run them all with `.venv/bin/python -m benchmarks` (see `benchmarks/__main__.py`); results go to
`benchmarks/results/`. Nothing here is asserted in tests: these are measurements, not pass/fail checks.
"""

import os

import detector  # noqa: F401  (first: it limits OpenBLAS to one thread before numpy loads, as in the daemon)

# TensorFlow (the tutorial pipelines, the frontier's exports) on one thread, set before it first loads
# and inherited by the tutorial-style live process, whichever benchmark touches it first
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
