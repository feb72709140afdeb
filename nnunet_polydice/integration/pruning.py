"""Per-epoch reports from an ``nnUNetv2_train`` run to the Optuna trial that started it (``nnunet-polydice tune``).

``tune`` runs every trial as an ordinary ``nnUNetv2_train`` subprocess and puts, in its environment,
:data:`TRIAL_ENV` = a JSON object (:class:`TrialLink`): the Optuna storage URL, the study, the trial, the
pruner, the step offset of the fold being trained and, for a ``--label`` objective, that label.
:class:`TrialPruningMixin` (a base of every trainer class of ``trainers/nnunet_polydice_trainers.py``) then,
after each epoch (after nnU-Net's own ``on_epoch_end``), having written the epoch's full-precision curve file
(:mod:`~nnunet_polydice.integration.curve_file`, in every training, tune or not):

1. reads nnU-Net's validation signal of the epoch: the EMA pseudo-Dice nnU-Net already computes for its
   best-checkpoint choice (``ema_fg_dice``), or, for a label, the same exponential moving average
   (0.9 old + 0.1 new) of that label's pseudo-Dice from ``dice_per_class_or_region``;
2. ``trial.report(value, step)`` with ``step = step_offset + epoch`` and asks ``trial.should_prune()``;
3. when pruned: saves ``checkpoint_latest.pth``, writes the marker file the link names (JSON: study,
   trial, epoch, step, value) into the fold folder, shuts the data loaders down and exits the process
   with :data:`PRUNED_EXIT_CODE`, before nnU-Net's final validation. nnU-Net's training loop runs over a
   fixed ``range(num_epochs)``, so leaving the process is the way to stop it.

A trial that is no longer running (its worker was killed and the study marked it failed) stops the run
the same way, without the marker, with :data:`ABANDONED_EXIT_CODE`: its checkpoint lets a later trial
of the same setting continue it.

A trainer started by a tune worker also ends when that worker dies (:func:`die_with_parent`): SIGTERM from
the kernel, as a ``SystemExit``, so that its data-augmentation workers are stopped too.

Without :data:`TRIAL_ENV` the mixin writes only the curve file and imports nothing more (Optuna is imported on
first use).
Storage URLs (:func:`open_storage`) are read here, so that the trainer and ``tune`` open them alike.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from nnunet_polydice.integration.conventions import ema_series, label_key
from nnunet_polydice.integration.curve_file import curve_payload, write_curve

__all__ = ["TRIAL_ENV", "PRUNED_MARKER", "PRUNED_EXIT_CODE", "ABANDONED_EXIT_CODE", "REPORT_PREFIX", "JOURNAL_SCHEME",
           "sqlite_database", "storage_file", "PRUNERS", "TrialLink", "open_storage", "storage_kind", "make_pruner",
           "ema", "signal_index", "epoch_signal", "pruned_marker", "read_pruned_marker", "TrialReporter",
           "TrialPruningMixin"]

#: The environment variable ``tune`` sets for its ``nnUNetv2_train`` subprocesses.
TRIAL_ENV = "NNUNET_POLYDICE_TRIAL"
#: The marker file a pruned run leaves in its fold folder (:func:`pruned_marker`); ``runs.fold_status`` reads it.
PRUNED_MARKER = "polydice_pruned.json"
#: Exit status of a run the pruner stopped (the worker maps it to ``optuna.TrialPruned``).
PRUNED_EXIT_CODE = 86
#: Exit status of a run whose trial is no longer running in the study (stopped, checkpoint kept).
ABANDONED_EXIT_CODE = 87
#: Start of the line the trainer prints after each report (JSON follows); the worker reads it.
REPORT_PREFIX = "[polydice-tune] "
#: ``journal:///absolute/path/file.log``: Optuna's JournalStorage on a file (no database server).
JOURNAL_SCHEME = "journal://"
#: Heartbeat of a worker's running trial (RDB storages: Optuna's own; the journal: a trial system attribute,
#: :data:`HEARTBEAT_ATTR`): at most every HEARTBEAT_INTERVAL_S seconds; a trial without one for the grace
#: period (default GRACE_PERIOD_S, ``tune --grace``) is failed and its setting enqueued again.
HEARTBEAT_INTERVAL_S = 30
GRACE_PERIOD_S = 180
HEARTBEAT_ATTR = "polydice_heartbeat"


# --------------------------------------------------------------------------------------------- storage

def storage_kind(url: str) -> str:
    """``'journal'`` for ``journal://...``, ``'sqlite'`` for ``sqlite:///...``, else ``'rdb'`` (PostgreSQL,
    MySQL, ...: any SQLAlchemy URL).

    Raises:
        ValueError: for a text that is no URL of either kind.
    """
    text = str(url)
    if text.startswith(JOURNAL_SCHEME):
        if not text[len(JOURNAL_SCHEME):]:
            raise ValueError(f"--storage {text!r} names no file; write journal:///absolute/path/file.log.")
        return "journal"
    scheme = text.split("://", 1)[0] if "://" in text else ""
    if not scheme or not all(c.isalnum() or c in "+_-" for c in scheme):
        raise ValueError(f"--storage {text!r} is not a storage URL; give sqlite:///path/file.sqlite3, "
                         f"postgresql://user@host/db, mysql+pymysql://user@host/db or journal:///path/file.log.")
    return "sqlite" if scheme.split("+")[0] == "sqlite" else "rdb"


def sqlite_database(url: str) -> tuple[str, str, str]:
    """``(scheme, database, query)`` of an SQLite URL: ``sqlite:///rel.db?timeout=5`` -> ``('sqlite', 'rel.db',
    '?timeout=5')``, ``sqlite:////abs.db`` -> ``('sqlite', '/abs.db', '')``; the database is ``''`` or
    ``':memory:'`` for an in-memory one."""
    scheme, rest = str(url).split("://", 1)
    database, sep, query = rest[1:].partition("?")
    return scheme, database, sep + query


def journal_path(url: str) -> Path:
    """The file of a ``journal://`` URL: ``journal:///abs/file.log`` -> ``/abs/file.log``
    (``journal://rel/file.log`` is relative to the working folder)."""
    return Path(str(url)[len(JOURNAL_SCHEME):])


def storage_file(url: str) -> Path | None:
    """The file a journal or SQLite storage lives in (None for a server database or an in-memory SQLite one), which
    opening the storage would create when it is missing."""
    kind = storage_kind(url)
    if kind == "journal":
        return journal_path(url)
    if kind == "sqlite":
        database = sqlite_database(url)[1]
        return Path(database) if database not in ("", ":memory:") else None
    return None


def _stale_callback_keyword(optuna) -> str:
    """The RDBStorage keyword of the stale-trial callback: ``heartbeat_stale_trial_callback`` from Optuna 4.9
    on, ``failed_trial_callback`` before."""
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"


_HEARTBEAT_JOURNAL = None


def _heartbeat_journal_class(optuna):
    """Optuna's JournalStorage with Optuna's heartbeat interface (``BaseHeartbeat``), which Optuna's journal
    lacks: a heartbeat is the trial system attribute :data:`HEARTBEAT_ATTR` (wall-clock seconds), one journal
    line per beat; a RUNNING trial is stale when its last beat (or, before any, its start) is older than the
    grace period. With it, Optuna's own machinery does the rest, as for RDB storages: a heartbeat thread
    during each trial, and ``fail_stale_trials`` (with the stale-trial callback) before each trial."""
    global _HEARTBEAT_JOURNAL
    if _HEARTBEAT_JOURNAL is None:
        import time

        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.storages._heartbeat import BaseHeartbeat
        from optuna.trial import TrialState

        class HeartbeatJournalStorage(optuna.storages.JournalStorage, BaseHeartbeat):
            def __init__(self, backend, interval: int, grace: float, callback=None):
                super().__init__(backend)
                self._polydice_heartbeat = (int(interval), float(grace), callback)

            def record_heartbeat(self, trial_id: int) -> None:
                try:
                    self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
                except (UpdateFinishedTrialError, KeyError):  # finished meanwhile: nothing to keep alive
                    pass

            def _get_stale_trial_ids(self, study_id: int) -> list[int]:
                grace, now = self._polydice_heartbeat[1], time.time()
                stale = []
                for t in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
                    beat = t.system_attrs.get(HEARTBEAT_ATTR)
                    if beat is None:
                        beat = t.datetime_start.timestamp() if t.datetime_start else now
                    if now - float(beat) > grace:
                        stale.append(t._trial_id)
                return stale

            def get_heartbeat_interval(self) -> int | None:
                return self._polydice_heartbeat[0]

            def get_heartbeat_stale_trial_callback(self):
                return self._polydice_heartbeat[2]

            def get_failed_trial_callback(self):  # the name Optuna < 4.9 calls
                return self._polydice_heartbeat[2]

        _HEARTBEAT_JOURNAL = HeartbeatJournalStorage
    return _HEARTBEAT_JOURNAL


def open_storage(url: str, heartbeat: bool = False, *, grace: float = GRACE_PERIOD_S, interval: int | None = None,
                 on_stale=None):
    """The Optuna storage of ``url`` (see :func:`storage_kind`).

    ``heartbeat`` (the worker's side): heartbeats every ``interval`` seconds (default
    :data:`HEARTBEAT_INTERVAL_S`) for the running trial; a trial without one for ``grace`` seconds is failed
    by the next worker that looks, which calls ``on_stale(study, frozen_trial)`` (tune enqueues the setting
    again). RDB storages use Optuna's heartbeat; the journal, :func:`_heartbeat_journal_class`.

    Raises:
        ValueError: when the URL is malformed or the storage cannot be opened (the reason on one line).
    """
    import optuna

    kind = storage_kind(url)
    interval = HEARTBEAT_INTERVAL_S if interval is None else int(interval)
    try:
        if kind == "journal":
            try:
                from optuna.storages.journal import JournalFileBackend
            except ImportError:  # Optuna < 4.0
                JournalFileBackend = optuna.storages.JournalFileStorage

            path = journal_path(url)
            if not path.parent.is_dir():
                raise ValueError(f"the folder {path.parent} does not exist")
            backend = JournalFileBackend(str(path))
            if heartbeat:
                return _heartbeat_journal_class(optuna)(backend, interval, grace, on_stale)
            return optuna.storages.JournalStorage(backend)
        if heartbeat:
            return optuna.storages.RDBStorage(url, heartbeat_interval=interval, grace_period=int(math.ceil(grace)),
                                              **{_stale_callback_keyword(optuna): on_stale})
        return optuna.storages.RDBStorage(url)
    except Exception as err:  # SQLAlchemy's and the drivers' errors have no common base worth naming
        first = " ".join(str(err).split("\n")[0].split())[:300]
        raise ValueError(f"--storage {url!r} cannot be opened: {first}") from None


# --------------------------------------------------------------------------------------------- pruners

#: ``--pruner`` names -> Optuna pruner classes (keywords as Optuna names them).
PRUNERS = {
    "median": "MedianPruner",
    "percentile": "PercentilePruner",
    "sha": "SuccessiveHalvingPruner",
    "hyperband": "HyperbandPruner",
    "threshold": "ThresholdPruner",
    "none": "NopPruner",
}


#: The keywords of Optuna's pruners that count trials or steps: integers only (``'auto'`` where Optuna allows it).
INTEGER_KEYWORDS = ("n_startup_trials", "n_warmup_steps", "interval_steps", "n_min_trials", "min_resource",
                    "max_resource", "reduction_factor", "min_early_stopping_rate", "bootstrap_count", "n_startup_steps")


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def _checked_value(spec: str, key: str, text: str):
    """The value of ``key=text``: an integer for :data:`INTEGER_KEYWORDS`, a finite number otherwise (or
    true/false/none/auto, which Optuna's own check judges).

    Raises:
        ValueError: for other scripts' digits (Python's int() reads '１２' as 12), a huge integer, a non-integer
            count, or inf / nan.
    """
    if not text.isascii():
        raise ValueError(f"--pruner {spec!r}: {key} takes a number written in ASCII (got {text!r}).")
    digits = text.lstrip("+-")
    if digits.isdigit() and len(digits) > 18:
        raise ValueError(f"--pruner {spec!r}: {key} takes an integer of at most 18 digits (got {len(digits)} digits).")
    value = _parse_value(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"--pruner {spec!r}: {key} takes a finite number (got {text!r}).")
    if key in INTEGER_KEYWORDS and isinstance(value, float):
        raise ValueError(f"--pruner {spec!r}: {key} counts trials or steps and takes an integer (got {text!r}).")
    return value


def parse_pruner(spec: str, names: dict[str, str] | None = None) -> tuple[str, dict]:
    """``'median:n_warmup_steps=10,n_startup_trials=4'`` -> ``('median', {...})`` (values as int, float,
    bool or text: :func:`_checked_value`), checked against the Optuna class's keywords. ``names`` maps the
    names allowed to Optuna's pruner classes (default :data:`PRUNERS`; the tuner adds its own).

    Raises:
        ValueError: for an unknown name or keyword, a keyword given twice, a malformed ``key=value`` or a
            value that is not a finite number of the keyword's kind; the sentence names what is allowed.
    """
    import optuna

    names = PRUNERS if names is None else names
    name, _, rest = str(spec).strip().partition(":")
    name = name.strip().lower()
    if name not in names:
        raise ValueError(f"--pruner {spec!r}: unknown pruner {name!r}; allowed: {', '.join(names)} "
                         f"(optionally followed by :keyword=value,... with Optuna's keywords).")
    cls = getattr(optuna.pruners, names[name])
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    kwargs = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"--pruner {spec!r}: {item!r} is not keyword=value.")
        if key not in allowed:
            raise ValueError(f"--pruner {spec!r}: {names[name]} takes no {key}; its keywords: "
                             f"{', '.join(allowed) or 'none'}.")
        if key in kwargs:
            raise ValueError(f"--pruner {spec!r}: {key} is given twice; give each keyword once.")
        kwargs[key] = _checked_value(spec, key, value.strip())
    return name, kwargs


