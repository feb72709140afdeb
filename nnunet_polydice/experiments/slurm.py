"""Slurm batch scripts of ``tune --slurm`` and ``sweep --slurm``: the one place where they are written.

A script runs from a plain login shell (``sbatch`` from a shell without the virtual environment on PATH and without
nnU-Net's variables): it names the interpreter, or nnU-Net's ``nnUNetv2_train``, by absolute path, and exports every
``nnUNet_*`` variable of the submitting environment (``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results``
made absolute; ``nnUNet_extTrainer`` with this package's trainers folder added). Each array task writes its output to
``<log folder>/<job name>_<job id>_<task>.out`` (``#SBATCH --output``); the folder is created with the script.

The task's command is ``exec``-ed, so that it is the batch step's own process: Slurm's ``scancel`` (SIGTERM) then
reaches a tune worker, which stops its training, fails its trial and enqueues the setting again, and Slurm waits for
that instead of ending the step with the shell.

No argparse and no printing.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

from nnunet_polydice.experiments import nnunet_env, sweep
from nnunet_polydice.experiments.paths import ensure_new_file, ensure_writable_dir
from nnunet_polydice.experiments.tune.setup import TuneSetup, tune_argv
from nnunet_polydice.integration.locate import nnunet_command, self_command, with_trainers_folder

__all__ = [
    "NNUNET_PATHS", "REQUIRED", "OUTPUT_PATTERN", "SWEEP_LOG_FOLDER", "check_environment",
    "environment_lines", "output_directive", "tune_script", "tune_log_folder", "sweep_script", "sweep_log_folder",
    "write_script",
]

#: nnU-Net's folders, written into a script as absolute paths.
NNUNET_PATHS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
#: The ones a training needs (nnU-Net only warns without ``nnUNet_raw``): a script is refused without them.
REQUIRED = ("nnUNet_preprocessed", "nnUNet_results")
#: ``#SBATCH --output`` file name in the log folder: job name, job id, array task.
OUTPUT_PATTERN = "%x_%A_%a.out"
#: ``sweep``'s log folder, next to its script (``tune``'s is the study's output folder's ``logs``).
SWEEP_LOG_FOLDER = "slurm_logs"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Characters ``sbatch`` cannot take inside the value of an ``#SBATCH`` line, even quoted.
_UNQUOTABLE = set("'\"\\\n\r")


def check_environment(environ: dict | None = None, option: str = "--slurm") -> None:
    """Refuse, before anything is written, an environment without the nnU-Net folders a script must export.

    Raises:
        ValueError: naming the variables that are not set.
    """
    env = os.environ if environ is None else environ
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        what = " and ".join(missing)
        raise ValueError(f"{option}: {what} {'is' if len(missing) == 1 else 'are'} not set; the script exports "
                         f"nnU-Net's folders from this environment, so that its tasks run from a plain login shell: "
                         f"export {what} (nnU-Net's documentation/setting_up_paths.md) and run the command again.")


def _absolute_list(value: str) -> str:
    return os.pathsep.join(os.path.abspath(p) for p in value.split(os.pathsep) if p)


def environment_lines(environ: dict | None = None) -> list[str]:
    """``export nnUNet_...=...`` for every ``nnUNet_*`` variable set in ``environ`` (default os.environ), sorted:
    the three folders absolute, ``nnUNet_extTrainer`` with this package's trainers folder added
    (:func:`~nnunet_polydice.integration.locate.with_trainers_folder`), values shell-quoted.

    Raises:
        ValueError: as :func:`check_environment`.
    """
    check_environment(environ)
    env = with_trainers_folder(environ)
    lines = []
    for name in sorted(k for k in env if k.startswith("nnUNet_") and _NAME.match(k) and env[k]):
        value = env[name]
        if name in NNUNET_PATHS:
            value = os.path.abspath(value)
        elif name == "nnUNet_extTrainer":
            value = _absolute_list(value)
        lines.append(f"export {name}={shlex.quote(value)}")
    return lines


def output_directive(log_folder) -> str:
    """``#SBATCH --output=<absolute folder>/%x_%A_%a.out`` (double-quoted when the path has spaces; a ``%`` of the
    path doubled, as Slurm's file name patterns want).

    Raises:
        ValueError: when the path has a quote, a backslash or a line break, which ``#SBATCH`` lines cannot carry.
    """
    folder = os.path.abspath(log_folder)
    if _UNQUOTABLE & set(folder):
        raise ValueError(f"--slurm: the log folder {folder!r} has a quote, backslash or line break, which an #SBATCH "
                         f"line cannot carry; use a folder without them.")
    path = os.path.join(folder.replace("%", "%%"), OUTPUT_PATTERN)
    return f'#SBATCH --output="{path}"' if any(c.isspace() for c in path) else f"#SBATCH --output={path}"


def _header(job_name: str, tasks: int, log_folder, about: Sequence[str]) -> list[str]:
    return [
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{tasks - 1}",
        output_directive(log_folder),
        *(f"# {line}" for line in about),
        "# It runs from a plain login shell: the commands are given by absolute path and nnU-Net's variables of the",
        "# submitting shell are exported below. Add your cluster's resources here (e.g. #SBATCH --gres=gpu:1, --time,",
        "# --partition).",
        "set -euo pipefail",
    ]


def tune_log_folder(setup: TuneSetup) -> Path:
    """Where a tune script's tasks write their output: the study's output folder's ``logs`` (beside the trial logs)."""
    return Path(setup.out_dir) / "logs"


