"""Replay finished nnU-Net runs through Optuna's pruners: what ``tune``'s ``--pruner`` default is chosen from.

    nnUNet_results=... python benchmarks/tune_pruners.py 731 2d_cpu --fold 3 --suffix _30ep40it

For every finished ``<trainer>__<plans>__<configuration>/fold_<f>`` (``checkpoint_final.pth`` and a readable
``validation/summary.json``; optionally only trainers whose name ends in ``--suffix``) it takes

* the curve ``tune`` would report: nnU-Net's EMA pseudo-Dice per epoch, recomputed from its training logs
  (:mod:`nnunet_polydice.experiments.curves`; ``benchmarks/early_signal.py`` reads the same);
* the value ``tune`` would record: ``foreground_mean['Dice']`` of the summary.

Then, for each pruner spec and each of ``--orders`` random arrival orders of the runs, it replays them one
after the other into an in-memory Optuna study (report every epoch, stop at the first ``should_prune``) and
prints: the share of the epochs trained, how often the run with the best validation Dice survived, and the
mean regret (best Dice minus best completed Dice). It also prints, per epoch, the Spearman rank correlation
across runs between the EMA pseudo-Dice at that epoch and the final validation Dice.
No training is run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys

import optuna
from scipy.stats import spearmanr

from nnunet_polydice.experiments import curves, nnunet_env
from nnunet_polydice.experiments.runs import fold_status
from nnunet_polydice.integration.pruning import make_pruner

CANDIDATES = (
    "none",
    "median:n_startup_trials=3,n_warmup_steps={half}",
    "median:n_startup_trials=2,n_warmup_steps={half}",
    "median:n_startup_trials=3,n_warmup_steps={third}",
    "median:n_startup_trials=2,n_warmup_steps={third}",
    "median:n_startup_trials=4,n_warmup_steps=1",
    "sha:min_resource=1,reduction_factor=3",
    "sha:min_resource={half},reduction_factor=2",
    "hyperband:min_resource=1,reduction_factor=3",
)


def load_runs(dataset: str, configuration: str, fold: str, suffix: str, plans: str = "nnUNetPlans") -> dict:
    """``{trainer: (EMA pseudo-Dice per epoch, validation Dice)}`` of the finished runs of one fold; the curves
    are recomputed from nnU-Net's training logs by :func:`curves.collect` (no weights loaded)."""
    root = nnunet_env.results_root()
    name = nnunet_env.resolve_dataset_name(dataset)
    runs = {}
    for run in curves.collect(root, name, configuration, plans=plans, folds=[fold]).runs:
        status = fold_status(nnunet_env.fold_folder(root, name, run.trainer, plans, configuration, fold))
        if not run.trainer.endswith(suffix) or not status.finished:
            continue
        dice = status.summary["foreground_mean"]["Dice"]
        if dice is not None and dice == dice:
            runs[run.trainer] = (list(run.ema), float(dice))
    return runs


def replay(runs: dict, spec: str, order: list, epochs: int) -> tuple[int, set]:
    """Epochs trained and the names that completed, for one arrival order."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner(spec, epochs))
    spent, completed = 0, set()
    for name in order:
        curve, final = runs[name]
        trial = study.ask()
        pruned = False
        for epoch, value in enumerate(curve):
            spent += 1
            trial.report(value, epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                pruned = True
                break
        if not pruned:
            study.tell(trial, final)
            completed.add(name)
    return spent, completed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="dataset id or name, in $nnUNet_results")
    ap.add_argument("configuration")
    ap.add_argument("--fold", default="0")
    ap.add_argument("--suffix", default="", help="only trainers whose name ends in this (e.g. _30ep40it)")
    ap.add_argument("--orders", type=int, default=200, help="random arrival orders per pruner (default 200)")
    ap.add_argument("--pruners", nargs="+", default=list(CANDIDATES),
                    help="pruner specs; {third} and {half} are replaced by a third and half of the epochs")
    args = ap.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    runs = load_runs(args.dataset, args.configuration, args.fold, args.suffix)
    if len(runs) < 2:
        print(f"need at least 2 finished runs, found {len(runs)}", file=sys.stderr)
        return 1
    epochs = min(len(c) for c, _ in runs.values())
    runs = {k: (c[:epochs], d) for k, (c, d) in runs.items()}
    best = max(runs, key=lambda k: runs[k][1])
    print(f"{len(runs)} runs, {epochs} epochs; best validation Dice: {best} {runs[best][1]:.4f}")
    for name, (curve, dice) in sorted(runs.items(), key=lambda kv: -kv[1][1]):
        print(f"  {name:48s} Dice {dice:.4f}  EMA at epochs 1, {epochs // 3}, {epochs}: {curve[0]:.4f} "
              f"{curve[epochs // 3 - 1]:.4f} {curve[-1]:.4f}")
    names = list(runs)
    print("Spearman(EMA at epoch e, validation Dice): " + ", ".join(
        f"{e + 1}: {spearmanr([runs[n][0][e] for n in names], [runs[n][1] for n in names])[0]:+.2f}"
        for e in range(epochs)))
    rng = random.Random(0)
    orders = [rng.sample(names, len(names)) for _ in range(args.orders)]
    print(f"{'pruner':58s} epochs trained  best survives  mean regret")
    for raw in args.pruners:
        spec = raw.replace("{third}", str(max(1, epochs // 3))).replace("{half}", str(max(1, epochs // 2)))
        spent, survived, regret = [], 0, []
        for order in orders:
            s, done = replay(runs, spec, order, epochs)
            spent.append(s / (epochs * len(names)))
            survived += best in done
            regret.append(runs[best][1] - max(runs[n][1] for n in done) if done else runs[best][1])
        print(f"{spec:58s} {statistics.fmean(spent):13.1%}  {survived / len(orders):13.1%}  "
              f"{statistics.fmean(regret):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
