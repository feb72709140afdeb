"""The study: open or load it (checking its definition), the queue of enqueued settings, and the samplers
(grid order, TPE without repeats).
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

from nnunet_polydice.experiments.tune import record, takeover
from nnunet_polydice.experiments.tune.optuna_api import fixed_params
from nnunet_polydice.experiments.tune.setup import TuneSetup, default_storage_url, make_study_pruner
from nnunet_polydice.experiments.tune.space import SearchSpace, Setting
from nnunet_polydice.integration import pruning

__all__ = ["SAMPLERS", "TPE_STARTUP", "open_study", "load_study", "setting_of", "untried_settings", "enqueue_grid",
           "choose_sampler", "sampler_reason", "NoRepeatSampler", "make_sampler"]

SAMPLERS = ("auto", "grid", "tpe", "random")
#: TPESampler's own default n_startup_trials: its first 10 trials are independent random draws.
TPE_STARTUP = 10


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # our own lines say what happened to each trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_study(setup: TuneSetup, *, sampler=None, heartbeat: bool = False, create: bool = True,
               echo: Callable[[str], None] = lambda s: None, storage=None):
    """Create (or load) the study and check that it was made for the same definition.

    ``heartbeat`` (a worker): its storage sends heartbeats for the worker's running trial and fails, with
    :func:`takeover.stale_callback` (which says so through ``echo``), trials whose worker fell silent for
    ``setup.grace`` seconds. ``storage``: an Optuna storage object to use instead of the setup's URL (a replay's).

    Returns ``(study, uid)``; ``uid`` tells this study from a namesake in another storage (pruned markers).

    Raises:
        ValueError: when the storage cannot be opened, the study belongs to another tool, or was created
            for another dataset, configuration, folds, schedule, label or space.
    """
    import optuna

    _quiet_optuna()
    if storage is None and setup.storage == default_storage_url(setup.results, setup.dataset):
        Path(pruning.journal_path(setup.storage)).parent.mkdir(parents=True, exist_ok=True)
    if storage is None:
        storage = pruning.open_storage(setup.storage, heartbeat=heartbeat, grace=setup.grace,
                                       interval=takeover.heartbeat_interval(setup.grace),
                                       on_stale=takeover.stale_callback(echo))
    pruner = make_study_pruner(setup.pruner, setup.max_resource)
    if create:
        study = optuna.create_study(storage=storage, study_name=setup.study, direction="maximize",
                                    load_if_exists=True, sampler=sampler, pruner=pruner)
    else:
        study = load_study(setup.storage, setup.study, storage=storage, sampler=sampler, pruner=pruner)
    attrs = study.user_attrs
    wanted = setup.definition()
    if record.DEFINITION not in attrs:
        if study.get_trials(deepcopy=False):
            raise ValueError(f"study {setup.study!r} in {setup.storage} was not created by nnunet-polydice tune; "
                             f"give another --study.")
        study.set_user_attr(record.DEFINITION, wanted)
        study.set_user_attr(record.UID, uuid.uuid4().hex)
    elif attrs[record.DEFINITION] != wanted:
        had = attrs[record.DEFINITION]
        diff = [k for k in wanted if had.get(k) != wanted[k]]
        raise ValueError(f"study {setup.study!r} was created for another {', '.join(diff)} "
                         f"({'; '.join(f'{k}: {had.get(k)}' for k in diff)}); rerun with those options, or give "
                         f"another --study for this one.")
    if create and setup.budget is not None and attrs.get(record.BUDGET) != setup.budget:
        study.set_user_attr(record.BUDGET, setup.budget)  # the budget of the last command, for --status
    return study, study.user_attrs.get(record.UID, "")


def load_study(url: str, name: str, *, storage=None, sampler=None, pruner=None):
    """An existing study.

    A journal or SQLite file that does not exist is not created (opening it would): that is "no study there yet".

    Raises:
        ValueError: when the storage has no study of that name (naming those it has), or its file does not exist.
    """
    import optuna

    _quiet_optuna()
    if storage is None:
        missing = pruning.storage_file(url)
        if missing is not None and not missing.exists():
            raise ValueError(f"no study there yet: {url} does not exist (a tune without --status creates it).")
    storage = storage or pruning.open_storage(url)
    names = optuna.get_all_study_names(storage)
    if name not in names:
        raise ValueError(f"{url} has no study {name!r}; studies there: {', '.join(names) or 'none'} "
                         f"(give --study NAME, or the options that make its default name).")
    return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)


def setting_of(space: SearchSpace, trial) -> Setting | None:
    """The setting of a trial (of a waiting one: its enqueued parameters), None when it has none."""
    params = fixed_params(trial)
    try:
        return space.setting(params["family"], params["K"], params["epsilon"])
    except KeyError:
        return None


def untried_settings(study, space: SearchSpace) -> list[Setting]:
    """Settings without a COMPLETE, PRUNED or RUNNING trial (WAITING and FAILed ones count as untried)."""
    from optuna.trial import TrialState

    done = {setting_of(space, t) for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)}
    return [s for s in space.settings if s not in done]


def enqueue_grid(study, space: SearchSpace, seed: int | None, limit: int | None = None) -> list[Setting]:
    """Enqueue untried settings not already waiting, in a seeded random order (at most ``limit`` in all
    waiting, so that racing trials enqueued later are not stuck behind search trials); return them.

    Optuna hands a waiting trial to exactly one worker, so workers never draw the same point, and a later
    command enqueues the rest: random search without replacement.
    """
    import random

    from optuna.trial import TrialState

    waiting = {setting_of(space, t) for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    todo = [s for s in untried_settings(study, space) if s not in waiting]
    random.Random(seed).shuffle(todo)
    if limit is not None:
        todo = todo[:max(0, limit - len(waiting))]
    for s in todo:
        study.enqueue_trial(s.params, user_attrs={"enqueued_at": time.time()})  # takeover.left_over
    return todo


def choose_sampler(requested: str, n_trials: int, n_untried: int) -> str:
    """``auto`` -> ``grid`` (the untried settings in a seeded random order: brute force when the trials cover
    them, random search without replacement otherwise) when this command's trials cover every untried
    setting or are at most TPE's :data:`TPE_STARTUP` random start-up trials; else ``tpe``."""
    if requested not in SAMPLERS:
        raise ValueError(f"--sampler {requested!r}: allowed: {', '.join(SAMPLERS)}.")
    if requested != "auto":
        return requested
    return "grid" if n_trials >= n_untried or n_trials <= TPE_STARTUP else "tpe"


