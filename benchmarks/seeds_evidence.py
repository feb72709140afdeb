"""Evidence for seeded runs, from finished nnU-Net results: repeatability, noise floor, and the gain of common
random numbers.

    python benchmarks/seeds_evidence.py RESULTS DATASET CONFIGURATION --fold 3 --seeds 0 1 2 \
        --reference nnUNetTrainer_12ep40it --settings nnUNetTrainerPolyDiceCE_12ep40it \
        nnUNetTrainerPolyDice_K2_eps1_12ep40it [--repeat OTHER_RESULTS:nnUNetTrainerPolyDice_K2_eps1_12ep40it_s0]

Prints, for the fold given:

1. with ``--repeat ROOT:TRAINER``: whether the run of TRAINER in ROOT and in RESULTS logged the same values in every
   epoch (losses, pseudo Dice, the final validation Dice: the lines of nnU-Net's training log, timestamps left out)
   and the number of differing lines (0 is bit-identical);
2. per setting and class: the validation Dice of each seed, their mean and sd (the seed-to-seed noise on this
   fold);
3. the gain of common random numbers: the variance of the per-case paired difference (setting minus reference) when
   the seeds are matched (s_i - s_i) against mismatched (s_i - s_j, i != j), and its ratio
   (:func:`nnunet_polydice.experiments.statistics.crn_variance_ratio`); also on the per-run means.
"""

from __future__ import annotations

import argparse
import itertools
import math
import re
import statistics as stats
import sys
from pathlib import Path

from nnunet_polydice.experiments import statistics
from nnunet_polydice.experiments.layout import per_case_values, summary_values
from nnunet_polydice.experiments.runs import fold_status

LOGGED = re.compile(r": (Epoch \d+|train_loss .*|val_loss .*|Pseudo dice .*|Mean Validation Dice: .*) *$", re.M)


def fold_dir(root: Path, dataset: str, trainer: str, configuration: str, fold: str) -> Path:
    return root / dataset / f"{trainer}__nnUNetPlans__{configuration}" / f"fold_{fold}"


def logged(folder: Path) -> list[str]:
    return [m.group(1).strip() for log in sorted(folder.glob("training_log_*.txt"))
            for m in LOGGED.finditer(log.read_text())]


def case_diffs(run, ref, key: str) -> list[float]:
    """Paired differences of two runs ``(summary values, per-case values)``: per case of class ``key`` (cases whose
    reference has the class, no NaN), or the one foreground-mean difference for ``key == 'fg'``."""
    if key == "fg":
        return [run[0][1] - ref[0][1]]
    a, b = run[1], ref[1]
    return [a[c][key][0] - b[c][key][0] for c in a if c in b and (b[c][key][1] or 0) > 0
            and not math.isnan(a[c][key][0]) and not math.isnan(b[c][key][0])]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path)
    p.add_argument("dataset")
    p.add_argument("configuration")
    p.add_argument("--fold", default="3")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--reference", required=True)
    p.add_argument("--settings", nargs="+", required=True)
    p.add_argument("--repeat", metavar="ROOT:TRAINER")
    args = p.parse_args(argv)

    if args.repeat:
        root, trainer = args.repeat.split(":")
        a = logged(fold_dir(args.results, args.dataset, trainer, args.configuration, args.fold))
        b = logged(fold_dir(Path(root), args.dataset, trainer, args.configuration, args.fold))
        differing = sum(x != y for x, y in zip(a, b)) + abs(len(a) - len(b))
        print(f"1. {trainer} fold {args.fold}, run twice: {len(a)} and {len(b)} logged values, {differing} differ"
              + (" (bit-identical)" if differing == 0 and a else ""))
        if a:
            print(f"   last: {a[-1]!r}")

    data = {}  # trainer -> seed -> (summary values, per-case values)
    for trainer in [args.reference, *args.settings]:
        for seed in args.seeds:
            status = fold_status(fold_dir(args.results, args.dataset, f"{trainer}_s{seed}", args.configuration,
                                          args.fold))
            if status.finished:
                data.setdefault(trainer, {})[seed] = (summary_values(status.summary),
                                                      per_case_values(status.summary))
    print(f"\n2. validation Dice on fold {args.fold} per seed (mean, sd over seeds)")
    classes = list(next(iter(next(iter(data.values())).values()))[0][0]) if data else []
    for trainer, by_seed in data.items():
        for key in [*classes, "fg"]:
            vals = [(per_class[key] if key != "fg" else fg) for (per_class, fg), _ in
                    (by_seed[s] for s in sorted(by_seed))]
            sd = stats.stdev(vals) if len(vals) > 1 else math.nan
            print(f"   {trainer:42s} {key:3s} " + " ".join(f"{v:.4f}" for v in vals)
                  + f"   mean {stats.fmean(vals):.4f} sd {sd:.4f}")

    print("\n3. common random numbers: variance of (setting - reference), matched vs mismatched seeds")
    ref = data.get(args.reference, {})
    for trainer in args.settings:
        mine = data.get(trainer, {})
        seeds = sorted(set(mine) & set(ref))
        if len(seeds) < 2:
            print(f"   {trainer}: fewer than 2 seeds with both runs")
            continue
        for key in [*classes, "fg"]:
            matched = [d for s in seeds for d in case_diffs(mine[s], ref[s], key)]
            mismatched = [d for si, sj in itertools.permutations(seeds, 2)
                          for d in case_diffs(mine[si], ref[sj], key)]
            if len(matched) < 2 or len(mismatched) < 2 or stats.variance(mismatched) == 0:
                print(f"   {trainer:42s} {key:3s} too few values")
                continue
            ratio = statistics.crn_variance_ratio(matched, mismatched)
            unit = "runs" if key == "fg" else "case differences"
            print(f"   {trainer:42s} {key:3s} var matched {stats.variance(matched):.5f} ({len(matched)} {unit}), "
                  f"mismatched {stats.variance(mismatched):.5f} ({len(mismatched)}), ratio {ratio:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
