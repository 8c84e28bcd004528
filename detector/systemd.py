"""sd_notify without a dependency: READY, WATCHDOG and STATUS datagrams to $NOTIFY_SOCKET.

The worker loop sends WATCHDOG=1 itself, so a stalled worker stops the pings and systemd restarts it.
Outside systemd (no NOTIFY_SOCKET) every call does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    def __init__(self) -> None:
        address = os.environ.get("NOTIFY_SOCKET")
        self._address = None
        if address:
            self._address = "\0" + address[1:] if address.startswith("@") else address
        usec = os.environ.get("WATCHDOG_USEC")
        self.watchdog_interval_s = int(usec) / 2e6 if usec and usec.isdigit() else None

    def _send(self, text: str) -> None:
        if self._address is None:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock, contextlib.suppress(OSError):
            # never block the worker loop: a full queue (10 datagrams by default) drops this one;
            # OSError also covers systemd gone (shutdown), nothing to tell
            sock.setblocking(False)
            sock.sendto(text.encode(), self._address)

    def ready(self) -> None:
        self._send("READY=1")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def stopping(self) -> None:
        self._send("STOPPING=1")
