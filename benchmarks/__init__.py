"""Speed, memory and latency of the detector, measured side by side with the tutorial pipeline.

Run them all with `.venv/bin/python -m benchmarks` (see `benchmarks/__main__.py`); results go to
`benchmarks/results/`. Nothing here is asserted in tests: these are measurements, not pass/fail checks.
"""

import detector  # noqa: F401  (first: it limits OpenBLAS to one thread before numpy loads, as in the daemon)
