"""``nnunet-polydice sweep``: train a K x epsilon grid (and baselines) over folds with nnUNetv2_train."""

from __future__ import annotations

from nnunet_polydice.cli._training import add_training_arguments, training_of
from nnunet_polydice.cli._types import checked
from nnunet_polydice.experiments import checks, paths, slurm, sweep


def _say(text: str) -> None:
    print(text, flush=True)  # flushed: nnUNetv2_train writes to the same stdout right after


def _counts(jobs) -> str:
    todo, finished, left = sweep.count_jobs(jobs)
    text = f"{todo} to run, {finished} finished"
    return text + (f", {left} left alone (foreign or pruned)" if left else "")


def run(args) -> int:
    if args.slurm:
        paths.ensure_new_file(args.slurm, "--slurm")  # before any work, also for --dry-run
        slurm.check_environment()  # the script exports nnU-Net's folders
    schedule = sweep.parse_schedule(args.schedule) if args.schedule else None
    baselines = args.baselines
    if baselines is None:  # the paper's baselines go with a grid; a list of --trainers alone is taken as it is
        baselines = sweep.DEFAULT_BASELINES if (args.K or args.epsilon) else ()
    trainers = sweep.sweep_trainers(args.families, args.K or (), args.epsilon or (), baselines=baselines,
                                       extra=args.trainers, alpha=args.alpha, beta=args.beta, schedule=schedule,
                                       seeds=args.seeds or ())
    _, _, folds, jobs = sweep.checked_jobs(trainers, training_of(args), npz=args.npz)
    todo, finished, left = sweep.count_jobs(jobs)

    if args.print:
        for line in sweep.shell_lines(jobs):
            print(line)
        return 0
    if args.slurm:
        if not todo:
            _say(f"No (trainer, fold) run of {len(jobs)} needs a command ({_counts(jobs)}); no script written.")
            return 0
        logs = slurm.sweep_log_folder(args.slurm)
        text = slurm.sweep_script(jobs, logs)
        if args.dry_run:
            print(text, end="")
            return 0
        slurm.write_script(args.slurm, text, logs)
        _say(f"Wrote {args.slurm}: {todo} array tasks ({_counts(jobs)}). Submit with: sbatch {args.slurm} (from any "
             f"shell; task output in {logs})")
        return 0
    if args.dry_run:
        for i, job in enumerate(jobs, start=1):
            _say(f"[{i}/{len(jobs)}] {job.describe()}" + (f"\n    {job.shell}" if job.command else ""))
        _say(f"{len(trainers)} trainers x {len(folds)} folds: {_counts(jobs)} (dry run: nothing started).")
        return 0

    ran = sweep.run_jobs(jobs, echo=_say)
    failed = ran.failed
    skipped = len(ran.busy) + len(ran.meanwhile)
    _say(f"Sweep done: {todo - len(failed) - skipped} of {todo} runs succeeded, {finished} were already finished"
         + (f", {left} left alone (foreign or pruned)" if left else "")
         + (f", {len(ran.meanwhile)} finished meanwhile by another process" if ran.meanwhile else "")
         + (f", {len(ran.busy)} skipped: busy, trained by another process" if ran.busy else "") + ".")
    if failed:
        _say(f"{len(failed)} failed:")
        for job in failed:
            _say(f"  {job.trainer} fold {job.fold} ({job.state}): {job.shell}")
        return 1
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "sweep",
        help="train a K x epsilon grid and baselines over folds (skips finished runs, continues started ones)",
        description=(
            "Build the trainer list (families x K x epsilon, then baselines, then --trainers; duplicates removed, "
            "every name checked against the grammar and found by nnU-Net's own trainer lookup before anything "
            "runs, --dry-run included), check the folds against splits_final.json, and run nnUNetv2_train for each "
            "(trainer, fold) that is not finished: 'fresh' (no checkpoint), 'continue' (--c: checkpoint_latest/best "
            "exists), 'validate' (--val: checkpoint_final without a readable validation/summary.json) or 'skip' "
            "(finished: checkpoint_final and a readable summary.json, the rule compare uses). 'foreign' (a "
            "summary.json without any checkpoint, copied in) and 'pruned' (stopped by tune) are left alone, with "
            "the reason shown. Runs one after the other, keeps going after a failure, exits 1 if any failed."))
    add_training_arguments(p, "short schedule: E epochs of I iterations, appended as _<E>ep<I>it to every name "
                              "(baselines included), e.g. 30x20")
    p.add_argument("--folds", nargs="+", default=list(sweep.DEFAULT_FOLDS), metavar="FOLD",
                   help="folds to train, integers or 'all' (default: 0 1 2 3 4); each must be a fold of the "
                        "dataset's splits_final.json (0-4 while nnU-Net has not written one yet)")
    p.add_argument("--K", nargs="+", metavar="K", help="truncation orders of the grid: positive integers or inf")
    p.add_argument("--epsilon", nargs="+", type=checked(checks.check_number, "--epsilon"), metavar="EPS",
                   help="leading-coefficient perturbations of the grid (>= -1)")
    p.add_argument("--families", nargs="+", default=list(sweep.DEFAULT_FAMILIES), metavar="FAMILY",
                   help="Poly families of the grid (nnUNetTrainerPolyDice, nnUNetTrainerPolyDiceCE, "
                        "nnUNetTrainerPolyTversky, nnUNetTrainerPolyTverskyCE; default: the two Poly Dice families)")
    p.add_argument("--alpha", type=checked(checks.check_number, "--alpha"),
                   help="Tversky alpha of the Poly Tversky families (default 0.3)")
    p.add_argument("--beta", type=checked(checks.check_number, "--beta"),
                   help="Tversky beta of the Poly Tversky families (default 0.7)")
    p.add_argument("--baselines", nargs="*", default=None, metavar="TRAINER",
                   help="baseline trainers trained beside the grid (default with --K/--epsilon: "
                        + " ".join(sweep.DEFAULT_BASELINES) + "; default with only --trainers, and "
                        "'--baselines' alone: none)")
    p.add_argument("--trainers", nargs="+", default=[], metavar="NAME", help="extra trainer names to train")
    p.add_argument("--seeds", nargs="+", metavar="N",
                   help="train every trainer once per seed, as its seeded name <name>_s<N> (weights, batches and "
                        "augmentation fixed by N; the same N gives every trainer the same batches); each N from 0 "
                        "to 2**32-1, each once. Default: unseeded, as nnU-Net trains")
    p.add_argument("--npz", action="store_true", help="pass --npz (save validation softmax, needed by "
                   "nnUNetv2_find_best_configuration's ensembling)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--print", action="store_true", help="print the shell commands only, one per line")
    out.add_argument("--slurm", metavar="FILE",
                     help="write a Slurm array script (one task per unfinished run) to FILE, a new file in an "
                          "existing folder (never overwritten; checked before anything else); it runs from a plain "
                          "login shell (nnUNetv2_train by absolute path, nnU-Net's variables exported) and its tasks "
                          "write their output to slurm_logs/ beside it")
    p.add_argument("--dry-run", action="store_true",
                   help="show each (trainer, fold), its state and command, and run nothing "
                        "(with --slurm: print the script instead of writing it)")
    p.set_defaults(func=run)
