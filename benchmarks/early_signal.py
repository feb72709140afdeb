"""Can pruning work here at all? How well a run's early EMA pseudo Dice predicts its final validation Dice.

For every finished run of a grid (e.g. made with ``nnunet-polydice sweep``), per fold: nnU-Net's EMA of
the foreground-mean pseudo Dice after 1/9 and after 1/3 of the schedule's epochs (recomputed from the
training logs by :mod:`nnunet_polydice.experiments.curves`, no weights loaded) against the final
validation Dice (``validation/summary.json``, mean over the foreground classes the fold's reference
contains, the value ``tune`` optimises). Prints the runs and Spearman's rank correlation per fold.

    nnUNet_results=... python benchmarks/early_signal.py 731 2d_cpu --folds 3 1 \\
        --trainers nnUNetTrainerPolyDice_K1_eps0_30ep40it ...
"""

from __future__ import annotations

import argparse
import math

from scipy.stats import spearmanr

from nnunet_polydice.experiments import curves, nnunet_env
from nnunet_polydice.experiments.runs import fold_status


def final_dice(summary: dict) -> float:
    """Mean Dice over the foreground classes that some validation case's reference contains."""
    present = {k for case in summary["metric_per_case"] for k, m in case["metrics"].items() if m["n_ref"] > 0}
    values = [v["Dice"] for k, v in summary["mean"].items() if k in present and not math.isnan(v["Dice"])]
    return sum(values) / len(values) if values else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("configuration")
    ap.add_argument("--trainers", nargs="+", required=True)
    ap.add_argument("--folds", nargs="+", required=True)
    ap.add_argument("-p", "--plans", default="nnUNetPlans")
    args = ap.parse_args(argv)
    root = nnunet_env.results_root()
    dataset = nnunet_env.resolve_dataset_name(args.dataset)
    found = curves.collect(root, dataset, args.configuration, plans=args.plans, trainers=args.trainers,
                           folds=args.folds)
    for fold in args.folds:
        rows = []
        for run in found.runs:
            if str(run.fold) != str(fold):
                continue
            status = fold_status(nnunet_env.fold_folder(root, dataset, run.trainer, args.plans, args.configuration,
                                                      fold))
            if not status.finished:
                continue
            ema = run.ema
            n = len(ema)
            at = {name: ema[max(1, math.ceil(n * frac)) - 1] for name, frac in (("1/9", 1 / 9), ("1/3", 1 / 3))}
            rows.append((run.trainer, at["1/9"], at["1/3"], final_dice(status.summary), n))
        if len(rows) < 3:
            print(f"fold {fold}: {len(rows)} finished runs, too few for a rank correlation")
            continue
        print(f"fold {fold}: {len(rows)} runs")
        for trainer, a, b, final, n in sorted(rows, key=lambda r: -r[3]):
            print(f"  {trainer:48s} EMA@1/9 {a:.4f}  EMA@1/3 {b:.4f}  final Dice {final:.4f}  ({n} epochs)")
        finals = [r[3] for r in rows]
        for label, column in (("1/9", 1), ("1/3", 2)):
            rho, p = spearmanr([r[column] for r in rows], finals)
            print(f"  Spearman rho (EMA at {label} of the schedule vs final Dice): {rho:+.3f} (p = {p:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
