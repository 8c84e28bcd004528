"""The MQTT sink: availability with a last will, everything else through the spool, delivered in order.

paho's network thread connects and reconnects with backoff (the first connection too); a drain thread
publishes the spool's oldest message, waits for the broker's acknowledgement and only then removes it, so
a message is delivered at least once and in order, never lost while the broker is away. The worker only
ever appends to the spool: a broker outage cannot stall detection.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from detector import __version__
from detector.config import MqttConfig, read_password
from detector.errors import ConfigError
from detector.spool import DROPPABLE_KINDS, Message, Spool

log = logging.getLogger(__name__)

ACK_TIMEOUT_S = 10.0
FLUSH_TIMEOUT_S = 5.0  # at shutdown: how long queued messages get, in all, to reach a connected broker


class MqttSink:
    def __init__(self, config: MqttConfig, device_id: str, spool: Spool) -> None:
        self.config = config
        self.device_id = device_id
        self.prefix = f"{config.topic_prefix}/{device_id}"
        self.spool = spool
        self.connects = 0
        self.disconnects = 0
        self._connected = threading.Event()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._drain_thread = threading.Thread(target=self._drain, name="mqtt-drain", daemon=True)
        self._last_state: Message | None = None  # re-published on reconnect: a restarted broker may have lost it
        self.client = self._make_client()

    def topic(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _make_client(self) -> mqtt.Client:
        config = self.config
        protocol = mqtt.MQTTv5 if config.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=config.client_id or f"siren-detector-"
                             f"{self.device_id}", protocol=protocol)
        if log.isEnabledFor(logging.DEBUG):  # paho repeats every failed reconnect as an ERROR; ours say it once
            client.enable_logger(logging.getLogger("paho"))
        client.will_set(self.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(max(1, round(config.reconnect_min_s)), max(1, round(config.reconnect_max_s)))
        if config.username is not None:
            client.username_pw_set(config.username, read_password(config))
        if config.tls is not None:
            self._set_tls(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        return client

    def _set_tls(self, client: mqtt.Client) -> None:
        tls = self.config.tls
        assert tls is not None
        for key, path in (("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)):
            if path is not None and not path.is_file():
                raise ConfigError(f"mqtt.tls.{key}: no such file {path}")
        try:
            client.tls_set(ca_certs=None if tls.ca_file is None else str(tls.ca_file),
                           certfile=None if tls.cert_file is None else str(tls.cert_file),
                           keyfile=None if tls.key_file is None else str(tls.key_file),
                           cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (ssl.SSLError, ValueError, OSError) as error:
            raise ConfigError(f"mqtt.tls: the CA file, certificate or key cannot be used ({error})") from None
        client.tls_insecure_set(False)

    def start(self) -> None:
        """Try the broker once here, to say why it fails; paho's thread then keeps (re)connecting with backoff."""
        where = f"{self.config.host}:{self.config.port}"
        try:
            self.client.connect(self.config.host, self.config.port, keepalive=self.config.keepalive_s)
        except ssl.SSLCertVerificationError as error:
            log.error("broker %s: its TLS certificate does not verify (%s); not connecting until it does", where,
                      error.verify_message or error)
        except (OSError, ssl.SSLError) as error:
            log.warning("broker %s unreachable (%s); retrying with backoff, events are spooled", where, error)
        self.client.loop_start()
        self._drain_thread.start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def status(self) -> dict[str, Any]:
        return {"connected": self.connected, "connects": self.connects, "disconnects": self.disconnects,
                "spooled": len(self.spool), "spool_dropped": dict(self.spool.dropped)}

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s:%d refused the connection: %s", self.config.host, self.config.port, reason)
            return
        self.connects += 1
        log.info("connected to broker %s:%d", self.config.host, self.config.port)
        client.publish(self.topic("availability"), "online", qos=1, retain=True)
        if self._last_state is not None and self.spool.count("state") == 0:
            client.publish(self.topic("state"), self._last_state.encoded(), qos=1, retain=True)
        if self.config.home_assistant_discovery:
            self._publish_discovery(client)
        self._connected.set()
        self._wake.set()

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
        if self._connected.is_set() and not self._stopping.is_set():
            self.disconnects += 1
            log.warning("lost the broker (%s); events are spooled until it is back", reason)
        self._connected.clear()

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        log.warning("cannot reach broker %s:%d; retrying with backoff", self.config.host, self.config.port)

    def _publish_discovery(self, client: mqtt.Client) -> None:
        unique = f"siren_detector_{self.device_id}"
        config = {
            "name": "Emergency siren",
            "unique_id": unique,
            "device_class": "sound",
            "state_topic": self.topic("state"),
            "value_template": "{{ 'ON' if value_json.active else 'OFF' }}",
            "json_attributes_topic": self.topic("state"),
            "availability_topic": self.topic("availability"),
            "device": {"identifiers": [unique], "name": f"Siren detector {self.device_id}",
                       "sw_version": __version__, "manufacturer": "siren-detector"},
        }
        client.publish(f"{self.config.home_assistant_prefix}/binary_sensor/{unique}/config", json.dumps(config),
                       qos=1, retain=True)

    def submit(self, message: Message) -> None:
        """Queue a message for delivery. Health and scores skip the disk while the broker is there."""
        if message.kind in DROPPABLE_KINDS and self.connected and len(self.spool) == 0:
            self.client.publish(self.topic(message.topic), message.encoded(), qos=message.qos, retain=message.retain)
            return
        self.spool.put(message)
        self._wake.set()

    def _publish_acknowledged(self, message: Message) -> bool:
        info = self.client.publish(self.topic(message.topic), message.encoded(), qos=message.qos,
                                   retain=message.retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return False
        deadline = time.monotonic() + ACK_TIMEOUT_S
        while not info.is_published():
            if not self.connected or time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _drain(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while self.connected:
                oldest = self.spool.peek()
                if oldest is None:
                    break
                number, message = oldest
                if not self._publish_acknowledged(message):
                    break
                self.spool.remove(number)
                if message.kind == "state":
                    self._last_state = message

    def flush(self, until: float) -> None:
        """While connected, wait until the spool is empty or `time.monotonic()` reaches `until` (a deadline, so
        that several flushes at shutdown share one budget)."""
        if not self.connected:
            return
        while len(self.spool) and time.monotonic() < until:
            self._wake.set()
            time.sleep(0.02)

    def stop(self, flush_until: float) -> None:
        """Deliver what can be delivered by `flush_until`, say `offline`, disconnect. Undelivered events stay
        spooled."""
        self.flush(flush_until)
        self._stopping.set()
        self._wake.set()
        self._drain_thread.join(timeout=ACK_TIMEOUT_S + 1)
        if self.connected:
            info = self.client.publish(self.topic("availability"), "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=2.0)
            except (RuntimeError, ValueError):
                log.warning("could not publish offline before exit; the last will says it instead")
        self.client.disconnect()
        self.client.loop_stop()
        if len(self.spool):
            log.warning("%d messages not delivered; they stay spooled for the next start", len(self.spool))
