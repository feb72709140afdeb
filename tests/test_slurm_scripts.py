"""The parts of a Slurm script (nnunet_polydice.experiments.slurm) that make it run from a plain login shell; the
scripts themselves are checked in test_tune.py and test_sweep.py, and under a real sbatch in test_slurm.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import slurm
from nnunet_polydice.integration.locate import self_command, trainers_folder

FOLDERS = {"nnUNet_raw": "/data/raw", "nnUNet_preprocessed": "/data/pre", "nnUNet_results": "/data/res"}


def test_the_interpreter_runs_the_command_line_from_a_plain_environment():
    command = self_command()
    assert command == [sys.executable, "-m", "nnunet_polydice.cli"]
    proc = subprocess.run([*command, "--version"], env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=120, cwd="/")
    assert proc.returncode == 0 and proc.stdout.startswith("nnunet-polydice "), proc.stderr
    with pytest.raises(ValueError, match="the path of this Python interpreter is unknown"):
        self_command("python3")


def test_environment_lines_export_every_nnunet_variable_absolute_and_quoted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {**FOLDERS, "nnUNet_raw": "my raw", "nnUNet_n_proc_DA": "4", "nnUNet_compile": "", "nnUNet_x-y": "1",
           "nnUNet_extTrainer": "mine", "PATH": "/venv/bin:/usr/bin", "OTHER": "x"}
    assert slurm.environment_lines(env) == [
        f"export nnUNet_extTrainer={tmp_path / 'mine'}:{trainers_folder()}",
        "export nnUNet_n_proc_DA=4",
        "export nnUNet_preprocessed=/data/pre",
        f"export nnUNet_raw='{tmp_path / 'my raw'}'",
        "export nnUNet_results=/data/res",
    ]


@pytest.mark.parametrize("unset, message", [
    (["nnUNet_results"], "--slurm: nnUNet_results is not set; the script exports nnU-Net's folders"),
    (["nnUNet_preprocessed", "nnUNet_results"], "--slurm: nnUNet_preprocessed and nnUNet_results are not set;"),
])
def test_environment_without_nnunet_folders_is_refused(unset, message):
    env = {k: v for k, v in FOLDERS.items() if k not in unset}
    with pytest.raises(ValueError, match=f"^{message}"):
        slurm.environment_lines(env)
    assert slurm.environment_lines({k: v for k, v in FOLDERS.items() if k != "nnUNet_raw"})  # raw is optional


def test_output_directive_quotes_spaces_doubles_percent_and_refuses_quotes(tmp_path):
    assert slurm.output_directive("/data/logs") == "#SBATCH --output=/data/logs/%x_%A_%a.out"
    assert slurm.output_directive("/data/my logs") == '#SBATCH --output="/data/my logs/%x_%A_%a.out"'
    assert slurm.output_directive("/data/100%") == "#SBATCH --output=/data/100%%/%x_%A_%a.out"
    with pytest.raises(ValueError, match="has a quote, backslash or line break"):
        slurm.output_directive("/data/it's")


def test_write_script_creates_the_log_folder_and_refuses_an_unwritable_one(tmp_path):
    logs = tmp_path / "deep" / "logs"
    path = slurm.write_script(tmp_path / "s.sbatch", "#!/bin/bash\n", logs)
    assert logs.is_dir() and os.access(path, os.X_OK)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="--slurm's log folder .*file.*is a file"):
        slurm.write_script(tmp_path / "t.sbatch", "#!/bin/bash\n", tmp_path / "file")
    assert not (tmp_path / "t.sbatch").exists()


def test_tune_slurm_without_nnunet_results_is_refused_before_anything_is_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name, value in FOLDERS.items():
        monkeypatch.setenv(name, str(tmp_path / value.lstrip("/")))
    monkeypatch.delenv("nnUNet_results")
    assert main(["tune", "991", "2d", "--K", "2", "--epsilon", "0", "--slurm", "t.sbatch"]) == 2
    assert capsys.readouterr().err.startswith("nnunet-polydice tune: error: --slurm: nnUNet_results is not set;")
    assert list(tmp_path.iterdir()) == []
