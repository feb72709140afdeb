"""``nnunet-polydice tune``: search K and epsilon with Optuna, pruning nnUNetv2_train runs on their learning curves."""

from __future__ import annotations

import argparse
import time

from nnunet_polydice.cli._training import add_training_arguments
from nnunet_polydice.experiments import checks, slurm, sweep, tune
from nnunet_polydice.experiments.paths import ensure_new_file
from nnunet_polydice.integration.pruning import GRACE_PERIOD_S, PRUNERS


def _say(text: str) -> None:
    print(text, flush=True)


def _setup(args) -> tune.TuneSetup:
    """Every option checked (:mod:`checks`), before any study is opened, folder made or training started."""
    args.trials = checks.check_count(args.trials, "--trials")
    args.workers = checks.check_count(args.workers, "--workers", checks.MAX_WORKERS)
    args.seed = checks.check_seed(args.seed)
    if args.worker_index is not None:
        args.worker_index = checks.check_int(args.worker_index, "--worker-index", 0, checks.MAX_WORKERS - 1)
    if args.replay is not None:
        checks.check_replay_options(args.workers, status=args.status, slurm=args.slurm, storage=args.storage,
                                    worker_index=args.worker_index)
    if args.slurm:
        ensure_new_file(args.slurm, "--slurm")  # before anything else is checked or created
        slurm.check_environment()  # the script exports nnU-Net's folders
    return tune.prepare(args.dataset, args.configuration, families=args.families, K_values=args.K,
                        epsilons=args.epsilon, folds=args.folds, schedule=args.schedule, plans=args.plans,
                        label=args.label, storage=args.storage, study=args.study, out_dir=args.out,
                        pruner=args.pruner, device=args.device, allow_random_split=args.allow_random_split,
                        lookup=not args.status and args.worker_index is None, seeds=args.seeds, budget=args.budget,
                        race=args.race, grace=args.grace, replay=args.replay)


def _final(setup: tune.TuneSetup, study, runner, write: bool = True, sampler_note: str = "") -> tune.Summary:
    summary = tune.summarize(study, setup, runner, sampler_note)
    if summary.settings:
        _say(tune.settings_table(summary))
    for line in tune.verdict_lines(summary):
        _say(line)
    for line in tune.cost_lines(summary):
        _say(line[0].upper() + line[1:])
    if summary.winner is not None:
        _say("Next:")
        for command in tune.next_commands(setup, summary.winner):
            _say("  " + command)
    if write:
        tune.write_outputs(summary)
        _say(f"Wrote {', '.join(tune.OUTPUT_FILES)} to {setup.out_dir}")
    return summary


def _status(setup: tune.TuneSetup) -> int:
    study = tune.load_study(setup.storage, setup.study)
    setup = tune.setup_of_study(setup, study)
    runner = tune.LiveRunner(setup, study, "")
    summary = tune.summarize(study, setup, runner)
    counts = {}
    for row in summary.rows:
        counts[row.state] = counts.get(row.state, 0) + 1
    _say(f"Study {setup.study} in {setup.storage}: {len(summary.rows)} trials ("
         + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) + f"); space of {setup.space.size}.")
    _say(tune.trials_table(summary))
    _final(setup, study, runner, write=False)
    return 0


def _write_slurm(args, setup: tune.TuneSetup, study, the_plan: tune.Plan) -> int:
    if not the_plan.shares:
        raise ValueError(f"every setting of study {setup.study} has a trial: the Slurm script would have nothing "
                         f"to do; run the command without --slurm to race the best ones.")
    text = slurm.tune_script(setup, list(the_plan.shares), sampler=the_plan.sampler, seed=args.seed)
    slurm.write_script(args.slurm, text, slurm.tune_log_folder(setup))
    if the_plan.sampler == "grid":
        tune.enqueue_grid(study, setup.space, args.seed, limit=the_plan.n_trials)
    _say(f"Wrote {args.slurm}: {len(the_plan.shares)} array tasks, {the_plan.n_trials} trials of study {setup.study} "
         f"({the_plan.sampler} sampler; {the_plan.budget_text(setup)}). Submit with: sbatch {args.slurm} (from any "
         f"shell; task output in {slurm.tune_log_folder(setup)})")
    if setup.race:
        _say("The script runs the search; once it has finished, run this command without --slurm to race the "
             "best settings (finished runs are reused).")
    return 0


