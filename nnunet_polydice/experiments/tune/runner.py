"""The seam of a tune: run one (setting, fold, seed) and say its curve, value and cost (:class:`RunOutcome`).

A runner answers two questions for the rest of the tuner, and nothing else touches runs:

* ``finished_summary(trainer, fold)`` / ``is_finished(trainer, fold)``: the ``validation/summary.json`` of a
  finished run, read at no cost (the race, the report, the budget's reservation);
* ``run(request)``: read, continue or train the run of one trial, feeding the trial's pruner the run's
  learning curve epoch by epoch, and return a :class:`RunOutcome`, or raise :class:`RunFailed` (with the
  epochs it trained) or :class:`RunInterrupted` (Ctrl-C / SIGTERM, with the epochs it trained).

:class:`LiveRunner` works on nnU-Net's results folders (locks, ``nnUNetv2_train`` in a subprocess whose trainer
reports to the trial itself). :class:`~nnunet_polydice.experiments.tune.replay.ReplayRunner` reads finished
seeded runs of a grid instead and reports their recorded curves: the same decisions, no training.

A live run, by the state of its fold folder (:func:`~nnunet_polydice.experiments.runs.fold_status`):

* finished (``skip``; or ``foreign``: a summary copied in): reused, its validation Dice is the value, 0 epochs;
* ``pruned`` by this study (the marker names it): pruned at once, nothing trained; pruned by another study:
  the marker is removed and the run continued (``--c``);
* ``validate`` / ``continue`` / ``fresh``: ``nnUNetv2_train`` (``--val`` / ``--c`` / plain), linked to the trial
  (:mod:`nnunet_polydice.integration.pruning`): after each epoch it reports nnU-Net's EMA pseudo-Dice at step
  ``index * epochs + epoch`` and exits when the pruner says so.

Before a fold is read or trained the trial creates the fold's lock (:mod:`~nnunet_polydice.experiments.locks`);
a live lock of another trial fails it at once (:attr:`FailKind.BUSY`).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nnunet_polydice.experiments import locks, nnunet_env, processes
from nnunet_polydice.experiments.runs import PRUNED_MARKER, fold_status
from nnunet_polydice.experiments.tune.optuna_api import trial_id, trial_state
from nnunet_polydice.experiments.tune.record import FailKind
from nnunet_polydice.experiments.tune.setup import TuneSetup, wilcoxon_unit
from nnunet_polydice.experiments.tune.space import Setting
from nnunet_polydice.experiments.tune.study import load_study, open_study
from nnunet_polydice.experiments.tune.values import fold_value
from nnunet_polydice.integration import pruning
from nnunet_polydice.integration.locate import with_trainers_folder

__all__ = ["RunRequest", "RunOutcome", "RunFailed", "RunInterrupted", "LiveRunner", "LiveBackend",
           "epoch_note"]


@dataclass(frozen=True)
class RunRequest:
    """One (setting, fold, seed) run a trial asks for."""

    trial: object  # the running optuna.Trial
    setting: Setting
    index: int  # position of the instance in the setup's instance order (its steps start at index x epochs)
    instance: tuple  # (fold, seed)
    racing: bool = False  # a racing trial's run: never pruned
    on_epoch: Callable[[int, float | None], None] = field(default=lambda epoch, value: None)


@dataclass(frozen=True)
class RunOutcome:
    """What one run gave its trial: the validation Dice (None when pruned), the curve it reported
    (``{epoch: value}``), its ``summary.json`` (None when pruned), the epochs trained for it (its cost), whether
    it was read from a finished run, and, when pruned, why."""

    value: float | None
    curve: dict
    summary: dict | None
    epochs: int
    reused: bool = False
    pruned: str | None = None
    note: str = ""  # how a reused run was found, for the live line


class RunFailed(Exception):
    """A run that gives no value and is not pruned: ``kind`` says why, ``epochs`` what it trained first."""

    def __init__(self, kind: FailKind, reason: str, epochs: int = 0):
        super().__init__(reason)
        self.kind, self.reason, self.epochs = FailKind(kind), reason, int(epochs)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a run (the training was stopped, its checkpoint kept), with the epochs it trained."""

    def __init__(self, epochs: int = 0):
        super().__init__()
        self.epochs = int(epochs)


