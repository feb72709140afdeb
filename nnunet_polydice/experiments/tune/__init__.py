"""Tuning K and epsilon with Optuna, pruning on nnU-Net's learning curves: the library of ``nnunet-polydice tune``.

No argparse and no printing: messages go through an ``echo`` callable. One small module per concept:

==============  ================================================================================================
``space``       the search space (:class:`Setting`, :class:`SearchSpace`)
``setup``       :class:`TuneSetup`, every option checked (:func:`prepare`), its round trips to argv and the study
``record``      every trial and study attribute (names, typed readers and writers, :class:`FailKind`)
``optuna_api``  the one adapter over Optuna's private API
``study``       open and load the study, the queue, the samplers
``budget``      what a trial costs, what the study spent, the reservation lock
``values``      a run's validation Dice (foreground mean, a label, per case)
``runner``      **the seam**: run one (setting, fold, seed) -> curve, value, cost (:class:`RunOutcome`); live
``replay``      the same seam read from a finished seeded grid: an exact replay, no training
``takeover``    workers that die: fold locks with heartbeats, stale trials enqueued again
``objective``   the function Optuna calls: orchestration of a trial's runs
``worker``      a worker's loop and the local worker pool
``race``        racing the best settings after the search
``flow``        one command: plan, search, race, exit status
``report``      the outcome, computed (:class:`Summary`)
``render``      the outcome as text, Markdown, CSV and a plot; the output files
==============  ================================================================================================
"""

from nnunet_polydice.experiments.tune.budget import remaining_epochs, spent_iterations, trial_cost
from nnunet_polydice.experiments.tune.flow import (
    Plan,
    exit_status,
    failed_rows,
    plan,
    race_line,
    run_trials,
    search_then_race,
)
from nnunet_polydice.experiments.tune.race import race, race_contenders
from nnunet_polydice.experiments.tune.record import FailKind
from nnunet_polydice.experiments.tune.render import (
    OUTPUT_FILES,
    check_outputs_free,
    cost_lines,
    live_line,
    markdown,
    next_commands,
    plot_curves,
    settings_csv,
    settings_table,
    trials_csv,
    trials_table,
    verdict_lines,
    write_outputs,
)
from nnunet_polydice.experiments.tune.replay import ReplayBackend, ReplayRunner, check_grid, run_replay
from nnunet_polydice.experiments.tune.report import SettingRow, Summary, TrialRow, summarize, trial_rows
from nnunet_polydice.experiments.tune.runner import (
    LiveBackend,
    LiveRunner,
    RunFailed,
    RunInterrupted,
    RunOutcome,
    RunRequest,
    epoch_note,
)
from nnunet_polydice.experiments.tune.setup import (
    CASE_STRIDE,
    DEFAULT_PRUNER,
    NNUNET_SCHEDULE,
    REPLAY_STORAGE,
    STORAGE_FILE,
    WILCOXON_PRUNERS,
    TuneSetup,
    absolute_storage,
    check_storage_for_workers,
    default_storage_url,
    default_study_name,
    make_study_pruner,
    median_pruner,
    prepare,
    resolve_label,
    setup_of_study,
    tune_argv,
    wilcoxon_unit,
)
from nnunet_polydice.experiments.tune.space import (
    DEFAULT_EPSILON,
    DEFAULT_K,
    MIN_EPSILON_STEP,
    SearchSpace,
    Setting,
    build_space,
    epsilon_range,
    parse_epsilons,
)
from nnunet_polydice.experiments.tune.study import (
    SAMPLERS,
    TPE_STARTUP,
    NoRepeatSampler,
    choose_sampler,
    enqueue_grid,
    load_study,
    make_sampler,
    open_study,
    sampler_reason,
    setting_of,
    untried_settings,
)
from nnunet_polydice.experiments.tune.takeover import LOCK_NAME, acquire_lock, lock_is_stale
from nnunet_polydice.experiments.tune.values import case_values, finished_values, fold_value
from nnunet_polydice.experiments.tune.worker import run_worker, worker_processes, worker_shares

__all__ = [
    "CASE_STRIDE", "DEFAULT_EPSILON", "DEFAULT_K", "FailKind", "LOCK_NAME", "LiveBackend", "LiveRunner",
    "MIN_EPSILON_STEP", "NNUNET_SCHEDULE", "NoRepeatSampler", "OUTPUT_FILES", "Plan", "REPLAY_STORAGE",
    "ReplayBackend", "ReplayRunner", "run_replay", "RunFailed", "RunInterrupted", "RunOutcome", "RunRequest",
    "SAMPLERS",
    "STORAGE_FILE", "SearchSpace", "Setting", "SettingRow", "Summary", "TPE_STARTUP", "TrialRow", "TuneSetup",
    "WILCOXON_PRUNERS", "absolute_storage", "acquire_lock", "build_space", "case_values", "check_grid",
    "check_outputs_free", "check_storage_for_workers", "choose_sampler", "cost_lines", "DEFAULT_PRUNER",
    "median_pruner",
    "default_storage_url", "default_study_name", "enqueue_grid", "epoch_note", "epsilon_range", "exit_status",
    "failed_rows", "finished_values", "fold_value", "live_line", "load_study", "lock_is_stale", "make_sampler",
    "make_study_pruner", "markdown", "next_commands", "open_study", "parse_epsilons", "plan", "plot_curves",
    "prepare", "race", "race_contenders", "race_line", "remaining_epochs", "resolve_label", "run_trials",
    "run_worker", "sampler_reason", "search_then_race", "settings_csv", "settings_table", "setting_of",
    "setup_of_study", "spent_iterations", "summarize", "trial_cost", "trial_rows", "trials_csv", "trials_table",
    "tune_argv", "untried_settings", "verdict_lines", "wilcoxon_unit", "worker_processes", "worker_shares",
    "write_outputs",
]
