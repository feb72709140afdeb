"""Evidence for ``tune``: replays of the racing tune against a finished seeded grid, over many tuner seeds and
tuner configurations, against the grid's own verdict as the truth.

    python benchmarks/tune_vs_grid.py --replay GRID 731 2d_cpu --folds 1 3 --seeds 0 1 2 --schedule 12x40 \\
        --families nnUNetTrainerPolyDice --K 1 2 3 inf --epsilon 0 1 --tuner-seeds 50 [--out FILE]

``GRID`` is an nnU-Net results folder holding every (setting, fold, seed) run of the space, finished and seeded,
with its ``polydice_curve.json`` (``nnunet-polydice sweep --seeds``; the project ships one:
``nnunet_polydice/data/grids/colin27_2d_cpu_12x40``). Nothing is trained: every tune is an exact replay
(``nnunet-polydice tune --replay``, here called in this process), the same decisions a live tune would take.

1. **The truth**: the racing rule over every setting on all of the grid's runs
   (:func:`nnunet_polydice.experiments.racing.race_step`): the grid's best setting and the set of settings its
   paired 95 % interval cannot tell from it.
2. **The tunes**: for each configuration (pruner: the default median, ``wilcoxon-instances``, none; racing on and
   off; ``--budget`` 20 %, 33 %, 50 % of the grid) and each tuner seed ``0..N-1``, one replayed ``tune`` with
   the default number of trials (every setting can be tried) and the default sampler.
3. **One table**, per configuration: the right-rate (the tune's leader, its winner or the head of its set, lies in
   the truth's set), how often the tune's set contains the truth's best, the mean size of the set it reports,
   false certainty (a single winner named where the truth has none), and the iterations spent as a share of the
   grid (mean, max).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

PRUNERS = {"median": None, "wilcoxon-instances": "wilcoxon-instances", "none": "none"}
BUDGETS = ("20%", "33%", "50%")


def base_setup(args, **kw):
    from nnunet_polydice.experiments import tune

    return tune.prepare(args.dataset, args.configuration, families=args.families, K_values=args.K,
                        epsilons=args.epsilon, folds=args.folds, schedule=args.schedule, seeds=args.seeds,
                        replay=args.replay, out_dir=args.work, study="tune_vs_grid", **kw)


def truth(setup, runs):
    """The racing rule's look over every setting on every run of the grid."""
    from nnunet_polydice.experiments import racing
    from nnunet_polydice.experiments.tune import case_values, fold_value

    values = {s.trainer: {i: fold_value(runs[(setup.run_name(s, i), i[0])].summary, setup.label_key)
                          for i in setup.instances} for s in setup.space.settings}
    cases = {s.trainer: {i: case_values(runs[(setup.run_name(s, i), i[0])].summary, setup.label_key)
                         for i in setup.instances} for s in setup.space.settings}
    return racing.race_step(values, setup.instances, cases=cases)


def one_configuration(args, runs, pruner: str | None, race: bool, budget: str, best: str, same: set) -> dict:
    from nnunet_polydice.experiments.tune import run_replay

    setup = base_setup(args, pruner=pruner, race=race, budget=budget)
    right = contains = certain = 0
    sizes, shares = [], []
    for seed in range(args.tuner_seeds):
        summary, _ = run_replay(setup, args.trials, seed=seed, runs=runs)
        look = summary.look
        found = list(look.remaining) if look is not None else ([summary.winner] if summary.winner else [])
        right += summary.winner in same
        contains += best in found
        certain += len(found) == 1 and len(same) > 1
        sizes.append(len(found))
        shares.append(summary.iterations_spent / summary.full_grid_iterations)
    n = args.tuner_seeds
    return {"pruner": setup.pruner, "race": race, "budget": budget, "right": right / n, "contains": contains / n,
            "size": statistics.fmean(sizes), "certain": certain / n, "spent": statistics.fmean(shares),
            "spent_max": max(shares)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--replay", type=Path, required=True, metavar="GRID")
    p.add_argument("dataset")
    p.add_argument("configuration")
    p.add_argument("--folds", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    p.add_argument("--schedule", required=True, help="ExI, e.g. 12x40")
    p.add_argument("--families", nargs="+", default=["nnUNetTrainerPolyDice"])
    p.add_argument("--K", nargs="+", default=["1", "2", "3", "inf"])
    p.add_argument("--epsilon", nargs="+", default=["0", "1"])
    p.add_argument("--tuner-seeds", type=int, default=50, help="tuner seeds 0..N-1 per configuration (default 50)")
    p.add_argument("--trials", type=int, default=20, help="search trials of each tune (tune's default, 20)")
    p.add_argument("--pruners", nargs="+", default=list(PRUNERS), choices=list(PRUNERS))
    p.add_argument("--budgets", nargs="+", default=list(BUDGETS))
    p.add_argument("--work", type=Path, default=Path("tune_vs_grid_work"), help="the replays' --out (budget lock)")
    p.add_argument("--out", type=Path, help="also write the table (Markdown) to this file")
    args = p.parse_args(argv)
    from nnunet_polydice.experiments.tune import check_grid

    start = time.monotonic()
    setup = base_setup(args)
    runs = check_grid(setup)  # every run read once, for every replay
    look = truth(setup, runs)
    best, same = look.leader, set(look.remaining)
    rows = [one_configuration(args, runs, PRUNERS[name], race, budget, best, same)
            for name in args.pruners for race in (True, False) for budget in args.budgets]
    seconds = time.monotonic() - start
    lines = [f"Truth: the racing rule over all {len(setup.instances)} (fold, seed) runs of each of the "
             f"{setup.space.size} settings ({', '.join(setup.folds)} x seeds {' '.join(map(str, setup.seeds))}, "
             f"{args.schedule}, {setup.grid_iterations} training iterations): best {best} (mean validation Dice "
             f"{look.means[best]:.4f}); its set (not separable from the best, paired 95 % CI): "
             f"{', '.join(sorted(same))}.", "",
             f"{args.tuner_seeds} tuner seeds per configuration, {args.trials} trials, default sampler; "
             f"{len(rows) * args.tuner_seeds} replays in {seconds:.0f} s.", "",
             "| pruner | racing | budget | right | set holds the best | mean set size | false certainty | "
             "spent % of grid (mean, max) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| `{r['pruner']}` | {'on' if r['race'] else 'off'} | {r['budget']} | {r['right']:.0%} | "
                     f"{r['contains']:.0%} | {r['size']:.2f} | {r['certain']:.0%} | {r['spent']:.0%}, "
                     f"{r['spent_max']:.0%} |")
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
