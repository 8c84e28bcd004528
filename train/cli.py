"""`siren-train`: cross-validate the model zoo on labelled audio and ship the chosen model as int8 TFLite.

`--task emergency` (default): the two-label siren detector. `--task urban`: UrbanSound8K's ten classes
(train/urban.py), leave-one-fold-out over the official folds.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from detector.errors import DetectorError
from detector.synth import CLASS_GENERATORS
from train.augment import AugmentConfig
from train.datasets import load_datasets
from train.examples import AugmentPlan
from train.fit import FitSettings
from train.models import (
    ARCHITECTURES,
    architecture_name,
    architecture_of,
    ensemble_members,
    ensemble_recipe,
    fit_seed_of,
    is_model_name,
)
from train.ship import FUSIONS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siren-train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("emergency", "urban"), default="emergency",
                        help="emergency: siren vs everything (default); urban: the ten UrbanSound8K classes")
    parser.add_argument("--data", type=Path, action="append", required=True,
                        help="index CSV (path,label[,group][,fold]), UrbanSound8K folder, or class folders; "
                             "repeatable")
    parser.add_argument("--label-column",
                        help="index CSV column holding the label (default: binary_label for emergency, label "
                             "for urban)")
    parser.add_argument("--models", help=f"comma-separated, from {', '.join(ARCHITECTURES)} (default: "
                        f"{EMERGENCY_MODELS} for emergency, {URBAN_MODELS} for urban); emergency: NAME@N is "
                        "NAME trained with fit seed N")
    parser.add_argument("--ship", help="the model to fit on everything and export (one of --models; urban "
                                       "default dscnn_m); A+B ships A and B combined (--fusion) as one model, "
                                       "evaluated from their CV scores combined the same way; A@1 is A with fit "
                                       "seed 1, so A+A@1 is two seeds of one network (urban: also --ship-seeds)")
    parser.add_argument("--ship-seeds", type=int, default=1,
                        help="urban: ship N fits of each network of --ship combined (--fusion; fit seeds --seed, "
                             "--seed+1, ...), each cross-validated, the combination evaluated from their combined "
                             "CV scores (default 1)")
    parser.add_argument("--fusion", choices=FUSIONS, default="probabilities",
                        help="how the networks of --ship are combined, in the CV and in the exported graph: the mean "
                             "of their probabilities, or the softmax of their mean logits (default probabilities)")
    parser.add_argument("--no-ship", action="store_true", help="urban: cross-validate only, export nothing")
    parser.add_argument("--representative-windows", type=int,
                        help="urban: windows that calibrate the int8 export (default: UrbanConfig's, 4000)")
    parser.add_argument("--per-tensor-weights", action="store_true",
                        help="one int8 scale per convolution kernel instead of one per output channel (a third "
                             "smaller file for these networks; the export's agreement check still applies)")
    parser.add_argument("--out", type=Path, help="exported model path (default models/<task>.tflite)")
    parser.add_argument("--report", type=Path, help="report folder (default reports/<task>)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--tutorial-epochs", type=int, default=10)
    parser.add_argument("--false-events-per-hour", type=float, default=1.0,
                        help="false-alarm budget that sets the threshold (default 1)")
    parser.add_argument("--generated-positives", type=int, default=4000)
    parser.add_argument("--copies-per-positive", type=int, default=2)
    parser.add_argument("--generated-negatives", type=int, default=600,
                        help="generated roadside beds (traffic and wind) as negatives (default 600)")
    parser.add_argument("--generated-distractors", type=int, default=3000,
                        help="generated tonal non-sirens (horns, music, beepers...) as negatives")
    parser.add_argument("--yamnet", type=Path, default=os.environ.get("SIREN_YAMNET"),
                        help="YAMNet .tflite to score as the baseline on the same folds (never shipped)")
    parser.add_argument("--teacher-weight", type=float,
                        help="share of the teacher (a logistic regression on YAMNet's embeddings, cross-fitted "
                             "on the training windows) in the targets: emergency: real windows only (needs "
                             "--yamnet; default 0); urban: every training window, and with --yamnet the model is "
                             "cross-validated with this weight (default 0.5) and without, the better one shipped")
    parser.add_argument("--teacher-yamnet-weight", type=float, default=0.0,
                        help="urban: the teacher is its head's probabilities times YAMNet's own mapped scores to "
                             "this power, renormalised (default 0 = the head alone; 0.5 made a better teacher "
                             "and a worse student, README)")
    parser.add_argument("--augment-copies", type=int, default=1,
                        help="urban: augmented copies of each real training window (default 1)")
    parser.add_argument("--speed-perturb", type=float, default=0.0, metavar="SEMITONES",
                        help="half the augmented copies play up to SEMITONES faster or slower, pitch and tempo "
                             "together: urban: of every real window; emergency: of the real sirens mixed into the "
                             "street and the real negatives augmented (default 0 = none)")
    parser.add_argument("--mix-snr-db", type=float, nargs=2, default=AugmentConfig.snr_db, metavar=("LOW", "HIGH"),
                        help="emergency: the SNR range sirens are mixed under the street at, and negatives under "
                             "other negatives (default -10 20)")
    parser.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                        help="each training batch mixed with a shuffled copy of itself (features, targets and loss "
                             "weights) at a share drawn from Beta(ALPHA, ALPHA); not the tutorials, not with "
                             "--mine-epochs or --mimic-weight (default 0 = none)")
    parser.add_argument("--generated", action="append", default=[], metavar="CLASS=N",
                        help="urban: N generated sounds of CLASS (jackhammer, engine_idling or air_conditioner) over "
                             "real training windows, hard-labelled, among the augmented windows; repeatable "
                             "(default none)")
    parser.add_argument("--transfer-windows", type=int, default=0,
                        help="urban with --yamnet: up to N windows of each recording that maps onto none of the "
                             "ten classes train the teacher variant on the teacher's probabilities alone "
                             "(distillation on unlabelled audio; default 0 = none)")
    parser.add_argument("--mimic-weight", type=float, default=0.0,
                        help="with --yamnet (urban: and --teacher-weight > 0): the model also learns to predict "
                             "YAMNet's embedding (top principal components) at this loss weight; urban: the teacher "
                             "variant, emergency: on real windows only, not with --mine-epochs (default 0 = off)")
    parser.add_argument("--hard-negative-weight", type=float, default=1.0,
                        help="loss weight of real non-siren windows the teacher scores >= 0.2 (needs --yamnet)")
    parser.add_argument("--mine-epochs", type=int, default=0,
                        help="last N of --epochs continue with the real non-siren training windows the model "
                             "scores highest up-weighted (two-pass hard-negative mining; default 0 = off)")
    parser.add_argument("--mine-fraction", type=float, default=0.1,
                        help="share of real non-siren training windows mined (default 0.1)")
    parser.add_argument("--mine-weight", type=float, default=3.0, help="loss weight of mined windows (default 3)")
    parser.add_argument("--reuse-cv", type=Path,
                        help="report folder of an earlier run with the same settings: reuse the out-of-fold "
                             "scores it saved (threshold, report, card) instead of cross-validating those "
                             "models again; the others are cross-validated; a final fit it saved under the "
                             "same settings (<member>_final.keras/.json) is reused too")
    parser.add_argument("--member", type=int, metavar="K",
                        help="urban: cross-validate and fit only member K (0-based: --ship's networks in order, "
                             "each --ship-seeds fits) of the shipped average, both saved in --report for a later "
                             "run's --reuse-cv; exports nothing (one process a core fits a pair in parallel); with "
                             "a teacher it needs --teacher-only")
    parser.add_argument("--teacher-only", action="store_true",
                        help="urban with --yamnet: cross-validate the project's networks with the teacher only, "
                             "not also without it (saves a whole CV per network; the shipped variant is then "
                             "the teacher's)")
    parser.add_argument("--no-random-split-check", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    return parser


EMERGENCY_MODELS = "mfcc_dense,conv1d_raw,logspec_cnn,lstm,dscnn_m"
URBAN_MODELS = "dscnn_m,mfcc_dense,logspec_cnn"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    urban = args.task == "urban"
    args.models = args.models or (URBAN_MODELS if urban else EMERGENCY_MODELS)
    args.label_column = args.label_column or ("label" if urban else "binary_label")
    args.out = args.out or Path(f"models/{args.task}.tflite")
    args.report = args.report or Path(f"reports/{args.task}")
    if args.teacher_weight is None:
        args.teacher_weight = 0.5 if urban and args.yamnet else 0.0
    if urban:
        args.ship = args.ship or "dscnn_m"
    names = tuple(n.strip() for n in args.models.split(",") if n.strip())
    shipped = ensemble_members(args.ship) if args.ship else []
    unknown = [n for n in names if not is_model_name(n) or (urban and "@" in n)]
    unknown += [n for n in shipped if not is_model_name(n)]
    if unknown:
        print(f"siren-train: error: unknown model {unknown[0]!r}; choose from {', '.join(ARCHITECTURES)} "
              "(NAME@N for fit seed N: emergency anywhere, urban in --ship)", file=sys.stderr)
        return 2
    if (args.teacher_weight > 0 or args.hard_negative_weight != 1) and not args.yamnet:
        print("siren-train: error: --teacher-weight and --hard-negative-weight need --yamnet PATH", file=sys.stderr)
        return 2
    if not 0 <= args.mine_epochs < args.epochs or not 0 < args.mine_fraction <= 1 or args.mine_weight <= 0:
        print("siren-train: error: need 0 <= --mine-epochs < --epochs, 0 < --mine-fraction <= 1, --mine-weight > 0",
              file=sys.stderr)
        return 2
    if args.mixup < 0 or not 0 <= args.speed_perturb <= 12:
        print("siren-train: error: need --mixup >= 0 and 0 <= --speed-perturb <= 12", file=sys.stderr)
        return 2
    if not -40 <= args.mix_snr_db[0] < args.mix_snr_db[1] <= 40:
        print("siren-train: error: need -40 <= --mix-snr-db LOW < HIGH <= 40", file=sys.stderr)
        return 2
    if args.mixup and args.mimic_weight:
        print("siren-train: error: --mixup and --mimic-weight do not mix (mimicry fits without mixup)",
              file=sys.stderr)
        return 2
    if args.mimic_weight < 0 or (args.mimic_weight and not args.yamnet):
        print("siren-train: error: --mimic-weight needs --yamnet PATH (and W >= 0)", file=sys.stderr)
        return 2
    if args.ship and ensemble_recipe(args.ship) is None:
        print(f"siren-train: error: the members of --ship {args.ship} need the same features (or log-mel and "
              "PCEN agreeing on everything else)", file=sys.stderr)
        return 2
    cross_validated = dict.fromkeys(architecture_name(member) if urban else member for member in shipped)
    names = (*names, *(member for member in cross_validated if member not in names))
    if urban:
        return _urban(args, names, shipped)
    if args.mixup and args.mine_epochs:
        print("siren-train: error: --mixup and --mine-epochs do not mix (mining weighs unmixed windows)",
              file=sys.stderr)
        return 2
    if args.mimic_weight and args.mine_epochs:
        print("siren-train: error: --mimic-weight and --mine-epochs do not mix (mimicry fits in one pass)",
              file=sys.stderr)
        return 2
    try:
        from train.pipeline import PipelineConfig, run_pipeline

        clips = tuple(load_datasets(args.data, args.label_column))
        config = PipelineConfig(
            clips=clips, report_dir=args.report, architectures=names, ship=args.ship, out_model=args.out,
            folds=args.folds, budget_per_hour=args.false_events_per_hour,
            fit=FitSettings(epochs=args.epochs, seed=args.seed, teacher_weight=args.teacher_weight,
                            hard_negative_weight=args.hard_negative_weight, mine_epochs=args.mine_epochs,
                            mine_fraction=args.mine_fraction, mine_weight=args.mine_weight, mixup_alpha=args.mixup,
                            mimic_weight=args.mimic_weight),
            tutorial_epochs=args.tutorial_epochs,
            plan=AugmentPlan(copies_per_positive=args.copies_per_positive,
                             generated_positives=args.generated_positives,
                             generated_negatives=args.generated_negatives,
                             generated_distractors=args.generated_distractors, seed=args.seed,
                             speed_semitones=args.speed_perturb, snr_db=tuple(args.mix_snr_db)),
            random_split_check=not args.no_random_split_check, yamnet_path=args.yamnet, reuse_cv=args.reuse_cv,
            per_channel_weights=not args.per_tensor_weights, fusion=args.fusion,
        )
        run_pipeline(config)
    except DetectorError as error:
        print(f"siren-train: error: {error}", file=sys.stderr)
        return 2
    return 0


def _generated_counts(values: list[str]) -> tuple[tuple[str, int], ...] | str:
    """`CLASS=N` values as (class, N) pairs without the zeros (so `=0` is the option left out), or what is wrong
    with the first bad one."""
    counts: dict[str, int] = {}
    for value in values:
        name, _, count = value.partition("=")
        if name not in CLASS_GENERATORS:
            return f"{value}: CLASS must be one of {', '.join(CLASS_GENERATORS)}"
        if not count.isdigit() or name in counts:
            return f"{value}: need CLASS=N with N >= 0, each class once"
        counts[name] = int(count)
    return tuple((name, count) for name, count in counts.items() if count)


def _urban(args: argparse.Namespace, names: tuple[str, ...], shipped: list[str]) -> int:
    tutorial = [name for name in shipped if architecture_of(name).tutorial]
    if tutorial:
        print(f"siren-train: error: --ship: {tutorial[0]} is a tutorial baseline; ship the project's models",
              file=sys.stderr)
        return 2
    if (args.augment_copies < 0 or not 0 <= args.teacher_weight <= 1 or args.ship_seeds < 1
            or (args.representative_windows is not None and args.representative_windows < 1)):
        print("siren-train: error: need --augment-copies >= 0, 0 <= --teacher-weight <= 1, --ship-seeds >= 1 and "
              "--representative-windows >= 1", file=sys.stderr)
        return 2
    generated = _generated_counts(args.generated)
    if isinstance(generated, str):
        print(f"siren-train: error: --generated {generated}", file=sys.stderr)
        return 2
    if args.transfer_windows < 0 or (args.transfer_windows and not (args.yamnet and args.teacher_weight > 0)):
        print("siren-train: error: --transfer-windows needs --yamnet PATH and --teacher-weight > 0 (and N >= 0)",
              file=sys.stderr)
        return 2
    if args.mimic_weight and not args.teacher_weight > 0:
        print("siren-train: error: --mimic-weight needs --teacher-weight > 0 for the urban model (its teacher "
              "variant is the one that mimics)", file=sys.stderr)
        return 2
    if args.teacher_yamnet_weight < 0:
        print("siren-train: error: --teacher-yamnet-weight must be >= 0", file=sys.stderr)
        return 2
    if args.teacher_only and not (args.yamnet and args.teacher_weight > 0):
        print("siren-train: error: --teacher-only needs --yamnet PATH and --teacher-weight > 0", file=sys.stderr)
        return 2
    if args.member is not None and args.yamnet and args.teacher_weight > 0 and not args.teacher_only:
        print("siren-train: error: --member with a teacher needs --teacher-only (one variant to fit)",
              file=sys.stderr)
        return 2
    fits = [(architecture_name(name), fit_seed_of(name, args.seed) + k) for name in shipped
            for k in range(args.ship_seeds)]
    twice = next((fit for fit in fits if fits.count(fit) > 1), None)
    if twice is not None:
        print(f"siren-train: error: --ship {args.ship} (--ship-seeds {args.ship_seeds}) fits {twice[0]} with fit "
              f"seed {twice[1]} twice", file=sys.stderr)
        return 2
    if args.member is not None and not 0 <= args.member < len(fits):
        print(f"siren-train: error: --member must be 0..{len(fits) - 1} (--ship {args.ship}, "
              f"--ship-seeds {args.ship_seeds})", file=sys.stderr)
        return 2
    try:
        from train.urban import UrbanConfig, run_urban

        clips = tuple(load_datasets(args.data, args.label_column))
        run_urban(UrbanConfig(
            clips=clips, report_dir=args.report, architectures=names, ship=args.ship,
            out_model=None if args.no_ship else args.out,
            fit=FitSettings(epochs=args.epochs, seed=args.seed, mixup_alpha=args.mixup),
            tutorial_epochs=args.tutorial_epochs,
            augment_copies=args.augment_copies, speed_semitones=args.speed_perturb, generated=generated,
            teacher_weight=args.teacher_weight,
            teacher_yamnet_weight=args.teacher_yamnet_weight, transfer_per_recording=args.transfer_windows,
            mimic_weight=args.mimic_weight, yamnet_path=args.yamnet,
            reuse_cv=args.reuse_cv, seed=args.seed, ship_seeds=args.ship_seeds, fusion=args.fusion,
            without_teacher_baseline=not args.teacher_only, member=args.member,
            per_channel_weights=not args.per_tensor_weights,
            **({} if args.representative_windows is None else {"representative_windows": args.representative_windows})))
    except DetectorError as error:
        print(f"siren-train: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
