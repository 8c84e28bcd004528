"""The daemon's configuration: one YAML file parsed once into frozen dataclasses.

Every key has a default here and a comment in `configs/`; an unknown key, a value of the wrong type or a
value out of range is a ConfigError naming the key (`mqtt.port: ...`), so a typo on one intersection's
config never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from detector.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/siren-detector/config.yaml")
INSTALL_ROOT = Path(__file__).resolve().parent.parent  # where the shipped models/ and configs/ live


@dataclass(frozen=True)
class SyntheticConfig:
    """A generated street scene with sirens at random (seeded) times, for demos and tests."""

    duration_s: float | None = 120.0  # None: endless
    seed: int = 7
    sirens: bool = True  # False: traffic and wind only (a scene that must give no event)
    segment_s: float = 300.0  # generated this much at a time
    unique_segments: int | None = None  # replay this many distinct segments in random order; None: all new

    def check(self) -> None:
        _require(self.duration_s is None or self.duration_s >= 4.0, "audio.synthetic.duration_s",
                 "must be at least 4 seconds (or null for endless)")
        _require(30.0 <= self.segment_s <= 3600.0, "audio.synthetic.segment_s", "must be between 30 and 3600 seconds")
        _require(self.unique_segments is None or self.unique_segments >= 1, "audio.synthetic.unique_segments",
                 "must be at least 1 (or null)")


@dataclass(frozen=True)
class AudioConfig:
    source: Literal["microphone", "file", "synthetic"] = "microphone"
    device: str | int | None = None
    sample_rate: int | None = None  # microphone: rate to open the device at; None = 16000, else its default
    channels: int = 1
    block_s: float = 0.1
    file: Path | None = None
    realtime: bool = True
    buffer_s: float = 30.0
    stall_timeout_s: float = 5.0
    reopen_backoff_max_s: float = 30.0
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)

    def check(self) -> None:
        _require(self.source != "file" or self.file is not None, "audio.file", "is required when source is file")
        _require(1 <= self.channels <= 32, "audio.channels", "must be between 1 and 32")
        _require(self.sample_rate is None or 8000 <= self.sample_rate <= 192000, "audio.sample_rate",
                 "must be between 8000 and 192000")
        _require(0.01 <= self.block_s <= 1.0, "audio.block_s", "must be between 0.01 and 1.0 seconds")
        _require(self.buffer_s >= 5.0, "audio.buffer_s", "must be at least 5 seconds")
        _require(self.stall_timeout_s >= 0.5, "audio.stall_timeout_s", "must be at least 0.5 seconds")
        _require(self.reopen_backoff_max_s >= 1.0, "audio.reopen_backoff_max_s", "must be at least 1 second")
        self.synthetic.check()


@dataclass(frozen=True)
class DetectionConfig:
    """The model and the event tracker that turns its per-window scores into start/end events."""

    model: Path = Path("models/emergency.tflite")
    hop_s: float = 1.0
    # None: the value measured for the model and written in its card ("tracker"), else the card's threshold,
    # half of it, 2 and 3
    on_threshold: float | None = None
    off_threshold: float | None = None
    onset_windows: int | None = None  # k: an event starts when k of the last n windows reach on_threshold
    onset_of: int | None = None  # n
    instant_threshold: float | None = None  # one window reaching it starts an event; None: the card's (else off)
    offset_windows: int = 2  # m: it ends after m windows in a row below off_threshold
    min_event_s: float = 3.0
    refractory_s: float = 2.0
    publish_scores: bool = False
    models: tuple[Path, ...] = ()  # more models on the same windows (the urban tagger): events on <p>/sound
    yamnet: Path | None = None  # a YAMNet .tflite the user supplies (never shipped); None = not used
    yamnet_confirm: bool = False  # YAMNet must confirm a siren onset (off: it vetoed 17 of 50 generated sirens)
    yamnet_confirm_threshold: float | None = None  # None: the card's measured value, else 0.2
    yamnet_urban: bool = True  # YAMNet also tags the urban labels, events on <p>/sound
    # the shipped head on YAMNet's embedding that tags them (67.6 % on held-out folds); null: YAMNet's own
    # AudioSet classes mapped onto the labels (62.9 %)
    yamnet_head: Path | None = Path("models/yamnet_head.json")
    yamnet_urban_threshold: float = 0.5

    def check(self) -> None:
        _require(len(self.models) <= 4, "detection.models", "at most 4 further models")
        _require(self.yamnet_confirm_threshold is None or 0.0 < self.yamnet_confirm_threshold < 1.0,
                 "detection.yamnet_confirm_threshold", "must be between 0 and 1 (or null for the model card's)")
        _require(0.0 < self.yamnet_urban_threshold < 1.0, "detection.yamnet_urban_threshold", "must be between 0 and 1")
        _require(0.25 <= self.hop_s <= 2.0, "detection.hop_s", "must be between 0.25 and 2.0 seconds")
        for key in ("on_threshold", "off_threshold", "instant_threshold"):
            value = getattr(self, key)
            _require(value is None or 0.0 < value < 1.0, f"detection.{key}", "must be between 0 and 1")
        if self.on_threshold is not None and self.off_threshold is not None:
            _require(self.off_threshold <= self.on_threshold, "detection.off_threshold",
                     "must not exceed detection.on_threshold")
        _require(self.onset_of is None or 1 <= self.onset_of <= 10, "detection.onset_of", "must be between 1 and 10")
        _require(self.onset_windows is None or 1 <= self.onset_windows <= (self.onset_of or 10),
                 "detection.onset_windows", "must be at least 1 and at most detection.onset_of")
        _require(self.offset_windows >= 1, "detection.offset_windows", "must be at least 1")
        _require(self.min_event_s >= 0.0, "detection.min_event_s", "must not be negative")
        _require(self.refractory_s >= 0.0, "detection.refractory_s", "must not be negative")


@dataclass(frozen=True)
class TlsConfig:
    ca_file: Path | None = None  # None with TLS on: the system's CA store
    cert_file: Path | None = None  # client certificate (optional)
    key_file: Path | None = None


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = True
    host: str = "localhost"
    port: int = 1883
    topic_prefix: str = "sirens"
    device_id: str | None = None  # None: the hostname
    client_id: str | None = None  # None: siren-detector-<device_id>
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive_s: int = 30
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    tls: TlsConfig | None = None
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 60.0
    spool_dir: Path | None = Path("/var/lib/siren-detector/spool")  # None: in memory only
    spool_max_messages: int = 10000
    home_assistant_discovery: bool = False
    home_assistant_prefix: str = "homeassistant"

    def check(self) -> None:
        _require(bool(self.host), "mqtt.host", "must not be empty")
        _require(1 <= self.port <= 65535, "mqtt.port", "must be between 1 and 65535")
        for key in ("topic_prefix", "device_id"):
            value = getattr(self, key)
            _require(value is None or (value and not any(c in value for c in "+#") and not value.startswith("/")
                                       and not value.endswith("/")),
                     f"mqtt.{key}", "must be a non-empty topic level without +, # or a leading/trailing /")
        _require(5 <= self.keepalive_s <= 3600, "mqtt.keepalive_s", "must be between 5 and 3600")
        _require(0.1 <= self.reconnect_min_s <= self.reconnect_max_s, "mqtt.reconnect_min_s",
                 "must be at least 0.1 and at most mqtt.reconnect_max_s")
        _require(self.spool_max_messages >= 10, "mqtt.spool_max_messages", "must be at least 10")
        _require(self.password_file is None or self.password_env is None, "mqtt.password_file",
                 "give either mqtt.password_file or mqtt.password_env, not both")
        _require(self.username is not None or (self.password_file is None and self.password_env is None),
                 "mqtt.username", "is required when a password is configured")
        if self.tls is not None:
            _require((self.tls.cert_file is None) == (self.tls.key_file is None), "mqtt.tls.key_file",
                     "mqtt.tls.cert_file and mqtt.tls.key_file go together")


@dataclass(frozen=True)
class Config:
    audio: AudioConfig = field(default_factory=AudioConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    health_interval_s: float = 30.0
    stdout: bool = False  # also print every message as a JSON line on stdout
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def check(self) -> None:
        self.audio.check()
        self.detection.check()
        self.mqtt.check()
        _require(1.0 <= self.health_interval_s <= 3600, "health_interval_s", "must be between 1 and 3600 seconds")


def _require(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {problem}")


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _convert(value: Any, hint: Any, key: str) -> Any:
    """`value` as type `hint`, or ConfigError naming `key`."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{key}: must not be null")
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, key)
            except ConfigError as error:
                errors.append(error)
        raise errors[-1]
    if origin is Literal:
        allowed = typing.get_args(hint)
        if str(value) in allowed:
            return str(value)
        raise ConfigError(f"{key}: {_describe(value)} is not one of {', '.join(allowed)}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    if origin is tuple:  # tuple[X, ...]: a YAML list
        if not isinstance(value, list):
            raise ConfigError(f"{key}: {_describe(value)} is not a list")
        item = typing.get_args(hint)[0]
        return tuple(_convert(element, item, f"{key}[{index}]") for index, element in enumerate(value))
    if value is None:
        raise ConfigError(f"{key}: must not be null")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {_describe(value)} is not true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: {_describe(value)} is not a whole number")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
            return float(value)
        raise ConfigError(f"{key}: {_describe(value)} is not a number")
    if hint is str:
        if isinstance(value, str) and value:
            return value
        raise ConfigError(f"{key}: {_describe(value)} is not a non-empty string")
    if hint is Path:
        if isinstance(value, str) and value:
            return Path(value).expanduser()
        raise ConfigError(f"{key}: {_describe(value)} is not a path")
    raise TypeError(f"no conversion for {hint}")  # a programming error, not a user's


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: must be a mapping of keys to values, not {_describe(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            where = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(f"{where}: unknown key (known here: {', '.join(sorted(names))})")
    values = {key: _convert(value, hints[key], f"{prefix}.{key}" if prefix else key) for key, value in data.items()}
    return cls(**values)


def parse_config(data: Any) -> Config:
    """A checked Config from the YAML document's data (None or {} gives every default)."""
    config = _build(Config, data, "")
    config.check()
    return config


def load_config(path: str | Path) -> Config:
    """Read and check a YAML config file; every problem is one ConfigError line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error.__class__.__name__})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: not valid YAML{where} ({problem})") from None
    try:
        return parse_config(data)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def check_files(config: Config) -> None:
    """Every file the config names exists: a typo in a path is reported with its key before the daemon starts."""
    detection = config.detection
    named: list[tuple[str, Path | None]] = [("detection.model", resolve_path(detection.model)),
                                            *((f"detection.models[{i}]", resolve_path(model))
                                              for i, model in enumerate(detection.models)),
                                            ("detection.yamnet", detection.yamnet)]
    if detection.yamnet is not None and detection.yamnet_urban and detection.yamnet_head is not None:
        named.append(("detection.yamnet_head", resolve_path(detection.yamnet_head)))
    if config.audio.source == "file":
        named.append(("audio.file", config.audio.file))
    if config.mqtt.enabled:
        named.append(("mqtt.password_file", config.mqtt.password_file))
        if config.mqtt.tls is not None:
            tls = config.mqtt.tls
            named += [(f"mqtt.tls.{key}", getattr(tls, key)) for key in ("ca_file", "cert_file", "key_file")]
    for key, path in named:
        if path is not None and not path.is_file():
            raise ConfigError(f"{key}: no such file {path}")


def resolve_path(path: Path) -> Path:
    """A configured relative path: from the working directory if it exists there, else the installation."""
    if path.is_absolute() or path.exists():
        return path
    installed = INSTALL_ROOT / path
    return installed if installed.exists() else path


def read_password(config: MqttConfig) -> str | None:
    """The MQTT password from its file or environment variable; never logged or printed."""
    if config.password_file is not None:
        try:
            return config.password_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(f"mqtt.password_file: cannot read {config.password_file} "
                              f"({error.strerror or error.__class__.__name__})") from None
    if config.password_env is not None:
        value = os.environ.get(config.password_env)
        if value is None:
            raise ConfigError(f"mqtt.password_env: environment variable {config.password_env} is not set")
        return value
    return None


def describe_config(config: Config) -> str:
    """The effective configuration as YAML, for check-config: every key, passwords never included."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, tuple):
            return [plain(item) for item in value]
        return value

    return yaml.safe_dump(plain(config), sort_keys=False)
