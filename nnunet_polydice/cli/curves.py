"""``nnunet-polydice curves``: learning curves (pseudo Dice per class, its EMA) of trainers and folds from
nnU-Net's training logs, without loading any weights."""

from __future__ import annotations

import math

from nnunet_polydice.cli import _output
from nnunet_polydice.cli._output import add_results_arguments, check_results_arguments, print_written
from nnunet_polydice.experiments import checks, curves


def _threshold(text: str) -> float:
    try:
        value = checks.check_number(text, "--threshold")
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also false for NaN
        raise ValueError(f"--threshold must be a number from 0 to 1, an EMA pseudo Dice (got {text!r}); the default "
                         f"is {curves.DEFAULT_THRESHOLD:g}.")
    return value


def run(args) -> int:
    threshold = _threshold(args.threshold)
    root, dataset, folds, out_dir = check_results_arguments(args, curves.default_out_dir)
    _output.check_owned_files(out_dir, "curves", ["curves.md", "curves.csv", "curves_epochs.csv"], args.out)
    found = curves.collect(root, dataset, args.configuration, plans=args.plans, trainers=args.trainers, folds=folds,
                           threshold=threshold)
    written, _ = curves.write_outputs(found, out_dir)
    print(found.text(), end="")
    print_written(out_dir, written)
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "curves",
        help="learning curves of trainers and folds from nnU-Net's training logs: pseudo Dice per class, its EMA, "
             "and the epochs until the EMA reaches a threshold",
        description=(
            "Read the training_log_*.txt of each trainer and fold (several logs of a resumed training are merged by "
            "epoch, the later one winning; no weights are loaded) and write one PNG per class (validation pseudo "
            "Dice per epoch: mean over folds, band lowest..highest fold), one of the EMA of the foreground-mean "
            "pseudo Dice (recomputed as nnU-Net's logger does: ema_t = 0.9 ema_(t-1) + 0.1 m_t), curves.md, "
            "curves.csv (per trainer and fold, with the epochs until the EMA first reaches --threshold) and "
            "curves_epochs.csv. In the output folder only files this command wrote before (listed in "
            ".polydice_curves.json) are overwritten."))
    add_results_arguments(p, "plot", "curves")
    p.add_argument("--threshold", default=str(curves.DEFAULT_THRESHOLD), metavar="X",
                   help=f"EMA pseudo Dice of the table's 'epochs until' column (default: {curves.DEFAULT_THRESHOLD:g})")
    p.set_defaults(func=run)
