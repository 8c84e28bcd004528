"""The systemd unit and the installer: valid for systemd, hardened, consistent with the config defaults."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from detector.config import Config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
UNIT = DEPLOY / "siren-detector.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")


def unit_with_local_exec(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this checkout's interpreter (/opt is not installed here)."""
    text = re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable} -m detector.cli", UNIT.read_text(), flags=re.M)
    path = tmp_path / UNIT.name
    path.write_text(text)
    return path


@needs_systemd
def test_unit_verifies_clean(tmp_path: Path) -> None:
    run = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit_with_local_exec(tmp_path))], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout + run.stderr == "", run.stdout + run.stderr


@needs_systemd
def test_unit_exposure_is_at_most_3(tmp_path: Path) -> None:
    run = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", str(unit_with_local_exec(tmp_path))],
                         capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout)
    assert match, run.stdout + run.stderr
    assert float(match.group(1)) <= 3.0


def test_unit_has_watchdog_notify_and_spool_where_the_config_expects_it() -> None:
    settings = dict(line.split("=", 1) for line in UNIT.read_text().splitlines() if "=" in line and
                    not line.startswith("#"))
    assert settings["Type"] == "notify" and int(settings["WatchdogSec"]) > 0
    assert settings["Restart"] == "on-failure" and settings["NoNewPrivileges"] == "yes"
    assert settings["ProtectSystem"] == "strict" and settings["DeviceAllow"] == "char-alsa rw"
    assert Config().mqtt.spool_dir == Path("/var/lib") / settings["StateDirectory"] / "spool"
    assert "--config /etc/siren-detector/config.yaml" in settings["ExecStart"]


def test_install_script_parses() -> None:
    run = subprocess.run(["bash", "-n", str(DEPLOY / "install.sh")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_daemon_tells_systemd_ready_and_pings_the_watchdog(tmp_path: Path) -> None:
    import os
    import socket

    import yaml

    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(0.5)
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"audio": {"source": "synthetic", "realtime": True,
                                                    "synthetic": {"duration_s": 5}},
                                          "mqtt": {"enabled": False}}))
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
        run = subprocess.run([sys.executable, "-m", "detector.cli", "run", "--config", str(config)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        received = []
        while True:
            try:
                received.append(notify.recv(1024).decode())
            except TimeoutError:
                break
    assert received[0] == "READY=1"
    assert received.count("WATCHDOG=1") >= 2  # due every 0.5 s over 5 s of real-time audio; a loaded CI box is slow
    assert received[-1] == "STOPPING=1"
