"""Workers that die (experiments/tune/takeover.py and the heartbeat journal of integration/pruning.py): heartbeats,
stale trials failed and enqueued again, fold locks with a heartbeat, and the wait for takeover. Real Optuna
storages on real files; the end-to-end kill tests are in test_worker_kill.py."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nnunet_polydice.experiments import tune
from nnunet_polydice.experiments.tune import takeover
from nnunet_polydice.integration import pruning

optuna.logging.set_verbosity(optuna.logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning",
                                        "ignore:Heartbeat of storage is supposed:UserWarning")


def _journal(tmp_path, **kw):
    return pruning.open_storage(f"journal://{tmp_path}/t.log", **kw)


def _running_trial(study, K="2", epochs=0, **attrs):
    trial = study.ask()
    trial.suggest_categorical("K", ["1", "2", "inf"])
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    for epoch in range(epochs):
        trial.report(0.1 * (epoch + 1), epoch)
    return trial


def test_heartbeat_interval_is_a_sixth_of_the_grace_between_1_and_30_s():
    assert [takeover.heartbeat_interval(g) for g in (6, 11, 12, 180, 600, 86400)] == [1, 1, 2, 30, 30, 30]


def test_journal_heartbeat_keeps_a_long_trial_alive_and_a_silent_one_is_failed_and_enqueued_again(tmp_path):
    """Grace 2 s, beats every 1 s: a trial whose worker's last beat was a minute ago is failed by the next worker's
    check (Study.optimize, before its trial), and the callback enqueues its setting with its curve, racing
    instances and the number it continues; that worker takes it and, once its trial has run for longer than the
    grace period (Optuna's heartbeat thread beating), it is not stale to a third worker's check. Waits on
    conditions, each with a bound, so a loaded machine only makes it slower."""
    seen = []
    storage = _journal(tmp_path, heartbeat=True, grace=2, interval=1,
                       on_stale=takeover.stale_callback(seen.append))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")

    silent = _running_trial(study, epochs=3, race_instances=["0:s1"], host="elsewhere", pid=1)
    storage.set_trial_system_attr(silent._trial_id, pruning.HEARTBEAT_ATTR, time.time() - 60)  # then it was killed
    release = threading.Event()

    def objective(trial):
        trial.suggest_categorical("K", ["1", "2", "inf"])
        release.wait(timeout=120)
        return 1.0

    runner = threading.Thread(target=lambda: study.optimize(objective, n_trials=1))
    runner.start()  # its own check at the start fails the silent trial (60 s > grace)
    deadline = time.time() + 60
    while time.time() < deadline and [t.state for t in study.get_trials()][1:] != [TrialState.RUNNING]:
        time.sleep(0.05)
    time.sleep(3)  # longer than the grace period: without its beats the running trial would now be stale
    other = optuna.load_study(study_name="s", storage=_journal(tmp_path, heartbeat=True, grace=2, interval=1))
    optuna.storages.fail_stale_trials(other)  # another worker looks
    states = {t.number: t.state for t in other.get_trials()}
    release.set()
    runner.join()

    # the runner's check failed the silent trial and it took the enqueued copy: a takeover, alive at 3 s
    assert states == {0: TrialState.FAIL, 1: TrialState.RUNNING}
    taken = study.get_trials()[1]
    assert taken.state == TrialState.COMPLETE and taken.params == silent.params
    assert taken.user_attrs == {"race_instances": ["0:s1"], "resumes": 0, "retries": 1, "inherited_epochs": 3,
                                "requeue_reason": "its worker sent no heartbeat for the grace period"}
    assert taken.intermediate_values == {0: 0.1, 1: 0.2, 2: pytest.approx(0.3)}
    assert seen == ["trial   0  its worker (elsewhere pid 1) sent no heartbeat for the grace period: failed, "
                    "enqueued again as trial 1"]


def test_a_setting_is_retried_at_most_max_retries_times(tmp_path):
    study = optuna.create_study(storage=_journal(tmp_path), study_name="s", direction="maximize")
    trial = _running_trial(study)
    frozen = study._storage.get_trial(trial._trial_id)
    numbers = []
    for _ in range(takeover.MAX_RETRIES + 1):
        numbers.append(takeover.requeue(study, frozen, "test"))
        frozen = study.get_trials()[-1]
    assert numbers == [1, 2, 3, None]
    assert [t.user_attrs.get("retries") for t in study.get_trials()] == [None, 1, 2, 3]
    # an interrupt (Ctrl-C, scancel) does not count as a retry
    assert takeover.requeue(study, frozen, "interrupted", count_retry=False) == 4
    # a trial that died before it had a setting leaves nothing to enqueue
    fresh = optuna.create_study(storage=study._storage, study_name="fresh", direction="maximize")
    bare = fresh.ask()
    assert takeover.requeue(fresh, fresh._storage.get_trial(bare._trial_id), "test") is None


def test_lock_is_stale_when_not_touched_for_the_grace_period(tmp_path):
    holder = {"host": "another-host", "pid": 1, "study_uid": "u", "trial": 3, "trial_id": 3}
    alive = lambda trial_id: True  # noqa: E731
    assert takeover.lock_is_stale(holder, "u", alive, "this-host", age=100, grace=180) is None
    assert takeover.lock_is_stale(holder, "u", alive, "this-host", age=181, grace=180) == \
        "it has not been touched for 181 s (grace 180 s): its holder is gone"
    assert takeover.lock_is_stale(holder, "u", lambda trial_id: False, "this-host", age=0, grace=180) == \
        "its trial 3 is no longer running"


def test_lock_heartbeat_touches_the_lock_while_the_block_runs(tmp_path):
    owner = {"host": "h", "pid": os.getpid()}
    assert takeover.acquire_lock(tmp_path, owner) is None
    path = tmp_path / takeover.LOCK_NAME
    os.utime(path, (time.time() - 1000, time.time() - 1000))
    assert takeover.lock_age(tmp_path) > 999
    with takeover.LockHeartbeat(path, 0.1):
        time.sleep(0.5)
        assert takeover.lock_age(tmp_path) < 0.5
    os.utime(path, (time.time() - 1000, time.time() - 1000))
    time.sleep(0.3)
    assert takeover.lock_age(tmp_path) > 999  # stopped with the block
    assert takeover.acquire_lock(tmp_path, owner) == owner  # still held: removing it is the trial's job


def test_run_until_settled_takes_over_a_dead_workers_trial_and_waits_for_live_ones(tmp_path):
    """A worker whose share is done: one trial RUNNING on a live worker (beating), one on a dead worker (last beat
    long ago). It fails and enqueues the dead one's, runs it, then waits until the live one ends."""
    said = []
    storage = _journal(tmp_path, heartbeat=True, grace=6, interval=1, on_stale=takeover.stale_callback(said.append))
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    live = _running_trial(study, host="elsewhere", pid=1)
    dead = _running_trial(study, K="inf", epochs=2, host="elsewhere", pid=2)
    storage.set_trial_system_attr(dead._trial_id, pruning.HEARTBEAT_ATTR, time.time() - 60)
    ran, naps = [], []

    def run_one():
        trial = study.ask()  # what Study.optimize would hand the objective: the enqueued trial first
        ran.append((trial.user_attrs.get("resumes"), trial.params))
        study.tell(trial, 0.5)
        return True

    def nap(seconds):
        naps.append(seconds)
        storage.record_heartbeat(live._trial_id)  # the live worker beats meanwhile ...
        if len(naps) == 2:
            study.tell(live, 0.7)  # ... and finishes after two naps

    assert takeover.run_until_settled(study, run_one, 1, echo=said.append, sleep=nap) == 1
    assert ran == [(1, dead.params)] and naps == [1, 1]
    assert said[0].startswith("trial   1  its worker (elsewhere pid 2) sent no heartbeat")  # the storage's echo
    assert said[1:] == ["waiting for 1 trial(s) running on other workers (trial 0 on elsewhere) to take over any "
                        "that falls silent; Ctrl-C stops waiting, nothing is lost"]  # once, not every nap
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]


