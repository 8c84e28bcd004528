"""The systemd unit and the installer: valid for systemd, hardened, consistent with the config defaults."""

from __future__ import annotations

import contextlib
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
    """Read as systemd does, while the daemon runs: the socket queues only 10 datagrams."""
    import os
    import socket
    import threading

    import yaml

    address = str(tmp_path / "notify")
    received: list[str] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        notify.settimeout(0.5)
        done = threading.Event()

        def listen() -> None:
            while not done.is_set():
                with contextlib.suppress(TimeoutError):
                    received.append(notify.recv(1024).decode())

        listener = threading.Thread(target=listen)
        listener.start()
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump({"audio": {"source": "synthetic", "realtime": True,
                                                    "synthetic": {"duration_s": 5}},
                                          "mqtt": {"enabled": False}}))
        env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
        try:
            run = subprocess.run([sys.executable, "-m", "detector.cli", "run", "--config", str(config)], env=env,
                                 capture_output=True, text=True, timeout=60)
        finally:
            done.set()
            listener.join()
        with contextlib.suppress(TimeoutError):  # what the daemon sent after the listener's last read
            while True:
                received.append(notify.recv(1024).decode())
        assert run.returncode == 0, run.stderr
    assert received[0] == "READY=1"
    assert received.count("WATCHDOG=1") >= 2  # due every 0.5 s over 5 s of real-time audio; a loaded CI box is slow
    assert received[-1] == "STOPPING=1"


def test_a_systemd_that_does_not_read_never_blocks_the_daemon(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """More notifications than the socket queues (10): the extra ones are dropped, none waits."""
    import socket
    import threading

    from detector.systemd import Notifier

    address = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(address)
        monkeypatch.setenv("NOTIFY_SOCKET", address)
        notifier = Notifier()
        sender = threading.Thread(target=lambda: [notifier.watchdog() for _ in range(50)], daemon=True)
        sender.start()
        sender.join(timeout=5)
        assert not sender.is_alive()
        notify.settimeout(0.1)
        assert notify.recv(1024) == b"WATCHDOG=1"  # the queued ones arrive
