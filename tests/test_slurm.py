"""``tune --slurm`` and ``sweep --slurm`` on a real one-node Slurm cluster (.ci/slurm_up.sh starts one, or reuses it).

The scripts are written by the venv's ``nnunet-polydice`` called by absolute path from an environment whose PATH
lacks the venv, and submitted with ``sbatch`` from a plain environment (``env -i``: no venv, no ``nnUNet_*``), as from
a login shell. Where Slurm cannot be installed or started, those tests are skipped with the reason. The first test
needs no Slurm: it sends a tune worker's process tree the SIGTERM that scancel sends.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import nnunet_env, run
from optuna.trial import TrialState

pytestmark = pytest.mark.e2e  # and the tests that submit to Slurm: slurm

REPO = Path(__file__).resolve().parents[1]
SLURM_UP = REPO / ".ci" / "slurm_up.sh"
COLIN = "Dataset731_Colin27HippoAmyg"
PLAIN_PATH = "/usr/bin:/bin"
WAIT = 240  # seconds for a job to finish on two busy cores


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The SLURM_CONF of a running one-node cluster; stopped afterwards when this module started it."""
    try:
        up = subprocess.run(["bash", str(SLURM_UP)], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"Slurm could not be started on this machine ({err}); .ci/slurm_up.sh installs and starts it.")
    if up.returncode != 0:
        pytest.skip(f"Slurm could not be installed or started on this machine: {up.stderr.strip()}")
    conf = up.stdout.strip().splitlines()[-1]
    home = tmp_path_factory.mktemp("home")
    yield {"conf": conf, "env": {"PATH": PLAIN_PATH, "HOME": str(home), "SLURM_CONF": conf}, "jobs": []}
    if "started" in up.stderr:
        subprocess.run(["bash", str(SLURM_UP), "--down"], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The tiny embedded dataset, planned and preprocessed, with the 2d_cpu configuration."""
    from nnunet_polydice.experiments.workspace import prepare_embedded

    folder = tmp_path_factory.mktemp("slurm") / "work"
    prepare_embedded(COLIN, folder, variant="tiny", echo=lambda s: None, environ=nnunet_env(folder))
    return folder


@pytest.fixture()
def submit(cluster):
    """``submit(script, cwd) -> job id``: sbatch from a plain environment; the jobs are cancelled afterwards."""
    jobs = []

    def sbatch(script: Path, cwd: Path) -> str:
        proc = run(["sbatch", "--parsable", str(script)], cluster["env"], timeout=60, cwd=cwd)
        jobs.append(proc.stdout.strip().split(";")[0])
        return jobs[-1]

    yield sbatch
    for job in jobs:
        subprocess.run(["scancel", job], env=cluster["env"], capture_output=True, timeout=60)


def _tool() -> str:
    tool = Path(sys.executable).parent / "nnunet-polydice"
    assert tool.is_file(), "nnunet-polydice is not installed (pip install .)"
    return str(tool)


def _user_env(work: Path) -> dict:
    """The user's shell of the issue: nnU-Net's folders set, the venv not on PATH (the tool called by its path)."""
    return nnunet_env(work, PATH=PLAIN_PATH)


def _queued(cluster, job: str) -> dict:
    """``{task id: state}`` of the job's array tasks still in the queue."""
    out = run(["squeue", "-h", "-r", "-j", job, "-o", "%i %T"], cluster["env"], timeout=60, check=False).stdout
    return dict(line.split() for line in out.splitlines() if line.strip())


def _wait(condition, what: str, timeout: float = WAIT, explain=lambda: ""):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{explain()}")


def _outputs(folder: Path, job: str) -> dict:
    """``{task: text}`` of the job's Slurm output files in ``folder``."""
    return {int(p.stem.rsplit("_", 1)[1]): p.read_text(errors="replace") for p in folder.glob(f"*_{job}_*.out")}


def _trials(work: Path, study: str) -> list:
    """The study's trials, from the default storage (the journal in the dataset's results folder)."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(
        str(work / "nnUNet_results" / COLIN / "polydice_tune.journal")))
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def _epochs(log: Path) -> tuple[int, int]:
    """``(first epoch started, last epoch finished)`` of one nnU-Net training log."""
    started, finished = [], []
    for line in log.read_text().splitlines():
        found = re.search(r": Epoch (\d+)\s*$", line)  # nnU-Net ends its log lines with a space
        if found:
            started.append(int(found.group(1)))
        elif ": Epoch time: " in line:
            finished.append(started[-1])
    return started[0], (finished[-1] if finished else -1)


def test_sigterm_to_a_tune_worker_tree_is_one_line_and_requeues_its_trial(work):
    """What scancel does to a task (SIGTERM to every process of it: the worker, its nnUNetv2_train and that one's
    augmentation workers), without Slurm: the worker fails its trial, enqueues the setting again and ends with
    status 130 and one line; nothing prints a traceback."""
    env = nnunet_env(work, nnUNet_n_proc_DA="2")  # augmentation worker processes, which get the SIGTERM too
    argv = [sys.executable, "-m", "nnunet_polydice.cli", "tune", "731", "2d_cpu", "--families", "nnUNetTrainerPolyDice",
            "--K", "3", "--epsilon", "0", "--schedule", "30x3", "--device", "cpu", "--pruner", "none", "--study",
            "sigterm", "--trials", "1", "--worker-index", "0", "--no-outputs"]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if re.search(r"epoch \d+ of 0-29", line):
                break
        tree = run(["ps", "-o", "pid=", "-g", str(proc.pid)], env, timeout=60).stdout.split()
        os.killpg(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out = "".join(lines) + out
    assert len(tree) >= 4, tree  # the worker, nnUNetv2_train, two augmentation workers
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err, out + err
    assert err.splitlines() == ["nnunet-polydice tune: interrupted."], err
    stopped, again = _trials(work, "sigterm")
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["reason"] == "interrupted; the setting is enqueued again"
    assert again.state == TrialState.WAITING and again.user_attrs["resumes"] == stopped.number


@pytest.mark.slurm
def test_tune_script_runs_from_a_plain_shell_and_scancel_requeues_a_trial(cluster, work, submit, tmp_path):
    """Two array tasks of a study over two settings: when one of them is training, scancel that task; its trial is
    failed and its setting enqueued again (a one-line message, no traceback); the study then finishes, the
    re-queued setting continued from its checkpoint (by the other task, or by a second sbatch of the script)."""
    study = "slurm"
    script = tmp_path / "tune.sbatch"
    out = run([_tool(), "tune", "731", "2d_cpu", "--families", "nnUNetTrainerPolyDice", "--K", "1", "2", "--epsilon",
               "0", "--schedule", "6x2", "--device", "cpu", "--pruner", "none", "--study", study, "--workers", "2",
               "--slurm", str(script)], _user_env(work), timeout=300).stdout
    assert f"Wrote {script}: 2 array tasks, 2 trials of study {study}" in out
    text = script.read_text()
    python = Path(_tool()).read_text().splitlines()[0][2:]  # the interpreter of the tool the user called
    assert f"exec {python} -m nnunet_polydice.cli tune" in text
    assert f"export nnUNet_results={work / 'nnUNet_results'}" in text
    logs = work / "nnUNet_results" / COLIN / "polydice_tune" / study / "logs"
    assert logs.is_dir()

    job = submit(script, tmp_path)

    def explain():
        return "\n".join(f"--- task {t}:\n{o[-3000:]}" for t, o in sorted(_outputs(logs, job).items()))

    def training():
        return [t for t, o in sorted(_outputs(logs, job).items()) if re.search(r"epoch \d+ of 0-5", o)]

    task = _wait(training, "no array task reported a training epoch", explain=explain)[0]
    run(["scancel", f"{job}_{task}"], cluster["env"], timeout=60)
    _wait(lambda: str(task) not in {k.split("_")[-1] for k in _queued(cluster, job)} or None,
          f"task {job}_{task} still queued after scancel", explain=explain)
    cancelled = _outputs(logs, job)[task]
    number = int(re.findall(r"^trial +(\d+) .* RUNNING .*epoch \d+ of", cancelled, re.M)[-1])
    assert "Traceback" not in cancelled, cancelled
    assert cancelled.rstrip().splitlines()[-1] == "nnunet-polydice tune: interrupted.", cancelled

    def trials():
        return _trials(work, study)

    stopped = trials()[number]
    assert stopped.state == TrialState.FAIL
    assert stopped.user_attrs["reason"] == "interrupted; the setting is enqueued again"
    again = [t for t in trials() if t.user_attrs.get("resumes") == number]
    assert len(again) == 1 and again[0].params == stopped.params

    _wait(lambda: not _queued(cluster, job), f"job {job} did not finish", explain=explain)
    jobs = [job]
    if any(t.state == TrialState.WAITING for t in trials()):  # workers that stop after their own share
        jobs.append(submit(script, tmp_path))
        _wait(lambda: not _queued(cluster, jobs[-1]), f"job {jobs[-1]} did not finish", explain=explain)
    final = trials()
    states = {t.number: t.state for t in final}
    assert TrialState.RUNNING not in states.values() and TrialState.WAITING not in states.values(), states
    done = {t.user_attrs["trainer"] for t in final if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    assert done == {"nnUNetTrainerPolyDice_K1_eps0_6ep2it", "nnUNetTrainerPolyDice_K2_eps0_6ep2it"}, states
    resumed = [t for t in final if t.user_attrs.get("resumes") == number][0]
    assert resumed.state == TrialState.COMPLETE

    fold = (work / "nnUNet_results" / COLIN / f"{stopped.user_attrs['trainer']}__nnUNetPlans__2d_cpu" / "fold_0")
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()
    first, second = sorted(fold.glob("training_log_*.txt"))[:2]
    (start1, last1), (start2, last2) = _epochs(first), _epochs(second)
    # the second run went on from the checkpoint of the first (saved after each epoch): not from epoch 0, and at
    # most the epoch being saved when SIGTERM came trained twice
    assert start1 == 0 and start2 >= 1 and start2 >= last1 and last2 == 5, (first, second)
    for j in jobs:
        for t, output in _outputs(logs, j).items():
            assert "Traceback" not in output, f"task {j}_{t}:\n{output}"
    print(f"scancelled task {task}: trial {number} failed and re-queued; continued at epoch {start2} "
          f"(first run finished epoch {last1}); {len(jobs)} sbatch")


@pytest.mark.slurm
def test_sweep_script_runs_from_a_plain_shell(cluster, work, submit, tmp_path):
    """One tiny run: the script nnunet-polydice sweep writes trains it under sbatch, nnUNetv2_train by absolute path."""
    trainer = "nnUNetTrainerPolyDice_K3_eps0_1ep2it"
    script = tmp_path / "sweep.sbatch"
    out = run([_tool(), "sweep", "731", "2d_cpu", "--trainers", trainer, "--folds", "0", "--device", "cpu",
               "--slurm", str(script)], _user_env(work), timeout=300).stdout
    assert f"Wrote {script}: 1 array tasks" in out
    job = submit(script, tmp_path)
    logs = tmp_path / "slurm_logs"
    _wait(lambda: not _queued(cluster, job), f"job {job} did not finish",
          explain=lambda: "\n".join(_outputs(logs, job).values()))
    (output,) = _outputs(logs, job).values()
    assert f"task 0: {Path(sys.executable).parent / 'nnUNetv2_train'} Dataset731" in output
    assert "Traceback" not in output, output
    fold = work / "nnUNet_results" / COLIN / f"{trainer}__nnUNetPlans__2d_cpu" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file(), output