def _open(args, setup: tune.TuneSetup):
    """The backend (live, or a replay's) and the study, opened after the last check."""
    if setup.replay is not None:
        backend = tune.ReplayBackend(setup)  # reads and checks every run of the grid first
        if not args.no_outputs:
            tune.check_outputs_free(setup)
        return backend, backend.open(setup)[0]
    storage_option = "--storage" if args.storage else "the default storage"
    if args.worker_index is None:
        tune.check_storage_for_workers(setup.storage, args.workers, bool(args.slurm))
    if not args.no_outputs:
        tune.check_outputs_free(setup)
    if not args.storage:  # the dataset's results folder holds the default journal; a first run makes it
        (setup.results / setup.dataset).mkdir(parents=True, exist_ok=True)
    checks.check_storage(setup.storage, storage_option)  # never append to a file that is not a journal
    backend = tune.LiveBackend()
    return backend, backend.open(setup)[0]


def run(args) -> int:
    setup = _setup(args)
    if args.status:
        # the study's journal, given or default, must be one: else --status reads "no study"
        checks.check_storage(setup.storage, "--storage" if args.storage else "the default storage")
        return _status(setup)
    backend, study = _open(args, setup)
    if args.worker_index is not None:  # one worker of a larger command (local or a Slurm task)
        tune.run_worker(setup, args.trials, sampler=args.sampler, seed=args.seed, worker_index=args.worker_index,
                        echo=_say)
        if not args.no_outputs:
            _final(setup, study, backend.runner(setup, study, ""))
        return 0
    the_plan = tune.plan(setup, study, args.trials, args.workers, args.sampler)
    if not the_plan.untried and not setup.race:
        _say(f"Every one of the {setup.space.size} settings of study {setup.study} has a finished or running trial; "
             f"nothing to start.")
        _final(setup, study, backend.runner(setup, study, ""), write=not args.slurm)
        return 0
    if args.slurm:
        return _write_slurm(args, setup, study, the_plan)
    what = f"a replay of {setup.replay} (nothing is trained)" if setup.replay else setup.storage
    _say(f"Study {setup.study} in {what}: {setup.space.size} settings, {the_plan.untried} untried, "
         f"{the_plan.before} trials so far; running {the_plan.n_trials} trials on {len(the_plan.shares)} worker(s), "
         f"pruner {setup.pruner}; {the_plan.budget_text(setup)}.")
    _say(f"Sampler {the_plan.note}.")
    _say(tune.race_line(setup) + ".")
    start = time.monotonic()
    completed = tune.search_then_race(setup, the_plan, args.workers, args.seed, echo=_say, backend=backend)
    if not completed:
        _say("Interrupted: running trials were stopped (checkpoints kept) and enqueued again; run the same command "
             "to continue.")
    _say(f"Tuning took {(time.monotonic() - start) / 60:.1f} min.")
    study = backend.load(setup)
    summary = _final(setup, study, backend.runner(setup, study, ""), sampler_note=the_plan.note)
    failed = tune.failed_rows(summary, the_plan.before)
    if failed:
        _say(f"{len(failed)} trial(s) failed: " + "; ".join(f"trial {r.number}: {r.reason}" for r in failed))
    return tune.exit_status(summary, the_plan.before, completed)


def register(sub) -> None:
    p = sub.add_parser(
        "tune",
        help="search K and epsilon with Optuna, pruning nnUNetv2_train runs on nnU-Net's EMA pseudo-Dice",
        description=(
            "Each trial picks a family, K and epsilon (categorical over the name tokens), trains the canonical "
            "trainer name with nnUNetv2_train on the given folds (reusing finished runs, never training one "
            "setting and fold twice at once), reports nnU-Net's EMA pseudo-Dice after every epoch to the trial, "
            "and stops early when the pruner says so. Its value is the mean over folds of the validation Dice. "
            "The study lives in an Optuna storage (default: a journal file in the dataset's results folder): "
            "running the command again continues it; --workers and --slurm add workers to it."))
    add_training_arguments(p, "E epochs of I iterations (the names' _<E>ep<I>it suffix), e.g. 30x40; default: "
                              "nnU-Net's 1000 x 250")
    _add_space_options(p)
    _add_study_options(p)
    p.set_defaults(func=run)


def _add_space_options(p) -> None:
    p.add_argument("--families", nargs="+", default=list(sweep.DEFAULT_FAMILIES), metavar="FAMILY",
                   help="Poly families of the space (default: nnUNetTrainerPolyDice nnUNetTrainerPolyDiceCE)")
    p.add_argument("--K", nargs="+", default=list(tune.DEFAULT_K), metavar="K",
                   help="truncation orders: positive integers or inf (default: " + " ".join(tune.DEFAULT_K) + ")")
    p.add_argument("--epsilon", nargs="+", default=list(tune.DEFAULT_EPSILON), metavar="EPS",
                   help="epsilon values and/or ranges START:STOP:STEP with STEP >= 0.25, e.g. 0:2:0.5 (write "
                        "--epsilon=-0.5:1:0.5 for a negative start; default: " + " ".join(tune.DEFAULT_EPSILON) + ")")
    p.add_argument("--folds", nargs="+", metavar="FOLD",
                   help="folds every trial trains, in this order (default: 0); the value is the mean over them")
    p.add_argument("--label", metavar="NAME",
                   help="tune for one label of dataset.json: its validation Dice, and its pseudo-Dice for pruning "
                        "(default: the foreground mean)")


