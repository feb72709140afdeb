"""``nnunet-polydice noise``: before a grid, train the reference on a few seeds and print the seed-to-seed sd
and the smallest difference the planned grid could detect."""

from __future__ import annotations

from nnunet_polydice.cli._training import add_training_arguments, training_of
from nnunet_polydice.experiments import checks, layout, noise, sweep
from nnunet_polydice.integration.naming import split_seed


def _say(text: str) -> None:
    print(text, flush=True)


def _check_correlation(value: str) -> float:
    try:
        rho = float(value)
    except ValueError:
        rho = float("nan")
    if not -1.0 < rho < 1.0:  # nan fails too
        raise ValueError(f"--correlation must be a number above -1 and below 1 (got {value!r}).")
    return rho


def run(args) -> int:
    seeds = checks.check_seeds(args.seeds)
    settings = checks.check_count(args.settings, "--settings")
    plan_folds = None if args.plan_folds is None else checks.check_count(args.plan_folds, "--plan-folds", 100)
    plan_seeds = None if args.plan_seeds is None else checks.check_count(args.plan_seeds, "--plan-seeds", 1000)
    rho = _check_correlation(args.correlation)
    checks.check_metric(args.metric)
    schedule = sweep.parse_schedule(args.schedule) if args.schedule else None
    names = sweep.sweep_trainers(extra=[args.reference], baselines=(), schedule=schedule, seeds=seeds)
    results, dataset, folds, jobs = sweep.checked_jobs(names, training_of(args))
    todo = sum(j.command is not None for j in jobs)
    if args.dry_run or args.no_train:
        for i, job in enumerate(jobs, start=1):
            _say(f"[{i}/{len(jobs)}] {job.describe()}" + (f"\n    {job.shell}" if job.command else ""))
        if args.dry_run:
            _say(f"{len(names)} seeded runs x {len(folds)} folds: {todo} to train (dry run: nothing started).")
            return 0
    elif todo:
        failed = sweep.run_jobs(jobs, echo=_say).failed
        if failed:
            _say(f"{len(failed)} of {todo} runs failed; the report below leaves them out.")
    fold_dirs = {(fold, seed): layout.fold_folder(results, dataset, name, args.plans, args.configuration, fold)
                 for name, seed in zip(names, seeds) for fold in folds}
    f_count, s_count = noise.planned_counts(folds, seeds, plan_folds, plan_seeds)
    rep = noise.report(split_seed(names[0])[0], fold_dirs, folds=f_count, seeds=s_count, settings=settings,
                       correlation=rho, metric=args.metric)
    # class names from the dataset.json nnU-Net copies into each results folder
    labels = layout.read_label_names([layout.trainer_folder(results, dataset, names[0], args.plans,
                                                            args.configuration)])
    for line in rep.lines(labels):
        _say(line)
    return 0 if not rep.missing else 1


def register(sub) -> None:
    p = sub.add_parser(
        "noise",
        help="before a grid: train the reference on a few seeds, print the seed-to-seed sd and the smallest "
             "difference the planned grid could detect",
        description=(
            "Train <reference>_s<N> (with the --schedule suffix) on each fold and seed with nnUNetv2_train, reusing "
            "finished runs as sweep does, then read nnU-Net's validation summaries and print per class: the mean, "
            "the seed-to-seed sd (pooled within folds: the noise floor) and the minimal detectable difference of "
            "the planned grid (--plan-folds x --plan-seeds instances, --settings settings compared with the "
            "reference at level 0.05/settings, power 0.8, normal approximation; rho = --correlation, the gain of "
            "common random numbers that compare measures). Every input is checked before anything trains."))
    add_training_arguments(p, "short schedule: E epochs of I iterations (as sweep's), e.g. 30x40")
    p.add_argument("--folds", nargs="+", default=["0"], metavar="FOLD", help="folds to train on (default: 0)")
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2"], metavar="N",
                   help="seeds of the reference (default: 0 1 2), each from 0 to 2**32-1, each once")
    p.add_argument("--reference", default="nnUNetTrainer", help="the trainer whose noise is measured (default: "
                   "nnUNetTrainer)")
    p.add_argument("--settings", default="1", metavar="M",
                   help="number of settings the planned grid compares with the reference (default 1)")
    p.add_argument("--plan-folds", metavar="F", help="folds of the planned grid (default: as many as --folds)")
    p.add_argument("--plan-seeds", metavar="S", help="seeds of the planned grid (default: as many as --seeds)")
    p.add_argument("--correlation", default="0", metavar="RHO",
                   help="expected correlation of two settings on the same (fold, seed), above -1 and below 1 "
                        "(default 0: no gain from common random numbers assumed)")
    p.add_argument("--metric", default="Dice", help="per-class metric of nnU-Net's summary (default: Dice)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="show the runs and their states; train nothing")
    mode.add_argument("--no-train", action="store_true", help="report from the finished runs only")
    p.set_defaults(func=run)