def test_run_until_settled_leaves_a_live_workers_queued_trial_alone(tmp_path):
    """A queued trial of the command's plan (no "resumes") is another worker's next one while trials run, or
    while it is young (its worker may still be starting): taking it would make that worker sample one more
    setting. Once nothing runs and it has waited for the grace period, it is left over and taken."""
    storage = _journal(tmp_path, heartbeat=True, grace=2, interval=1)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    live = _running_trial(study, host="elsewhere", pid=1)
    enqueued = time.time()
    study.enqueue_trial({"K": "inf"}, user_attrs={"enqueued_at": enqueued})
    ran, naps = [], []

    def run_one():
        trial = study.ask()
        trial.suggest_categorical("K", ["1", "2", "inf"])  # an enqueued trial's fixed value
        ran.append((trial.params, time.time() - enqueued))
        study.tell(trial, 0.5)
        return True

    def nap(seconds):
        assert study.get_trials()[1].state == TrialState.WAITING  # still there for its worker
        naps.append(seconds)
        if len(naps) == 1:
            storage.record_heartbeat(live._trial_id)
            study.tell(live, 0.7)  # the live worker ends without taking it (its share was done, say)
        time.sleep(0.25)

    assert takeover.run_until_settled(study, run_one, 1, sleep=nap, grace=2) == 1
    (params, age), = ran
    assert params == {"K": "inf"} and age > 2
    assert takeover.left_over(study.get_trials()[1], 2) and not takeover.left_over(study.get_trials()[1], 1e9)