def make_pruner(spec: str, max_resource: int | None = None):
    """The Optuna pruner of a ``--pruner`` spec (:func:`parse_pruner`).

    ``max_resource`` (the steps of a whole trial: folds x epochs) is given to Hyperband unless the spec
    sets it, so that every process (worker and trainer) builds the same brackets.

    Raises:
        ValueError: for a bad spec or keyword values the Optuna class refuses.
    """
    import optuna

    name, kwargs = parse_pruner(spec)
    cls = getattr(optuna.pruners, PRUNERS[name])
    if name == "hyperband" and max_resource is not None:
        kwargs.setdefault("max_resource", int(max_resource))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        texts = [f"{k}={v!r}" for k, v in kwargs.items() if isinstance(v, str)]
        if texts:  # Optuna compares them with numbers and says only that '<' failed
            raise ValueError(f"--pruner {spec!r}: {PRUNERS[name]} takes numbers (or true/false/none), not text: "
                             f"{', '.join(texts)}.") from None
        raise ValueError(f"--pruner {spec!r}: {PRUNERS[name]} refuses these values: {err}") from None


# ------------------------------------------------------------------------------------- the signal

def ema(values, weight_old: float = 0.9) -> float | None:
    """nnU-Net's moving average of a series (``new = 0.9 old + 0.1 value``, the first value as it is),
    NaN values skipped (a class absent from an epoch's validation batches has no value then), which is
    :func:`conventions.ema_series` of the finite values; None when there is no finite value."""
    series = ema_series([v for v in map(float, values) if not math.isnan(v)], weight_old)
    return series[-1] if series else None