def epoch_note(epoch, epochs: int) -> str:
    """``'epoch 5 of 0-9'``: nnU-Net's 0-based epoch number (as its log prints "Epoch 5") and its range, the one
    convention of every line, table, marker and plot that says when a trial was pruned."""
    return f"epoch {int(epoch)} of 0-{int(epochs) - 1}"


def pruned_text(epoch, epochs: int, inst, value) -> str:
    """The reason of a run the pruner stopped, live or replayed alike."""
    shown = "n/a" if value is None else format(value, ".4f")
    return f"pruned after {epoch_note(epoch, epochs)} of {inst.label} (value {shown})"


def pruned_earlier_text(marker: dict, epochs: int, inst) -> str:
    return (f"pruned earlier in trial {marker.get('trial')} (after {epoch_note(marker.get('epoch', -1), epochs)} "
            f"of {inst.label})")


def run_logged(argv: Sequence[str], env: dict, log_path: Path, on_report: Callable[[dict], None]) -> int:
    """Run ``argv``, its output appended to ``log_path``; each report line of the trainer goes to
    ``on_report``. Returns the exit status; on an exception (Ctrl-C) the process is stopped first."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a", encoding="utf-8") as log, \
            processes.started(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              errors="replace", bufsize=1) as proc:
        try:
            for line in proc.stdout:
                log.write(line)
                at = line.find(pruning.REPORT_PREFIX)
                if at >= 0:
                    try:
                        on_report(json.loads(line[at + len(pruning.REPORT_PREFIX):]))
                    except ValueError:
                        pass
            return proc.wait()
        finally:
            proc.stdout.close()


class LiveRunner:
    """Runs on nnU-Net's results folders of ``setup`` for the trials of ``study`` (see the module docstring)."""

    replay = False

    def __init__(self, setup: TuneSetup, study, study_uid: str, *, environ: dict | None = None,
                 executable: str | None = None):
        self.setup, self.study, self.uid = setup, study, study_uid
        self.env = with_trainers_folder(environ)
        self.env.pop(pruning.TRIAL_ENV, None)
        self.executable = executable
        self.host = socket.gethostname()

    def _folder(self, trainer: str, fold: str) -> Path:
        return self.setup.fold_folder(trainer, fold)

    def finished_summary(self, trainer: str, fold: str) -> dict | None:
        status = fold_status(self._folder(trainer, fold))
        return status.summary if status.state in ("skip", "foreign") else None

    def is_finished(self, trainer: str, fold: str) -> bool:
        return fold_status(self._folder(trainer, fold)).finished

    def _exe(self) -> str:
        if self.executable is None:
            self.executable = nnunet_env.train_executable(self.env)
        return self.executable

    def _trial_running(self, tid: int) -> bool:
        from optuna.trial import TrialState

        return trial_state(self.study, tid) == TrialState.RUNNING

    def run(self, request: RunRequest) -> RunOutcome:
        """The run of ``request`` under its fold lock (a live lock of another trial: :attr:`FailKind.BUSY`)."""
        trial, setting, inst = request.trial, request.setting, request.instance
        folder = self._folder(self.setup.run_name(setting, inst), inst.fold)
        owner = locks.trial_owner(self.host, os.getpid(), self.setup.study, self.uid, trial.number, trial_id(trial))

        def why_stale(holder: dict) -> str | None:
            return locks.lock_is_stale(holder, self.uid, self._trial_running, self.host,
                                       age=locks.lock_age(folder), grace=self.setup.grace)

        holder = locks.take_lock(folder, owner, why_stale)
        if holder is not None:
            raise RunFailed(FailKind.BUSY, f"busy: {inst.label} of {setting.trainer} is being trained by "
                                           f"{locks.holder_text(holder)}")
        with locks.held(folder, self.setup.grace):
            return self._run_locked(request, folder)

    def _run_locked(self, request: RunRequest, folder: Path) -> RunOutcome:
        inst, epochs = request.instance, self.setup.epochs
        status = fold_status(folder)
        state = status.state
        if state in ("skip", "foreign"):
            try:
                if status.summary is None:  # a foreign summary.json that cannot be read
                    raise ValueError(status.summary_problem)
                value = fold_value(status.summary, self.setup.label_key)
            except ValueError as err:
                raise RunFailed(FailKind.TRAINING, f"{inst.label}: finished run unusable: {err}") from None
            return RunOutcome(value, {}, status.summary, 0, reused=True, note=f"reused ({state})")
        if state == "pruned":
            marker = pruning.read_pruned_marker(folder / PRUNED_MARKER)
            ours = marker.get("study_uid") == self.uid if marker.get("study_uid") else \
                marker.get("study") == self.setup.study
            if ours:
                return RunOutcome(None, {}, None, 0, pruned=pruned_earlier_text(marker, epochs, inst))
            (folder / PRUNED_MARKER).unlink()
            state = "continue"
        return self._train(request, folder, state)

    def _link_env(self, request: RunRequest) -> dict:
        env = dict(self.env)
        if wilcoxon_unit(self.setup.pruner) is None:  # the trainer reports its curve; racing runs are never pruned
            trial = request.trial
            link = pruning.TrialLink(storage=self.setup.storage, study=self.setup.study, trial_id=trial_id(trial),
                                     trial_number=trial.number,
                                     pruner="none" if request.racing else self.setup.pruner,
                                     max_resource=self.setup.max_resource,
                                     step_offset=request.index * self.setup.epochs,
                                     label_key=self.setup.label_key, marker=PRUNED_MARKER, study_uid=self.uid,
                                     worker_pid=os.getpid())
            env[pruning.TRIAL_ENV] = link.to_env()
        return env

    def _train(self, request: RunRequest, folder: Path, state: str) -> RunOutcome:
        """``nnUNetv2_train`` for ``state``; its cost is the epochs it reported (every epoch of the schedule when
        the pruner takes no curve, and so nothing is reported)."""
        inst, epochs, trial = request.instance, self.setup.epochs, request.trial
        argv = nnunet_env.train_command(self.setup.dataset, self.setup.configuration, inst.fold,
                                      self.setup.run_name(request.setting, inst), state, plans=self.setup.plans,
                                      device=self.setup.device)
        env = self._link_env(request)
        reports = pruning.TRIAL_ENV in env
        suffix = "" if inst.seed is None else f"_s{inst.seed}"
        log = self.setup.out_dir / "logs" / f"trial{trial.number:04d}_fold{inst.fold}{suffix}.log"
        curve = {}

        def on_report(report: dict) -> None:
            curve[int(report["epoch"])] = report.get("value")
            request.on_epoch(int(report["epoch"]), report.get("value"))

        def cost() -> int:
            return len(curve) if reports else epochs

        try:
            rc = run_logged([self._exe(), *argv[1:]], env, log, on_report)
        except KeyboardInterrupt:
            raise RunInterrupted(cost()) from None
        if rc == pruning.PRUNED_EXIT_CODE:
            last = max(curve) if curve else -1
            return RunOutcome(None, curve, None, cost(), pruned=pruned_text(last, epochs, inst, curve.get(last)))
        if rc == pruning.ABANDONED_EXIT_CODE:
            raise RunFailed(FailKind.ABANDONED, f"stopped on {inst.label}: the trial is no longer running (taken "
                                                f"for dead; its setting was enqueued again)", cost())
        if rc != 0:
            raise RunFailed(FailKind.TRAINING, f"nnUNetv2_train exited with status {rc} on {inst.label}; see {log}",
                            cost())
        done = fold_status(folder)
        if not done.finished:
            raise RunFailed(FailKind.TRAINING, f"{inst.label} is not finished after nnUNetv2_train "
                                               f"({done.reason}); see {log}", cost())
        try:
            return RunOutcome(fold_value(done.summary, self.setup.label_key), curve, done.summary, cost())
        except ValueError as err:
            raise RunFailed(FailKind.TRAINING, f"{inst.label}: {err}", cost()) from None


class LiveBackend:
    """Where a live tune's studies and runs are: the setup's storage (by its URL, with heartbeats for a worker) and
    nnU-Net's results folders (:class:`LiveRunner`). A replay has its own backend
    (:class:`~nnunet_polydice.experiments.tune.replay.ReplayBackend`)."""

    replay = False

    def __init__(self, environ: dict | None = None, executable: str | None = None):
        self.environ, self.executable = environ, executable

    def open(self, setup: TuneSetup, *, heartbeat: bool = False, echo: Callable[[str], None] = lambda s: None):
        """``(study, uid)``: :func:`~nnunet_polydice.experiments.tune.study.open_study`."""
        return open_study(setup, heartbeat=heartbeat, echo=echo)

    def load(self, setup: TuneSetup):
        return load_study(setup.storage, setup.study)

    def runner(self, setup: TuneSetup, study, uid: str) -> LiveRunner:
        return LiveRunner(setup, study, uid, environ=self.environ, executable=self.executable)
