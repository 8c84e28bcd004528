"""A private MQTT broker on a free loopback port, for the demo and the tests.

mosquitto when it is installed (what a deployment runs), otherwise amqtt's embedded broker in a thread
(the `demo` extra), so the built-in default works on a machine without root to apt-install mosquitto.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from detector.errors import DetectorError

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next((p for p in MOSQUITTO_PATHS if Path(p).is_file()), None)


def wait_for_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


class LocalBroker:
    """Start with `start()`; `stop(kill=...)` and `start()` again keep the port (for outage tests)."""

    def __init__(self, port: int | None = None, embedded: bool | None = None, extra_config: str = "",
                 persistent: bool = False) -> None:
        """`persistent`: mosquitto keeps retained messages and sessions across its restarts (saved every second)."""
        self.port = port or free_port()
        self.persistent = persistent
        self.mosquitto = None if embedded else find_mosquitto()
        if embedded is False and self.mosquitto is None:
            raise DetectorError("mosquitto is not installed (apt-get install mosquitto)")
        self.extra_config = extra_config
        self._directory = Path(tempfile.mkdtemp(prefix="siren-broker-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def kind(self) -> str:
        return "mosquitto" if self.mosquitto else "embedded amqtt"

    def start(self) -> LocalBroker:
        if self.mosquitto:
            self._start_mosquitto()
        else:
            self._start_embedded()
        if not wait_for_port(self.port, 10.0):
            self.stop(kill=True)
            raise DetectorError(f"the {self.kind} broker did not start on port {self.port}")
        return self

    def _start_mosquitto(self) -> None:
        config = self._directory / "mosquitto.conf"
        persistence = (f"persistence true\npersistence_location {self._directory}/\nautosave_interval 1\n"
                       if self.persistent else "persistence false\n")
        # started by root, mosquitto would drop to its own user, which cannot read this private directory
        user = "user root\n" if os.geteuid() == 0 else ""
        config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{user}{persistence}"
                          f"{self.extra_config}")
        log = open(self._directory / "mosquitto.log", "ab")  # noqa: SIM115 (closed with the process)
        self._process = subprocess.Popen([str(self.mosquitto), "-c", str(config)], stdout=log, stderr=log)
        log.close()

    def _start_embedded(self) -> None:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise DetectorError("no MQTT broker: install mosquitto, or the embedded one with "
                                "pip install 'siren-detector[demo]'") from None
        ready = threading.Event()
        config: dict[str, Any] = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "sys_interval": 0,
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        def serve() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            broker = Broker(config, loop=loop)
            loop.run_until_complete(broker.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(broker.shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="embedded-broker", daemon=True)
        self._thread.start()
        ready.wait(10.0)

    def stop(self, kill: bool = False) -> None:
        """Stop the broker: SIGKILL with `kill`, else a clean stop."""
        if self._process is not None:
            if kill:
                self._process.kill()
            else:
                self._process.terminate()
            self._process.wait(timeout=10)
            self._process = None
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = None
            self._thread = None

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        shutil.rmtree(self._directory, ignore_errors=True)