def signal_index(key: str, foreground) -> int:
    """Position of a summary.json label key (``'2'``, or ``'(1, 2)'`` for a region) among nnU-Net's
    ``dice_per_class_or_region`` entries, which follow ``foreground`` (the label manager's
    ``foreground_regions`` or ``foreground_labels``).

    Raises:
        ValueError: when the key is not among them.
    """
    keys = [label_key(f) for f in foreground]
    if key not in keys:
        raise ValueError(f"label key {key!r} is not among this training's classes {keys}.")
    return keys.index(key)


def logger_reader(logger):
    """nnU-Net's trainer logger as ``get_value(key, step)``: nnunetv2 2.7.0 added ``get_value`` (MetaLogger);
    2.5.x-2.6.x keep the same keys in the dict ``my_fantastic_logging`` (step None: the whole list)."""
    if hasattr(logger, "get_value"):
        return logger.get_value
    logs = logger.my_fantastic_logging
    return lambda key, step: logs[key] if step is None else logs[key][step]


def epoch_signal(get_value, index: int | None) -> float | None:
    """This epoch's validation signal from nnU-Net's logger (``get_value(key, step)``): ``ema_fg_dice``
    when ``index`` is None, else :func:`ema` of entry ``index`` of ``dice_per_class_or_region``."""
    if index is None:
        value = float(get_value("ema_fg_dice", step=-1))
        return None if math.isnan(value) else value
    return ema(per_class[index] for per_class in get_value("dice_per_class_or_region", step=None))


