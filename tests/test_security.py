"""TLS and passwords against a mosquitto configured for them, with certificates the test makes (trustme)."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import trustme
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from detector.broker import LocalBroker, find_mosquitto

USER, PASSWORD = "intersection-17", "correct horse battery staple"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed (.ci/run installs it)")
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = ca.issue_cert("localhost", "127.0.0.1")
    server.private_key_and_cert_chain_pem.write_to_path(str(directory / "server.pem"))
    client = ca.issue_cert("siren-detector")
    client.cert_chain_pems[0].write_to_path(str(directory / "client.crt"))
    client.private_key_pem.write_to_path(str(directory / "client.key"))
    trustme.CA().cert_pem.write_to_path(str(directory / "other-ca.pem"))
    (directory / "password").write_text(PASSWORD + "\n")
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(directory / "passwd"), USER, PASSWORD], check=True)
    extra = (f"cafile {directory / 'ca.pem'}\ncertfile {directory / 'server.pem'}\nkeyfile {directory / 'server.pem'}\n"
             f"require_certificate true\npassword_file {directory / 'passwd'}\nallow_anonymous false\n")
    broker = LocalBroker(embedded=False, extra_config=extra)
    broker.start()
    yield broker, directory
    broker.stop()


def run_daemon(tmp_path: Path, port: int, mqtt_config: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "audio": {"source": "synthetic", "realtime": False, "synthetic": {"duration_s": 12, "seed": 3}},
        "mqtt": {"host": "localhost", "port": port, "device_id": "tls", "spool_dir": str(tmp_path / "spool"),
                 **mqtt_config},
        "log_level": "DEBUG",
    }))
    return subprocess.run([sys.executable, "-m", "detector.cli", "run", "--config", str(config)], capture_output=True,
                          text=True, timeout=120)


def subscribe(port: int, directory: Path) -> tuple[mqtt.Client, list[tuple[str, str]], threading.Event]:
    received: list[tuple[str, str]] = []
    ready = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.tls_set(ca_certs=str(directory / "ca.pem"), certfile=str(directory / "client.crt"),
                   keyfile=str(directory / "client.key"), cert_reqs=ssl.CERT_REQUIRED)
    client.username_pw_set(USER, PASSWORD)
    client.on_connect = lambda c, *_: c.subscribe("sirens/tls/#", qos=1)
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = lambda _c, _u, m: received.append((m.topic, m.payload.decode()))
    client.connect("localhost", port)
    client.loop_start()
    assert ready.wait(5.0)
    return client, received, ready


def test_tls_with_client_certificate_and_password_file(tls_broker: Any, tmp_path: Path) -> None:
    broker, directory = tls_broker
    client, received, _ready = subscribe(broker.port, directory)
    run = run_daemon(tmp_path, broker.port, {
        "username": USER, "password_file": str(directory / "password"),
        "tls": {"ca_file": str(directory / "ca.pem"), "cert_file": str(directory / "client.crt"),
                "key_file": str(directory / "client.key")}})
    client.disconnect()
    client.loop_stop()
    assert run.returncode == 0, run.stderr
    assert ("sirens/tls/availability", "online") in received
    assert any(topic == "sirens/tls/health" and json.loads(payload)["broker"]["connected"]
               for topic, payload in received)
    assert PASSWORD not in run.stdout + run.stderr  # DEBUG logging, paho's included


def test_broker_certificate_that_does_not_verify_is_refused(tls_broker: Any, tmp_path: Path) -> None:
    broker, directory = tls_broker
    run = run_daemon(tmp_path, broker.port, {
        "username": USER, "password_file": str(directory / "password"),
        "tls": {"ca_file": str(directory / "other-ca.pem"), "cert_file": str(directory / "client.crt"),
                "key_file": str(directory / "client.key")}})
    assert run.returncode == 0, run.stderr  # the scene ended; the daemon never talked to that broker
    assert "TLS certificate does not verify" in run.stderr and "Traceback" not in run.stderr
    assert list((tmp_path / "spool").glob("*.json"))  # what it had to say waits for a broker it can trust
    assert PASSWORD not in run.stdout + run.stderr


def test_wrong_password_is_refused_and_not_logged(tls_broker: Any, tmp_path: Path) -> None:
    broker, directory = tls_broker
    (tmp_path / "wrong").write_text("not-the-password")
    run = run_daemon(tmp_path, broker.port, {
        "username": USER, "password_file": str(tmp_path / "wrong"),
        "tls": {"ca_file": str(directory / "ca.pem"), "cert_file": str(directory / "client.crt"),
                "key_file": str(directory / "client.key")}})
    assert run.returncode == 0, run.stderr
    assert "refused the connection" in run.stderr and "not-the-password" not in run.stdout + run.stderr


def test_check_config_never_prints_the_password(tls_broker: Any, tmp_path: Path) -> None:
    _broker, directory = tls_broker
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"mqtt": {"username": USER, "password_file": str(directory / "password"),
                                               "tls": {"ca_file": str(directory / "ca.pem")}}}))
    run = subprocess.run([sys.executable, "-m", "detector.cli", "check-config", str(config)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert PASSWORD not in run.stdout + run.stderr and "password_file" in run.stdout