def sampler_reason(requested: str, chosen: str, n_trials: int, n_untried: int) -> str:
    """Why this sampler, in one sentence for the console and tune.md."""
    if requested != "auto":
        return f"{chosen}: asked for with --sampler"
    if chosen == "grid" and n_trials >= n_untried:
        return (f"grid: {n_trials} trials cover the {n_untried} untried settings, so each is tried once in a seeded "
                f"order (brute force)")
    if chosen == "grid":
        return (f"grid: {n_trials} trials are no more than TPE's {TPE_STARTUP} random start-up trials, so TPE would "
                f"only draw at random, with repeats; a seeded random order of the {n_untried} untried settings "
                f"draws without repeats")
    return (f"tpe: {n_trials} trials over {n_untried} untried settings, more than TPE's {TPE_STARTUP} random "
            f"start-up trials, so its model has trials to learn from; a proposal already tried is replaced by an "
            f"untried setting")


class NoRepeatSampler:
    """A sampler that never proposes a setting with a trial (complete, pruned or running) while untried ones
    remain: TPE's (or random) joint proposal of (family, K, epsilon) when it is untried, else a seeded random
    untried setting. Enqueued trials keep their fixed parameters (Optuna applies them over any sampler).
    """

    def __init__(self, inner, space: SearchSpace, seed: int | None):
        import random

        from optuna.distributions import CategoricalDistribution

        self.inner, self.space, self.rng = inner, space, random.Random(seed)
        self.dists = {k: CategoricalDistribution(v) for k, v in space.grid().items()}

    def __getattr__(self, name):  # reseed_rng, before_trial, after_trial, ...: the inner sampler's
        return getattr(self.inner, name)

    def infer_relative_search_space(self, study, trial):
        return dict(self.dists)

    def sample_relative(self, study, trial, search_space):
        inner_space = self.inner.infer_relative_search_space(study, trial)
        proposal = self.inner.sample_relative(study, trial, inner_space) if inner_space else {}
        untried = untried_settings(study, self.space)
        try:
            proposed = self.space.setting(proposal["family"], proposal["K"], proposal["epsilon"])
        except KeyError:
            proposed = None
        if proposed is not None and (proposed in untried or not untried):
            return dict(proposed.params)
        if not untried:
            return {}
        return dict(self.rng.choice(untried).params)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)


def make_sampler(kind: str, seed: int | None, worker_index: int = 0, n_existing: int = 0,
                 space: SearchSpace | None = None):
    """The worker's Optuna sampler for the trials the queue does not give: TPE (multivariate, constant
    liar so that running trials steer the others away) or random, inside :class:`NoRepeatSampler` when
    ``space`` is given. The seed is shifted per worker and by the trials already in the study, so that two
    workers, or a rerun, do not repeat the same draws."""
    import optuna

    shifted = None if seed is None else int(seed) + 1000 * int(worker_index) + int(n_existing)
    if kind == "random":
        inner = optuna.samplers.RandomSampler(seed=shifted)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            inner = optuna.samplers.TPESampler(seed=shifted, multivariate=True, constant_liar=True)
    return inner if space is None else NoRepeatSampler(inner, space, shifted)
