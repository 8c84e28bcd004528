"""Where the tests find YAMNet: the user supplies it (never shipped); CI has it in ../shared/models."""

import pytest

from detector.config import INSTALL_ROOT

YAMNET = INSTALL_ROOT.parent / "shared" / "models" / "yamnet.tflite"
needs_yamnet = pytest.mark.skipif(not YAMNET.is_file(), reason="YAMNet is supplied by the user (../shared in CI)")
