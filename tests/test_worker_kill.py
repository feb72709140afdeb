"""Two tune workers, one killed with SIGKILL mid-training as a node crash would (the worker, its nnUNetv2_train
and everything they started, no handler runs): the other takes its trial over after the grace period and
finishes the study, continuing the killed run from its checkpoint. With the journal file (no server) and
with a real PostgreSQL server (Debian's ``postgresql``, started here in a temporary folder).

The killed worker runs in its own UTS namespace with the host name ``node-b`` (``unshare --uts``), so that the
survivor cannot see that its process is gone (another host) and has only the heartbeat to go by."""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import nnunet_env
from optuna.trial import TrialState

from nnunet_polydice.experiments import tune
from nnunet_polydice.experiments.tune import takeover

COLIN = "Dataset731_Colin27HippoAmyg"
EPOCHS, GRACE = 6, 6
pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


def _tool() -> str:
    return str(Path(sys.executable).parent / "nnunet-polydice")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """The tiny Colin27 set, planned and preprocessed once for both storages (each test copies it)."""
    from nnunet_polydice.experiments.workspace import prepare_embedded

    work = tmp_path_factory.mktemp("prepared") / "work"
    prepare_embedded(COLIN, work, variant="tiny", echo=lambda s: None, environ=nnunet_env(work))
    return work


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of its own (initdb in a temporary folder, trust authentication, a free port)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb") or ""]
    bindir = Path(found[-1]).parent if found[-1] else None
    if bindir is None:
        pytest.skip("no PostgreSQL server here (Debian's postgresql package; .ci/run installs it)")
    pytest.importorskip("psycopg", reason="psycopg (the PostgreSQL driver of the test extra) is not installed")
    root = Path(tempfile.mkdtemp(prefix="polydice-pg-"))  # not under pytest's folder, which only root may enter
    as_user = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    proc = subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "polydice"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"initdb failed: {proc.stdout}{proc.stderr}")
    start = [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
             f"-p {port} -h 127.0.0.1 -k {root}", "start"]
    proc = subprocess.run(start, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"PostgreSQL did not start: {proc.stdout}{proc.stderr}")
    yield f"postgresql://polydice@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def _epochs(log: Path) -> tuple[list[int], int]:
    """(the epochs a training log started, how many it finished)."""
    text = log.read_text()
    return [int(n) for n in re.findall(r": Epoch (\d+) ?\n", text)], text.count("Epoch time:")


def _unshared(argv: list[str]) -> list[str]:
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname node-b && exec "$0" "$@"', *argv]


def _kill_test(tmp_path, prepared, storage: str | None):
    if subprocess.run(_unshared(["true"]), capture_output=True).returncode != 0:
        pytest.skip("unshare --uts is not allowed here (needs root or user namespaces): the killed worker could "
                    "not look like another host")
    work = tmp_path / "work"
    shutil.copytree(prepared, work)
    env = nnunet_env(work)
    setup = tune.prepare(COLIN, "2d_cpu", families=["nnUNetTrainerPolyDice"], K_values=["1", "2"], epsilons=[0.0],
                         schedule=f"{EPOCHS}x3", storage=storage, study="kill", pruner="none", device="cpu",
                         budget="100%", grace=GRACE, lookup=False, environ=env)
    study, _ = tune.open_study(setup)
    tune.enqueue_grid(study, setup.space, 0)
    base = tune.tune_argv(setup, sampler="grid", seed=0, executable=(_tool(),))

    def worker(index: int, argv_of=lambda a: a):
        out = open(tmp_path / f"worker{index}.out", "w")
        argv = argv_of([*base, "--trials", "1", "--worker-index", str(index), "--no-outputs"])
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    survivor, victim = worker(0), worker(1, _unshared)
    start = time.time()
    try:
        while True:  # until the victim's trial has reported two epochs
            assert time.time() - start < 900 and victim.poll() is None, (tmp_path / "worker1.out").read_text()
            mine = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("host") == "node-b"]
            if mine and len(mine[0].intermediate_values) >= 2:
                break
            time.sleep(0.5)
        os.killpg(victim.pid, signal.SIGKILL)  # the worker, its nnUNetv2_train and what that started
        killed_at = time.time()
        victim.wait()
        assert survivor.wait(timeout=900) == 0, (tmp_path / "worker0.out").read_text()
    finally:
        for p in (survivor, victim):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    out = (tmp_path / "worker0.out").read_text()

    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    dead = trials[mine[0].number]
    (taker,) = [t for t in trials.values() if t.user_attrs.get("resumes") == dead.number]
    assert dead.state == TrialState.FAIL and taker.state == TrialState.COMPLETE
    assert not [t for t in trials.values() if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    complete = sorted(t.user_attrs["trainer"] for t in trials.values() if t.state == TrialState.COMPLETE)
    assert complete == sorted(s.trainer for s in setup.space.settings)  # every setting once, the study finished
    assert taker.user_attrs["host"] == socket.gethostname() and taker.params == dead.params

    # taken over by the heartbeat: no sooner than the grace period after the last beat before the kill
    failed_after = dead.datetime_complete.timestamp() - killed_at
    assert failed_after >= GRACE - takeover.heartbeat_interval(GRACE) - 0.5, failed_after
    assert f"trial {dead.number:3d}  its worker (node-b pid" in out and "sent no heartbeat for the grace period: " \
        f"failed, enqueued again as trial {taker.number}" in out

    # continued from its checkpoint: the second run starts where the first one's last finished epoch left off
    folder = setup.fold_folder(dead.user_attrs["trainer"], "0")
    first, second = sorted(folder.glob("training_log_*.txt"))
    started, finished = _epochs(first)
    resumed, _ = _epochs(second)
    assert finished >= 2 and started[:finished] == list(range(finished))
    assert resumed == list(range(finished, EPOCHS))  # nothing trained twice but the epoch the kill cut short
    assert taker.user_attrs["inherited_epochs"] + taker.user_attrs["epochs_trained"] == EPOCHS
    assert sorted(taker.intermediate_values) == list(range(EPOCHS))
    assert (folder / "checkpoint_final.pth").is_file() and not list(work.rglob(takeover.LOCK_NAME))
    rows = {r.number: r for r in tune.trial_rows(study, setup.space)}
    assert rows[dead.number].reason == f"its worker sent no heartbeat for the grace period; continued as trial " \
                                       f"{taker.number}"
    print(f"\n[{storage or 'journal'}] killed trial {dead.number} after {len(mine[0].intermediate_values)} epochs at "
          f"{killed_at - start:.1f} s; failed by the survivor {failed_after:.1f} s after the kill (grace {GRACE} s, "
          f"beats every {takeover.heartbeat_interval(GRACE)} s); trial {taker.number} started "
          f"{taker.datetime_start.timestamp() - killed_at:.1f} s after the kill, continued at epoch {finished}, "
          f"done {taker.datetime_complete.timestamp() - killed_at:.1f} s after the kill")


def test_journal_two_workers_one_killed_the_other_finishes_the_study(tmp_path, prepared):
    _kill_test(tmp_path, prepared, None)


def test_postgresql_two_workers_one_killed_the_other_finishes_the_study(tmp_path, prepared, postgres_url):
    _kill_test(tmp_path, prepared, postgres_url)
