"""A self-contained nnU-Net work folder for the embedded data: raw data, plans, CPU configuration, splits.

Used by the demo, the ablation script and the integration tests. Everything lives under one folder
of its own (``<work>/nnUNet_raw``, ``nnUNet_preprocessed``, ``nnUNet_results``); the user's own
nnU-Net variables are not read and not changed: the paths are passed to nnU-Net's commands through
the environment of the subprocesses only. Running it again goes on where it stopped: finished steps
are skipped, and nothing that differs from what would be written is overwritten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nnunet_polydice.experiments import datasets
from nnunet_polydice.experiments.processes import run_child
from nnunet_polydice.integration.locate import nnunet_command, with_trainers_folder
from nnunet_polydice.integration.plans import CPU_CONFIGURATION, add_configuration, smaller_configuration

# The CPU configuration used by the demo and the measured ablation (see README, "Numbers").
CPU_ARCHITECTURE = {"n_stages": 5, "base_features": 8, "max_features": 128, "batch_size": 8, "max_patch": 96}

# nnU-Net process counts that suit a small CPU machine; set only where the user has not set them.
CPU_PROCESS_DEFAULTS = {"nnUNet_def_n_proc": "1", "nnUNet_n_proc_DA": "1"}


def workspace_env(work_dir, environ: dict | None = None, cpu: bool = True) -> dict:
    """Environment for nnU-Net subprocesses working in ``work_dir``: its three folders, our trainers
    folder added to ``nnUNet_extTrainer`` (the user's value kept first) and, with ``cpu``, modest
    process counts unless the user set them."""
    work = Path(work_dir).resolve()
    env = with_trainers_folder(environ)
    env.update(nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
               nnUNet_results=str(work / "nnUNet_results"))
    if cpu:
        for key, value in CPU_PROCESS_DEFAULTS.items():
            env.setdefault(key, value)
    return env


def run_logged(cmd: list[str], env: dict, echo=print) -> None:
    """Run an nnU-Net command, its output streamed to our stdout; a failure raises with the command. The command
    is found on the PATH of ``env`` or beside this interpreter (:func:`locate.nnunet_command`); an exception
    (Ctrl-C; SIGTERM under :func:`processes.sigterm_as_interrupt`) stops it (:func:`processes.run_child`).

    Raises:
        FileNotFoundError: when the command is in neither place (before anything runs).
        RuntimeError: when it exits with a non-zero status.
    """
    exe = nnunet_command(cmd[0], env)
    echo("$ " + " ".join(cmd))
    sys.stdout.flush()
    code = run_child([exe, *cmd[1:]], env=env)
    if code != 0:
        raise RuntimeError(f"command failed with exit code {code}: {' '.join(cmd)}")


def prepare_embedded(key, work_dir, variant: str = "full", configuration: str | None = CPU_CONFIGURATION,
                     base_configuration: str = "2d", echo=print, environ: dict | None = None) -> str:
    """Write an embedded data set into ``work_dir``, plan and preprocess it with nnU-Net (once), add the
    CPU configuration (``configuration`` None: none), and write its contiguous-block splits.

    Returns the nnU-Net dataset name.
    """
    ds = datasets.get_dataset(key)
    env = workspace_env(work_dir, environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        Path(env[var]).mkdir(parents=True, exist_ok=True)
    datasets.write_nnunet_raw(ds.name, env["nnUNet_raw"], variant=variant)
    preprocessed = Path(env["nnUNet_preprocessed"]) / ds.name
    plans_file = preprocessed / "nnUNetPlans.json"
    marker = preprocessed / f"nnUNetPlans_{base_configuration}"
    if not (plans_file.is_file() and marker.is_dir() and any(marker.iterdir())):
        # nnU-Net's planner calls torch.set_num_threads(nnUNet_n_proc_DA): 0 would crash it
        plan_env = {**env, "nnUNet_n_proc_DA": str(max(1, int(env.get("nnUNet_n_proc_DA") or 1)))}
        run_logged(["nnUNetv2_plan_and_preprocess", "-d", str(ds.dataset_id), "-c", base_configuration,
                    "-np", "2", "-npfp", "2"], plan_env, echo)
    else:
        echo(f"plans and preprocessed data already in {preprocessed}")
    if configuration is not None:
        plans = json.loads(plans_file.read_text())
        config = smaller_configuration(plans, base=base_configuration, **CPU_ARCHITECTURE)
        if add_configuration(plans_file, configuration, config):
            echo(f"added configuration {configuration!r} to {plans_file}: {CPU_ARCHITECTURE}")
    datasets.write_splits(ds.name, env["nnUNet_preprocessed"], variant=variant)
    return ds.name


def environ_summary(env: dict) -> str:
    keys = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "nnUNet_extTrainer", *CPU_PROCESS_DEFAULTS)
    return "\n".join(f"  {k}={env.get(k, '')}" for k in keys)