# ------------------------------------------------------------------------------------- the link

@dataclass(frozen=True)
class TrialLink:
    """What a trainer needs to report to its trial; travels as JSON in :data:`TRIAL_ENV`."""

    storage: str
    study: str
    trial_id: int
    trial_number: int
    pruner: str = "none"
    max_resource: int | None = None
    step_offset: int = 0
    label_key: str | None = None
    marker: str = PRUNED_MARKER
    study_uid: str = ""
    worker_pid: int = 0  # the tune worker that started this nnUNetv2_train (its parent); 0: unknown

    def to_env(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_env(cls, environ=None) -> TrialLink | None:
        """The link in ``environ`` (default os.environ), None when :data:`TRIAL_ENV` is unset or empty.

        Raises:
            ValueError: when the variable is set but is not such a JSON object.
        """
        text = (os.environ if environ is None else environ).get(TRIAL_ENV, "")
        if not text.strip():
            return None
        try:
            data = json.loads(text)
            return cls(**data)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{TRIAL_ENV} is set but is not a trial link written by nnunet-polydice tune "
                             f"({err}); unset it to train without reporting.") from None


def _exit_on_sigterm(signum, frame):
    sys.exit(128 + signum)


def die_with_parent(parent_pid: int) -> bool:
    """Make this process end when its parent ``parent_pid`` dies (Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``),
    and make SIGTERM a ``SystemExit`` so that Python's exit handlers run (multiprocessing's stops the daemonic
    data-augmentation workers, which would otherwise outlive the training). For the ``nnUNetv2_train`` of a tune
    worker that is killed outright: without this the training would go on, unwatched, beside the worker that
    takes its trial over. Returns False where the kernel offers no such request (then nothing is changed)."""
    if not sys.platform.startswith("linux") or parent_pid <= 0:
        return False
    import ctypes

    try:
        if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
            return False
    except (OSError, AttributeError):
        return False
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if os.getppid() != parent_pid:  # it died before the request: nobody will send the signal
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def pruned_marker(link: TrialLink, epoch: int, value) -> dict:
    """The JSON object of the marker a pruned run leaves in its fold folder: the tool, the study (name and uid), the
    trial, the epoch and step it was pruned after, and its last value. Read back by :func:`read_pruned_marker`."""
    return {"tool": "nnunet-polydice tune", "study": link.study, "study_uid": link.study_uid,
            "trial": link.trial_number, "epoch": epoch, "step": link.step_offset + epoch, "value": value}


