"""`siren-detector`: the command line. Errors the user can fix are one line on stderr and exit 1 or 2."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from detector import __version__
from detector.classify import classify_or_error, clip_labels, score_names
from detector.config import (
    DEFAULT_CONFIG_PATH,
    INSTALL_ROOT,
    DetectionConfig,
    check_files,
    describe_config,
    load_config,
    read_password,
)
from detector.errors import ConfigError, DetectorError, ModelError

DEFAULT_MODEL = INSTALL_ROOT / "models" / "emergency.tflite"
DEMO_CONFIG_PATH = INSTALL_ROOT / "configs" / "demo.yaml"


def _print_human(result: dict, model_names: list[str], names: list[list[str]]) -> None:
    if "error" in result:
        print(f"{result['file']}: error: {result['error']}")
        return
    print(f"{result['file']}: {result['duration_s']:.1f} s, {len(result['windows'])} windows, "
          f"{len(result['events'])} events")
    for model_name, (label, mean) in zip(model_names, clip_labels(result["windows"], names), strict=True):
        print(f"  clip {model_name}: {label} (mean score {mean:.2f})")
    for event in result["events"]:
        print(f"  {event['label']:<14} {event['start_s']:8.1f} s – {event['end_s']:8.1f} s  "
              f"confidence {event['confidence']:.2f}")


def cmd_classify(args: argparse.Namespace) -> int:
    from detector.daemon import SAMPLE_RATE, WINDOW_S
    from detector.scoring import Scorer

    if args.model:
        detection = DetectionConfig(model=args.model[0], models=tuple(args.model[1:]))
    elif args.config:
        detection = load_config(args.config).detection
    else:
        detection = DetectionConfig(model=DEFAULT_MODEL)
    scorer = Scorer(detection, SAMPLE_RATE, WINDOW_S, "--model" if args.model else "detection.models")
    failed = False
    model_names, names = [model.identity.name for model in scorer.models], score_names(scorer.models)
    for path in args.files:
        result = classify_or_error(Path(path), scorer, detection)
        failed |= "error" in result
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            _print_human(result, model_names, names)
    return 1 if failed else 0


def cmd_run(args: argparse.Namespace) -> int:
    from detector.daemon import Daemon

    config = load_config(args.config)
    setup_logging(config.log_level)
    return Daemon(config).run()


def cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    check_files(config)
    if config.mqtt.enabled and config.mqtt.username is not None:
        read_password(config.mqtt)  # the source must work; the password itself is never printed
    from detector.daemon import SAMPLE_RATE, WINDOW_S
    from detector.scoring import Scorer

    try:
        Scorer(config.detection, SAMPLE_RATE, WINDOW_S)
    except ModelError as error:
        raise ConfigError(f"detection: {error}") from None
    print(f"{args.config}: valid")
    print(describe_config(config), end="")
    return 0


def cmd_devices(args: argparse.Namespace) -> int:
    from detector.devices import list_input_devices

    devices = list_input_devices()
    if args.json:
        print(json.dumps(devices, indent=2))
        return 0
    if not devices:
        print("no input devices")
    for device in devices:
        rates = ", ".join(str(rate) for rate in device["accepted_samplerates"]) or "none of the usual"
        print(f"{device['index']:>3}  {device['name']}  ({device['host_api']}, {device['max_input_channels']} ch, "
              f"default {device['default_samplerate']} Hz; accepts {rates})")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from detector.demo import run_demo

    setup_logging("WARNING")
    return run_demo(args.config, realtime=args.realtime, embedded_broker=args.embedded_broker)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siren-detector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"siren-detector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser("classify", help="per-window scores and events for audio files")
    classify.add_argument("files", nargs="+", metavar="FILE", help="WAV/FLAC/OGG, any rate and channels")
    classify.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    classify.add_argument("--model", action="append", type=Path, metavar="PATH",
                          help=f"a .tflite beside its .json card (repeatable; default {DEFAULT_MODEL.name})")
    classify.add_argument("--config", type=Path, metavar="FILE",
                          help="take the models from this config (detection.model and detection.models)")
    classify.set_defaults(handler=cmd_classify)

    run = commands.add_parser("run", help="the daemon: audio source to MQTT")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, metavar="FILE",
                     help=f"YAML config (default {DEFAULT_CONFIG_PATH})")
    run.set_defaults(handler=cmd_run)

    check = commands.add_parser("check-config", help="validate a config file; exit 2 naming the bad key")
    check.add_argument("config", type=Path, metavar="FILE")
    check.set_defaults(handler=cmd_check_config)

    devices = commands.add_parser("devices", help="input devices and the sample rates they accept")
    devices.add_argument("--json", action="store_true")
    devices.set_defaults(handler=cmd_devices)

    demo = commands.add_parser("demo", help="the daemon on a generated street scene, with its own MQTT broker, "
                                            "printing what a subscriber receives")
    demo.add_argument("--config", type=Path, default=DEMO_CONFIG_PATH, metavar="FILE",
                      help="default: configs/demo.yaml (its mqtt host and port are replaced by the demo's broker)")
    demo.add_argument("--realtime", action="store_true", help="play the scene in real time (default: fast)")
    demo.add_argument("--embedded-broker", action="store_true", help="use the embedded broker even if "
                      "mosquitto is installed")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except DetectorError as error:
        print(f"siren-detector: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