def _add_study_options(p) -> None:
    p.add_argument("--trials", default=20, metavar="N",
                   help="trials this command runs, over all its workers (default 20; never more than the untried "
                        "settings)")
    p.add_argument("--workers", default=1, metavar="N",
                   help="workers on this machine, each training one run at a time (default 1); with --slurm: "
                        "array tasks")
    p.add_argument("--seed", default=0, help="seed of the grid order and of the samplers (default 0)")
    p.add_argument("--seeds", nargs="+", metavar="N",
                   help="training seeds: every setting's runs are (fold, seed) pairs, each a seeded nnU-Net training "
                        "(<name>_s<N>); a search trial trains every fold with the first seed, racing adds the others "
                        "(default: none, one unseeded run per fold)")
    p.add_argument("--budget", metavar="B",
                   help="most training iterations the study may spend, as N (iterations), X%% or a fraction such as "
                        "0.25 of the full grid (settings x folds x seeds x epochs x iterations); a trial or racing "
                        "round that could exceed it is not started (default: half the grid, at least one search "
                        "trial of "
                        "every setting; without --seeds that is the whole grid)")
    p.add_argument("--race", action=argparse.BooleanOptionalAction, default=None,
                   help="after the search, give the leader and the settings not yet told apart from it more (fold, "
                        "seed) runs; needs two or more --seeds and settings (default: off; on the shipped grid's "
                        "replays racing doubled the cost without finding the best more often, see docs/tune.md)")
    p.add_argument("--grace", default=None, metavar="SECONDS",
                   help="a worker silent this long is taken for dead (killed, preempted, its node lost): its trial is "
                        "failed, its setting enqueued again and continued from checkpoint_latest.pth by another "
                        f"worker (default {GRACE_PERIOD_S}; workers beat every grace/6 s, at most 30 s; "
                        "from 6 to 86400; give every worker of a study the same value)")
    p.add_argument("--storage", metavar="URL",
                   help="Optuna storage: journal:///path/file (Optuna's journal file, no server), "
                        "postgresql://..., mysql+pymysql://..., or sqlite:///file (one worker only); default: "
                        "journal:///<nnUNet_results>/<dataset>/" + tune.STORAGE_FILE)
    p.add_argument("--study", metavar="NAME",
                   help="study name (default: <configuration>[_<plans>]_<E>ep<I>it_folds<F>[_<label>])")
    p.add_argument("--pruner", metavar="SPEC",
                   help="NAME[:keyword=value,...] with NAME in " + ", ".join((*PRUNERS, *tune.WILCOXON_PRUNERS))
                        + " and Optuna's keywords (default: none, no pruning, which replays of the shipped grid "
                          "support; with pruning we suggest median:n_startup_trials=3,n_warmup_steps=<epochs/2>,"
                          "n_min_trials=3); wilcoxon-instances / wilcoxon-cases: Optuna's WilcoxonPruner over the "
                          "trial's finished (fold, seed) runs or their validation cases (see docs/tune.md)")
    p.add_argument("--sampler", default="auto", choices=tune.SAMPLERS,
                   help="grid: the untried settings in a seeded random order, none twice; tpe: TPESampler "
                        "(multivariate, constant liar; a proposal already tried is replaced by an untried setting); "
                        "auto (default): grid when --trials covers the untried settings or is at most TPE's 10 "
                        "random start-up trials, else tpe")
    p.add_argument("--out", metavar="DIR",
                   help="folder of tune.md, tune.csv, tune_curves.png and the training logs (default: "
                        "<nnUNet_results>/<dataset>/polydice_tune/<study>)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--status", action="store_true",
                     help="show the study's trials (from its storage) and train nothing; works while it runs")
    out.add_argument("--slurm", metavar="FILE",
                     help="write an sbatch array script whose every task is one more worker of the study (--workers "
                          "tasks, --trials shared among them), runnable from a plain login shell (the interpreter by "
                          "absolute path, nnU-Net's variables exported); never overwrites")
    p.add_argument("--replay", metavar="DIR",
                   help="replay the tune against DIR, an nnU-Net results folder of finished seeded runs (sweep "
                        "--seeds, earlier tunes): nothing is trained, every run the tune asks for is read from DIR "
                        "and its recorded curve fed to the pruner, so its decisions and cost are a live tune's; the "
                        "study lives in memory; needs --seeds (default --out: ./polydice_replay/<study>)")
    p.add_argument("--worker-index", default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-outputs", action="store_true", help=argparse.SUPPRESS)
