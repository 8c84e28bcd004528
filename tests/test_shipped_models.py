"""The shipped model files: within the issues' budgets, loadable against their cards, and trained on the
package versions `constraints/train.txt` pins (a fit repeats only on the same versions)."""

from __future__ import annotations

import json
import re
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from detector.config import INSTALL_ROOT
from detector.model import Classifier

MODELS = INSTALL_ROOT / "models"
CONSTRAINTS = INSTALL_ROOT / "constraints" / "train.txt"
# (bytes, multiply-accumulates per window) each issue allows: emergency 512 KB and 20 M, urban 256 KB
BUDGETS = {"emergency": (512 * 1024, 20_000_000), "urban": (256 * 1024, None)}


def pinned_versions(path: Path) -> dict[str, str]:
    """`name==version` lines of a constraints file, names normalised as pip does (`packaging`, PEP 503)."""
    pins = {}
    for line in path.read_text().splitlines():
        if match := re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line.strip()):
            pins[canonicalize_name(match[1])] = match[2]
    return pins


@pytest.mark.parametrize("name", sorted(BUDGETS))
def test_each_shipped_model_fits_its_budget_and_its_card(name: str) -> None:
    model = MODELS / f"{name}.tflite"
    card = json.loads(model.with_suffix(".json").read_text())
    max_bytes, max_macs = BUDGETS[name]
    assert model.stat().st_size <= max_bytes and card["tflite_bytes"] == model.stat().st_size
    if max_macs is not None:
        assert card["macs_per_window"] <= max_macs
    assert Classifier(model).card.name == name  # the runtime's sha256 and audio-settings checks pass


def test_shipped_cards_record_the_pinned_training_versions() -> None:
    pins = pinned_versions(CONSTRAINTS)
    distributions = packages_distributions()  # the module a card names -> the distributions installing it
    recorded = {path.name: card["training"]["environment"] for path in sorted(MODELS.glob("*.json"))
                if "environment" in (card := json.loads(path.read_text())).get("training", {})}
    assert "urban.json" in recorded  # trained since the versions were recorded: the check is never empty
    for card_name, environment in recorded.items():
        for module, version in environment.items():
            if module == "python":
                continue
            pinned = {pins.get(canonicalize_name(dist)) for dist in distributions[module]} - {None}
            assert pinned == {version}, f"{card_name}: {module} {version}, constraints/train.txt pins {pinned}"


def test_pinned_versions_reads_pip_freeze_lines(tmp_path: Path) -> None:
    frozen = tmp_path / "c.txt"
    frozen.write_text("# comment\nscikit-learn==1.9.1\ntensorflow_cpu==2.21.0\nPyYAML==6.0.4\n-e git+x#egg=y\n")
    assert pinned_versions(frozen) == {"scikit-learn": "1.9.1", "tensorflow-cpu": "2.21.0", "pyyaml": "6.0.4"}
