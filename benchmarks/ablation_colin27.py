"""The measured ablation of the README: Poly Dice K x epsilon against nnU-Net's baselines on the embedded
Colin27/AAL coronal slices (hippocampus, amygdala), with a short CPU budget.

    python benchmarks/ablation_colin27.py --work ~/polydice_ablation          # the README's run (folds 3 2 4 1)
    python benchmarks/ablation_colin27.py --work DIR --schedule 30x50 --folds 0 1 2 3 4   # a longer one

What it does, resumable at every step (run it again after a crash: finished runs are skipped):
1. writes the embedded data set into DIR/nnUNet_raw, plans and preprocesses ``2d`` with nnU-Net, adds
   the smaller ``2d_cpu`` configuration (see ``nnunet_polydice.experiments.workspace.CPU_ARCHITECTURE``) and the
   contiguous-block splits;
2. fold by fold, trains the baselines (nnUNetTrainer, nnUNetTrainerDiceLoss, Tversky, focal Tversky)
   and the pure Poly Dice grid with ``nnunet-polydice sweep``;
3. after the first fold, picks the two best pure Poly Dice settings on that fold (mean foreground Dice)
   and adds their CE compounds to every fold;
4. writes the comparison (table, CSV, heat maps) with ``nnunet-polydice compare``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from nnunet_polydice.experiments.layout import absent_from_reference
from nnunet_polydice.experiments.workspace import environ_summary, prepare_embedded, workspace_env
from nnunet_polydice.integration.naming import parse_trainer_name, schedule_suffix, trainer_name

CONFIG = "2d_cpu"
BASELINES = ["nnUNetTrainer", "nnUNetTrainerDiceLoss", "nnUNetTrainerTversky", "nnUNetTrainerFocalTversky"]


def sweep(dataset, folds, trainers, schedule, device, env):
    cmd = ["nnunet-polydice", "sweep", dataset, CONFIG, "--folds", *map(str, folds), "--baselines",
           "--trainers", *trainers, "--schedule", schedule, "--device", device]
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd, env=env)


def best_two(results: Path, dataset: str, names: list[str], fold: int) -> list[str]:
    """The two settings with the highest mean Dice over the classes the fold's validation reference contains."""
    scores = {}
    for name in names:
        summary = results / dataset / f"{name}__nnUNetPlans__{CONFIG}" / f"fold_{fold}" / "validation" / "summary.json"
        if summary.is_file():
            absent = absent_from_reference(summary)  # no Dice there: 0 for false positives, else NaN
            means = json.loads(summary.read_text())["mean"]
            present = [v["Dice"] for k, v in means.items() if k not in absent and v["Dice"] == v["Dice"]]
            scores[name] = sum(present) / len(present) if present else -1.0
    ranked = sorted(scores, key=lambda n: -scores[n])
    ranking = ", ".join(f"{n} {scores[n]:.3f}" for n in ranked)
    print(f"fold {fold} ranking of the pure Poly Dice settings: {ranking}")
    return ranked[:2]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", required=True, help="work folder of its own (created; reused when it exists)")
    ap.add_argument("--folds", type=int, nargs="+", default=[3, 2, 4, 1],
                    help="default 3 2 4 1 (the README's run): the hippocampus is only in blocks 0-3, the amygdala "
                         "only in 3 and 4, so these give each structure 3 and 2 folds; the first fold (3, the only "
                         "one with both) picks the two settings that also get a CE compound")
    ap.add_argument("--K", nargs="+", default=["1", "2", "inf"])
    ap.add_argument("--epsilon", nargs="+", type=float, default=[0.0, 1.0])
    ap.add_argument("--schedule", default="10x40", help="E x I: E epochs of I iterations (default 10x40)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    env = workspace_env(args.work)
    print(environ_summary(env), flush=True)
    dataset = prepare_embedded("Dataset731_Colin27HippoAmyg", args.work)
    epochs, iterations = (int(x) for x in args.schedule.split("x"))
    K_values = [float("inf") if k == "inf" else int(k) for k in args.K]
    pure = [trainer_name("nnUNetTrainerPolyDice", K=k, epsilon=e) for k in K_values for e in args.epsilon]
    ce: list[str] = []
    start = time.time()
    for i, fold in enumerate(args.folds):
        sweep(dataset, [fold], BASELINES + pure + ce, args.schedule, args.device, env)
        if i == 0:
            scheduled = [n + schedule_suffix(epochs, iterations) for n in pure]
            top = best_two(Path(env["nnUNet_results"]), dataset, scheduled, fold)
            for name in top:
                spec = parse_trainer_name(name)
                ce.append(trainer_name("nnUNetTrainerPolyDiceCE", K=spec.K, epsilon=spec.epsilon))
            sweep(dataset, [fold], ce, args.schedule, args.device, env)
        print(f"--- fold {fold} done, {(time.time() - start) / 60:.1f} min so far", flush=True)
    subprocess.call(["nnunet-polydice", "compare", dataset, CONFIG, "--folds", *map(str, args.folds)], env=env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