def tune_script(setup: TuneSetup, shares: Sequence[int], *, sampler: str, seed: int | None,
                environ: dict | None = None, python: str | None = None, **argv_options) -> str:
    """A bash script for ``sbatch``: an array of ``len(shares)`` tasks, each one more worker of the same study
    (task i runs ``shares[i]`` trials of :func:`~nnunet_polydice.experiments.tune.tune_argv`, with ``argv_options``
    passed on); nothing but the study's storage coordinates them.

    Raises:
        ValueError: as :func:`check_environment` and :func:`output_directive`.
    """
    exports = environment_lines(environ)
    worker = shlex.join(tune_argv(setup, sampler=sampler, seed=seed, executable=tuple(self_command(python)),
                                       **argv_options))
    lines = _header(f"polydice-tune-{setup.study}", len(shares), tune_log_folder(setup), [
        f"Written by nnunet-polydice tune: every array task is one more worker of study {setup.study!r}",
        f"in {setup.storage}; the study's storage is all they share (submit again to add workers).",
    ])
    lines += exports
    lines += [
        f"TRIALS=({' '.join(str(n) for n in shares)})",
        f'exec {worker} --trials "${{TRIALS[$SLURM_ARRAY_TASK_ID]}}" --worker-index "$SLURM_ARRAY_TASK_ID"',
        "",
    ]
    return "\n".join(lines)


def sweep_log_folder(script) -> Path:
    """Where a sweep script's tasks write their output: ``slurm_logs`` beside the script."""
    return Path(os.path.abspath(script)).parent / SWEEP_LOG_FOLDER


def sweep_script(jobs: Sequence[sweep.Job], log_folder, environ: dict | None = None, *,
                 job_name: str = "polydice-sweep") -> str:
    """A bash script for ``sbatch``: one array task per job that needs a command (``#SBATCH --array=0-(n-1)``), the
    commands, ``nnUNetv2_train`` by absolute path (:func:`~nnunet_polydice.integration.locate.nnunet_command`), in a
    bash array indexed by ``SLURM_ARRAY_TASK_ID``.

    Raises:
        ValueError: when no job needs a command (every (trainer, fold) is finished), and as
            :func:`check_environment` and :func:`output_directive`.
        FileNotFoundError: when nnUNetv2_train is not found.
    """
    todo = [j for j in jobs if j.command is not None]
    if not todo:
        raise ValueError("every (trainer, fold) of this sweep is finished; there is nothing to submit.")
    exports = environment_lines(environ)
    train = nnunet_command(nnunet_env.TRAIN_EXECUTABLE, environ)
    lines = _header(job_name, len(todo), log_folder,
                    ["Written by nnunet-polydice sweep: one array task per (trainer, fold) that is not finished."])
    lines += [f"# {j.describe()}; left alone" for j in jobs if j.state in sweep.LEFT_ALONE]
    lines += exports
    lines.append("COMMANDS=(")
    for j in todo:
        lines.append(f"  {shlex.quote(shlex.join([train, *j.command[1:]]))}  # {j.trainer} fold {j.fold}: {j.state}")
    lines += [
        ")",
        'echo "task ${SLURM_ARRAY_TASK_ID}: ${COMMANDS[$SLURM_ARRAY_TASK_ID]}"',
        'eval "exec ${COMMANDS[$SLURM_ARRAY_TASK_ID]}"',
        "",
    ]
    return "\n".join(lines)


def write_script(path, text: str, log_folder) -> Path:
    """Create ``log_folder`` (Slurm does not: a task whose output file cannot be opened fails without a word), then
    write ``text`` to ``path`` (executable). Never overwrites.

    Raises:
        FileExistsError / ValueError: as :func:`~nnunet_polydice.experiments.paths.ensure_new_file` (the file exists;
            its folder is missing or cannot be written) and when the log folder cannot be created or written.
    """
    path = ensure_new_file(path, "--slurm")
    log_folder = ensure_writable_dir(log_folder, "--slurm's log folder")
    try:
        log_folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--slurm's log folder {log_folder} cannot be created ({err.strerror or err}).") from None
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(text)
    path.chmod(path.stat().st_mode | 0o111)
    return path