def read_pruned_marker(path) -> dict:
    """The marker of :func:`pruned_marker` at ``path`` (``{}`` when it is unreadable or not a JSON object)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


class TrialReporter:
    """The trainer's side of a trial: report a value at an epoch, learn whether to stop."""

    def __init__(self, link: TrialLink):
        import optuna

        self.link = link
        storage = open_storage(link.storage)
        # RandomSampler: Trial() calls the sampler's before_trial, which must not touch the trial here
        study = optuna.load_study(study_name=link.study, storage=storage, sampler=optuna.samplers.RandomSampler(),
                                  pruner=make_pruner(link.pruner, link.max_resource))
        self.trial = optuna.trial.Trial(study, link.trial_id)

    def running(self) -> bool:
        """Whether the trial is still running in the study (not failed by a heartbeat check, say)."""
        import optuna

        state = self.trial.storage.get_trial(self.link.trial_id).state
        return state == optuna.trial.TrialState.RUNNING

    def report(self, value: float | None, epoch: int) -> bool:
        """Report ``value`` at step ``step_offset + epoch`` (nothing for None) and return the pruner's
        decision (False before any value: nothing to judge)."""
        if value is None:
            return False
        self.trial.report(float(value), self.link.step_offset + int(epoch))
        return bool(self.trial.should_prune())