def test_cost_and_rows_of_a_trial_whose_worker_died(tmp_path):
    """A dead worker's trial costs the epochs it reported; the trial that continues it inherits that curve but
    counts only its own epochs; the dead one's row says what became of it."""
    space = tune.build_space(["nnUNetTrainerPolyDice"], ["1", "2"], [0.0], (4, 10))
    study = optuna.create_study(storage=_journal(tmp_path), study_name="s", direction="maximize")
    trial = study.ask()
    space.suggest(trial)
    trial.set_user_attr("reserved", 40)
    for epoch in range(3):
        trial.report(0.1, epoch)
    study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    takeover.requeue(study, study._storage.get_trial(trial._trial_id), "its worker sent no heartbeat")
    dead, waiting = study.get_trials()
    assert tune.trial_cost(dead, 10) == 30 and tune.trial_cost(waiting, 10) == 0
    # the continuing trial reserves the epochs the dead one did not report (steps 0-2 of 0-3): one
    assert tune.remaining_epochs(0, 4, waiting.intermediate_values) == 1
    assert tune.remaining_epochs(1, 4, {0: 0.1, 4: 0.1, 5: 0.1}) == 2
    again = study.ask()  # the continuing trial, running: what it reserved
    again.set_user_attr("reserved", 10)
    again.report(0.2, 3)
    assert tune.trial_cost(study.get_trials()[1], 10) == 10
    again.set_user_attr("epochs_trained", 1)
    study.tell(again, 0.4)
    assert tune.trial_cost(study.get_trials()[1], 10) == 10
    rows = tune.trial_rows(study, space)
    assert rows[0].state == "FAIL" and rows[0].reason == "its worker sent no heartbeat; continued as trial 1"
    assert rows[1].state == "COMPLETE" and rows[1].curve == {0: 0.1, 1: 0.1, 2: 0.1, 3: 0.2}


def test_relative_storage_files_are_made_absolute_for_workers_started_elsewhere(tmp_path, monkeypatch):
    """A Slurm job or another shell may start in another folder: the URL the workers get names the same file."""
    monkeypatch.chdir(tmp_path)
    assert tune.absolute_storage("journal://t.log") == f"journal://{tmp_path}/t.log"
    assert tune.absolute_storage("sqlite:///sub/t.db?timeout=5") == f"sqlite:///{tmp_path}/sub/t.db?timeout=5"
    for url in ("journal:///abs/t.log", "sqlite:////abs/t.db", "postgresql://u@h/db"):
        assert tune.absolute_storage(url) == url


CHILD = """
import atexit, os, sys, time
from pathlib import Path
from nnunet_polydice.integration.pruning import die_with_parent
atexit.register(lambda: Path(sys.argv[1]).write_text("exit handlers ran"))
print(die_with_parent(os.getppid()), flush=True)
time.sleep(60)
"""
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]], stdout=subprocess.PIPE, text=True)
print(child.pid, child.stdout.readline().strip(), flush=True)
sys.stdin.readline()  # until the test says die
"""


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_trainer_ends_with_its_worker_and_runs_its_exit_handlers(tmp_path):
    """A worker (here a stand-in parent process) is killed outright; its child, which asked to die with it, gets
    SIGTERM from the kernel and leaves through SystemExit, so its exit handlers (multiprocessing's, which stop
    nnU-Net's augmentation workers) run."""
    marker = tmp_path / "marker"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, str(marker)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    pid, armed = parent.stdout.readline().split()
    assert armed == "True" and not _gone(int(pid))
    parent.kill()
    parent.wait()
    deadline = time.time() + 10
    while not _gone(int(pid)) and time.time() < deadline:
        time.sleep(0.1)
    assert _gone(int(pid))
    assert marker.read_text() == "exit handlers ran"
