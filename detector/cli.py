"""`siren-detector`: the command line. Errors the user can fix are one line on stderr and exit 1 or 2."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detector import __version__
from detector.classify import classify_or_error
from detector.errors import DetectorError
from detector.model import Classifier

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODEL = MODELS_DIR / "emergency.tflite"


def _print_human(result: dict) -> None:
    if "error" in result:
        print(f"{result['file']}: error: {result['error']}")
        return
    print(f"{result['file']}: {result['duration_s']:.1f} s, {len(result['windows'])} windows, "
          f"{len(result['events'])} events")
    for event in result["events"]:
        print(f"  {event['label']:<14} {event['start_s']:8.1f} s – {event['end_s']:8.1f} s  "
              f"confidence {event['confidence']:.2f}")


def cmd_classify(args: argparse.Namespace) -> int:
    classifiers = [Classifier(path) for path in (args.model or [DEFAULT_MODEL])]
    failed = False
    for path in args.files:
        result = classify_or_error(Path(path), classifiers)
        failed |= "error" in result
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            _print_human(result)
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from detector.demo import run_demo

    return run_demo(Classifier(args.model or DEFAULT_MODEL), duration_s=args.duration, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siren-detector", description=__doc__)
    parser.add_argument("--version", action="version", version=f"siren-detector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    classify = commands.add_parser("classify", help="per-window scores and events for audio files")
    classify.add_argument("files", nargs="+", metavar="FILE", help="WAV/FLAC/OGG, any rate and channels")
    classify.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    classify.add_argument("--model", action="append", type=Path, metavar="PATH",
                          help=f"a .tflite beside its .json card (repeatable; default {DEFAULT_MODEL.name})")
    classify.set_defaults(handler=cmd_classify)

    demo = commands.add_parser("demo", help="detect sirens in a generated street scene and score the result")
    demo.add_argument("--model", type=Path, metavar="PATH", help="default: the shipped emergency model")
    demo.add_argument("--duration", type=float, default=120.0, help="seconds of scene (default 120)")
    demo.add_argument("--seed", type=int, default=7, help="scene seed (default 7)")
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