class TrialPruningMixin:
    """Mixed into every trainer of this package; inactive unless :data:`TRIAL_ENV` is set (see the module
    docstring). It runs after nnU-Net's ``on_epoch_end`` (which saves the periodic and best checkpoints)."""

    _polydice_reporter = None  # TrialReporter, made on the first epoch end when the link is set

    def on_train_start(self):
        super().on_train_start()
        link = TrialLink.from_env()
        if link is not None and link.worker_pid and os.getppid() == link.worker_pid:  # not a DDP rank's process
            die_with_parent(link.worker_pid)

    def on_epoch_end(self):
        epoch = self.current_epoch  # nnU-Net increments it at the end of its on_epoch_end
        super().on_epoch_end()
        if getattr(self, "local_rank", 0) != 0:
            return
        get_value = logger_reader(self.logger)
        write_curve(self.output_folder, curve_payload(type(self).__name__, lambda key: get_value(key, step=None)))
        if TRIAL_ENV not in os.environ:
            return
        link = TrialLink.from_env()
        if link is None:
            return
        if self._polydice_reporter is None:
            self._polydice_reporter = TrialReporter(link)
        reporter = self._polydice_reporter
        index = None
        if link.label_key is not None:
            lm = self.label_manager
            index = signal_index(link.label_key, lm.foreground_regions if lm.has_regions else lm.foreground_labels)
        value = epoch_signal(get_value, index)
        if not reporter.running():
            self._polydice_stop(epoch, value, pruned=False)
        prune = reporter.report(value, epoch)
        print(REPORT_PREFIX + json.dumps({"trial": link.trial_number, "epoch": epoch, "step": link.step_offset + epoch,
                                          "value": value, "prune": prune}), flush=True)
        if prune:
            self._polydice_stop(epoch, value, pruned=True)

    def _polydice_stop(self, epoch: int, value, pruned: bool):
        """Save checkpoint_latest (as nnU-Net's periodic save would have), write the marker when pruned,
        shut the data loaders down and leave the process."""
        link = self._polydice_reporter.link
        self.current_epoch -= 1  # nnU-Net's on_epoch_end already counted this epoch (as in on_train_end)
        self.save_checkpoint(os.path.join(self.output_folder, "checkpoint_latest.pth"))
        self.current_epoch += 1
        if pruned:
            Path(self.output_folder, link.marker).write_text(json.dumps(pruned_marker(link, epoch, value), indent=1),
                                                             encoding="utf-8")
            self.print_to_log_file(f"Pruned by nnunet-polydice tune (study {link.study}, trial {link.trial_number}) "
                                   f"after epoch {epoch}: value {value}; checkpoint_latest.pth kept.")
        else:
            self.print_to_log_file(f"Trial {link.trial_number} of study {link.study} is no longer running; "
                                   f"stopped after epoch {epoch}, checkpoint_latest.pth kept.")
        for loader in (getattr(self, "dataloader_train", None), getattr(self, "dataloader_val", None)):
            if hasattr(loader, "_finish"):
                loader._finish()
        sys.stdout.flush()
        sys.exit(PRUNED_EXIT_CODE if pruned else ABANDONED_EXIT_CODE)
