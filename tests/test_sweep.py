"""``nnunet-polydice sweep`` (experiments.sweep and experiments.nnunet_env): which trainings a grid needs and how
each is run.

No training here: the results tree is built in tmp_path with the files nnU-Net writes (empty
checkpoints, since the sweep only checks that they exist) and nnUNetv2_train is replaced by a recorder.
"""

import json
import os
import stat
import subprocess

import pytest
from conftest import SLEEPING_STAND_IN, planned_folders, sigterm_while_child_runs

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import locks, nnunet_env, runs, sweep
from nnunet_polydice.integration.locate import nnunet_command, trainers_folder

DS = "Dataset042_Toy"
PD, PDCE = "nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE"


# ------------------------------------------------------------------------------------ trainer list

def test_grid_names_and_order_families_then_K_then_epsilon_then_baselines_then_extra():
    names = sweep.sweep_trainers([PD, PDCE], [1, "inf"], [0, 1], baselines=["nnUNetTrainer"],
                                    extra=["nnUNetTrainerPolyDice_K1_eps0", "nnUNetTrainerDiceLoss"])
    assert names == [
        "nnUNetTrainerPolyDice_K1_eps0", "nnUNetTrainerPolyDice_K1_eps1",
        "nnUNetTrainerPolyDice_Kinf_eps0", "nnUNetTrainerPolyDice_Kinf_eps1",
        "nnUNetTrainerPolyDiceCE_K1_eps0", "nnUNetTrainerPolyDiceCE_K1_eps1",
        "nnUNetTrainerPolyDiceCE_Kinf_eps0", "nnUNetTrainerPolyDiceCE_Kinf_eps1",
        "nnUNetTrainer", "nnUNetTrainerDiceLoss",  # the duplicate extra name is dropped, order kept
    ]


def test_schedule_goes_on_every_name_baselines_and_extra_included():
    names = sweep.sweep_trainers([PD], ["2"], [0.5], baselines=["nnUNetTrainer", "nnUNetTrainerTversky"],
                                    extra=["nnUNetTrainerDiceLoss"], schedule=sweep.parse_schedule("30x20"))
    assert names == ["nnUNetTrainerPolyDice_K2_eps0p5_30ep20it", "nnUNetTrainer_30ep20it",
                     "nnUNetTrainerTversky_30ep20it", "nnUNetTrainerDiceLoss_30ep20it"]


def test_default_baselines_are_the_papers_comparisons():
    names = sweep.sweep_trainers([PD], [1], [0])
    assert names == ["nnUNetTrainerPolyDice_K1_eps0", "nnUNetTrainer", "nnUNetTrainerDiceLoss",
                     "nnUNetTrainerTversky", "nnUNetTrainerFocalTversky"]


def test_poly_tversky_families_get_default_or_given_alpha_beta():
    assert sweep.sweep_trainers(["nnUNetTrainerPolyTversky"], [2], [0], baselines=[]) == \
        ["nnUNetTrainerPolyTversky_K2_eps0_a0p3_b0p7"]
    assert sweep.sweep_trainers(["nnUNetTrainerPolyTverskyCE"], [2], [0], baselines=[], alpha=0.4, beta=0.6) == \
        ["nnUNetTrainerPolyTverskyCE_K2_eps0_a0p4_b0p6"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(K_values=[0], epsilons=[0]), "K must be a positive integer or inf (got 0)"),
    (dict(K_values=["1.5"], epsilons=[0]), "K must be a positive integer or inf (got '1.5')"),
    (dict(K_values=[1], epsilons=[-2]), "epsilon must be >= -1"),
    (dict(K_values=[1], epsilons=[-1]), "identically zero"),
    (dict(K_values=[1], epsilons=[]), "needs both K and epsilon"),
    (dict(K_values=[1], epsilons=[0], families=["nnUNetTrainerTversky"]), "not a Poly family"),
    (dict(K_values=[1], epsilons=[0], alpha=0.2), "only to the Poly Tversky families"),
    (dict(extra=["bad name"]), "not a valid nnU-Net trainer name"),
    (dict(extra=["nnUNetTrainerPolyDice_K01_eps1"]), "nnUNetTrainerPolyDice_K1_eps1"),
    (dict(extra=["nnUNetTrainer_5ep2it"], schedule=(3, 2)), "already has the schedule"),
    (dict(baselines=[]), "the sweep is empty"),
])
def test_bad_settings_are_refused_with_a_sentence(kwargs, message):
    kwargs.setdefault("families", [PD])
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sweep.sweep_trainers(**kwargs)


@pytest.mark.parametrize("text, value", [("30x20", (30, 20)), ("2ep5it", (2, 5)), (" 1x1 ", (1, 1))])
def test_schedule_text(text, value):
    assert sweep.parse_schedule(text) == value


@pytest.mark.parametrize("text", ["0x5", "30", "3x", "axb", "3x0"])
def test_bad_schedule_text(text):
    with pytest.raises(ValueError, match="<epochs>x<iterations>"):
        sweep.parse_schedule(text)


# ------------------------------------------------------------------------------------------ states

GOOD_SUMMARY = json.dumps({"metric_per_case": [], "mean": {}, "foreground_mean": {"Dice": 0.5}})


def _touch(path):
    """An empty file, or a readable nnU-Net summary for a summary.json."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(GOOD_SUMMARY if path.name == "summary.json" else "")


@pytest.mark.parametrize("files, state", [
    ([], "fresh"),
    (["debug.json", "training_log_2024.txt"], "fresh"),
    (["checkpoint_latest.pth"], "continue"),
    (["checkpoint_best.pth"], "continue"),
    (["checkpoint_best.pth", "checkpoint_latest.pth"], "continue"),
    (["checkpoint_final.pth"], "validate"),
    (["checkpoint_final.pth", "checkpoint_best.pth"], "validate"),
    (["checkpoint_final.pth", "validation/summary.json"], "skip"),
    (["checkpoint_final.pth", "checkpoint_best.pth", "validation/summary.json"], "skip"),
    (["checkpoint_latest.pth", "validation/summary.json"], "continue"),  # summary of an older run
    (["validation/summary.json"], "foreign"),  # copied from elsewhere: never trained over
    (["validation/summary.json", "debug.json"], "foreign"),
    (["checkpoint_final.pth", "validation/summary.json:truncated"], "validate"),  # validate again
    (["checkpoint_final.pth", "validation/summary.json:empty"], "validate"),
    (["checkpoint_final.pth", "validation/summary.json:list"], "validate"),
    (["checkpoint_latest.pth", "polydice_pruned.json"], "pruned"),
    (["checkpoint_final.pth", "polydice_pruned.json", "validation/summary.json"], "skip"),
])
def test_fold_state_from_the_files_nnunet_writes(tmp_path, files, state):
    content = {"": GOOD_SUMMARY, "truncated": GOOD_SUMMARY[:20], "empty": "", "list": "[1, 2]"}
    for f in files:
        name, _, kind = f.partition(":")
        _touch(tmp_path / "fold_0" / name)
        if name.endswith(".json"):
            (tmp_path / "fold_0" / name).write_text(content[kind])
    assert runs.fold_state(tmp_path / "fold_0") == state


def test_train_command_flags():
    assert nnunet_env.train_command(DS, "2d", 0, "T", "fresh") == \
        ("nnUNetv2_train", DS, "2d", "0", "-tr", "T", "-p", "nnUNetPlans")
    assert nnunet_env.train_command(DS, "2d", 1, "T", "continue", plans="P", device="cpu", npz=True) == \
        ("nnUNetv2_train", DS, "2d", "1", "-tr", "T", "-p", "P", "-device", "cpu", "--npz", "--c")
    assert nnunet_env.train_command(DS, "2d", 2, "T", "validate", npz=True)[-2:] == ("--npz", "--val")
    assert nnunet_env.train_command(DS, "2d", 2, "T", "skip") is None


# ---------------------------------------------------------------------------------- command line

@pytest.fixture
def tree(tmp_path, monkeypatch):
    """nnU-Net folders with one dataset, its plans, and a results tree in every state."""
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    (raw / DS).mkdir(parents=True)
    (pre / DS).mkdir(parents=True)
    (pre / DS / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}, "3d_fullres": {}}}))
    for k, v in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)

    def fold(trainer, f):
        return res / DS / f"{trainer}__nnUNetPlans__2d" / f"fold_{f}"

    _touch(fold("nnUNetTrainerPolyDice_K1_eps0", 0) / "checkpoint_final.pth")          # finished
    _touch(fold("nnUNetTrainerPolyDice_K1_eps0", 0) / "validation" / "summary.json")
    _touch(fold("nnUNetTrainerPolyDice_K1_eps0", 1) / "checkpoint_latest.pth")         # started
    _touch(fold("nnUNetTrainerPolyDice_K1_eps1", 0) / "checkpoint_final.pth")          # not validated
    _touch(fold("nnUNetTrainerPolyDice_K1_eps1", 1) / "checkpoint_best.pth")           # started
    _touch(fold("nnUNetTrainer", 1) / "checkpoint_final.pth")                           # finished
    _touch(fold("nnUNetTrainer", 1) / "validation" / "summary.json")
    # another plans identifier must not count
    _touch(res / DS / "nnUNetTrainer__otherPlans__2d" / "fold_0" / "checkpoint_final.pth")
    return tmp_path


GRID = ["42", "2d", "--folds", "0", "1", "--K", "1", "--epsilon", "0", "1", "--families", PD,
        "--baselines", "nnUNetTrainer"]


def _cmd(trainer, fold, *flags):
    return " ".join(["nnUNetv2_train", DS, "2d", str(fold), "-tr", trainer, "-p", "nnUNetPlans", *flags])


def test_print_lists_the_commands_with_continue_and_validate_flags(tree, capsys):
    assert main(["sweep", *GRID, "--print"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"export nnUNet_extTrainer={trainers_folder()}",
        # K1_eps0 fold 0 is finished: no line
        _cmd("nnUNetTrainerPolyDice_K1_eps0", 1, "--c"),
        _cmd("nnUNetTrainerPolyDice_K1_eps1", 0, "--val"),
        _cmd("nnUNetTrainerPolyDice_K1_eps1", 1, "--c"),
        _cmd("nnUNetTrainer", 0),
        # nnUNetTrainer fold 1 is finished
    ]


def test_print_with_device_npz_plans_and_no_export_when_already_set(tree, capsys, monkeypatch):
    monkeypatch.setenv("nnUNet_extTrainer", str(trainers_folder()))
    assert main(["sweep", *GRID, "--print", "--device", "cpu", "--npz", "-p", "nnUNetPlans"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == _cmd("nnUNetTrainerPolyDice_K1_eps0", 1, "-device", "cpu", "--npz", "--c")
    assert lines[1] == _cmd("nnUNetTrainerPolyDice_K1_eps1", 0, "-device", "cpu", "--npz", "--val")
    assert len(lines) == 4


def test_dataset_given_by_name_and_schedule_changes_folders(tree, capsys):
    assert main(["sweep", DS, "2d", "--folds", "0", "--K", "1", "--epsilon", "0", "--families", PD,
                 "--baselines", "nnUNetTrainer", "--schedule", "3x2", "--print"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    # the short-schedule trainers have no results yet: both fresh
    assert lines == [_cmd("nnUNetTrainerPolyDice_K1_eps0_3ep2it", 0), _cmd("nnUNetTrainer_3ep2it", 0)]


def test_default_baselines_come_with_a_grid_not_with_a_list_of_trainers(tree, capsys):
    grid = ["sweep", DS, "2d", "--folds", "0", "--K", "1", "--epsilon", "0", "--families", PD, "--print"]
    assert main(grid) == 0
    trainers = [line.split(" -tr ")[1].split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    # K1_eps0 fold 0 is finished in the tree (no line); the four baselines are not trained yet
    assert trainers == ["nnUNetTrainer", "nnUNetTrainerDiceLoss", "nnUNetTrainerTversky", "nnUNetTrainerFocalTversky"]
    assert main(["sweep", DS, "2d", "--folds", "0", "--trainers", "nnUNetTrainerPolyDice_K3_eps0", "--print"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines == [_cmd("nnUNetTrainerPolyDice_K3_eps0", 0)]


def test_dry_run_shows_every_state_and_runs_nothing(tree, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(sweep, "run_child", lambda *a, **k: calls.append(a) or 0)
    assert main(["sweep", *GRID, "--dry-run"]) == 0
    out = capsys.readouterr().out
    states = [line for line in out.splitlines() if line.startswith("[")]
    assert states == [
        "[1/6] nnUNetTrainerPolyDice_K1_eps0 fold 0: skip",
        "[2/6] nnUNetTrainerPolyDice_K1_eps0 fold 1: continue",
        "[3/6] nnUNetTrainerPolyDice_K1_eps1 fold 0: validate - no validation/summary.json (training unfinished or "
        "validation not run)",
        "[4/6] nnUNetTrainerPolyDice_K1_eps1 fold 1: continue",
        "[5/6] nnUNetTrainer fold 0: fresh",
        "[6/6] nnUNetTrainer fold 1: skip",
    ]
    assert "4 to run, 2 finished" in out
    assert calls == []


def test_run_streams_states_keeps_going_after_a_failure_and_exits_1(tree, capsys, monkeypatch):
    calls = []

    def fake_call(argv, env):
        calls.append((list(argv), env))
        return 3 if argv[argv.index("-tr") + 1] == "nnUNetTrainerPolyDice_K1_eps1" and argv[3] == "0" else 0

    monkeypatch.setattr(sweep, "run_child", fake_call)
    monkeypatch.setenv("MY_OWN_VARIABLE", "kept")
    assert main(["sweep", *GRID]) == 1
    out = capsys.readouterr().out
    assert [c[0][1:] for c in calls] == [
        _cmd("nnUNetTrainerPolyDice_K1_eps0", 1, "--c").split()[1:],
        _cmd("nnUNetTrainerPolyDice_K1_eps1", 0, "--val").split()[1:],
        _cmd("nnUNetTrainerPolyDice_K1_eps1", 1, "--c").split()[1:],  # after the failure: still run
        _cmd("nnUNetTrainer", 0).split()[1:],
    ]
    assert all(os.path.basename(c[0][0]) == "nnUNetv2_train" for c in calls)
    for _, env in calls:
        assert str(trainers_folder()) in env["nnUNet_extTrainer"].split(os.pathsep)
        assert env["MY_OWN_VARIABLE"] == "kept"
    assert "[1/6] nnUNetTrainerPolyDice_K1_eps0 fold 0: skip" in out
    assert "[3/6] nnUNetTrainerPolyDice_K1_eps1 fold 0: validate" in out
    assert "[3/6] nnUNetTrainerPolyDice_K1_eps1 fold 0: FAILED (exit status 3)" in out
    assert "3 of 4 runs succeeded, 2 were already finished" in out
    assert "1 failed:" in out and _cmd("nnUNetTrainerPolyDice_K1_eps1", 0, "--val") in out


def test_run_all_succeed_exits_0(tree, capsys, monkeypatch):
    monkeypatch.setattr(sweep, "run_child", lambda argv, env: 0)
    assert main(["sweep", *GRID]) == 0
    assert "4 of 4 runs succeeded" in capsys.readouterr().out


def test_slurm_script_has_one_array_task_per_unfinished_run(tree, capsys):
    """One task per unfinished run, nnUNetv2_train by absolute path and exec-ed, nnU-Net's folders exported, the
    output of each task in slurm_logs/ beside the script (created with it)."""
    script = tree / "sweep.sh"
    assert main(["sweep", *GRID, "--slurm", str(script)]) == 0
    text = script.read_text()
    lines = text.splitlines()
    assert lines[:4] == ["#!/bin/bash", "#SBATCH --job-name=polydice-sweep", "#SBATCH --array=0-3",
                         f"#SBATCH --output={tree}/slurm_logs/%x_%A_%a.out"]
    assert (tree / "slurm_logs").is_dir()
    assert f"export nnUNet_extTrainer={trainers_folder()}" in lines
    for name, folder in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "res")):
        assert f"export {name}={tree / folder}" in lines
    start = lines.index("COMMANDS=(")
    end = lines.index(")", start)
    entries = lines[start + 1:end]
    train = nnunet_command("nnUNetv2_train")
    assert os.path.isabs(train)
    assert [e.split("  #")[0].strip().strip("'") for e in entries] == [
        _cmd("nnUNetTrainerPolyDice_K1_eps0", 1, "--c").replace("nnUNetv2_train", train, 1),
        _cmd("nnUNetTrainerPolyDice_K1_eps1", 0, "--val").replace("nnUNetv2_train", train, 1),
        _cmd("nnUNetTrainerPolyDice_K1_eps1", 1, "--c").replace("nnUNetv2_train", train, 1),
        _cmd("nnUNetTrainer", 0).replace("nnUNetv2_train", train, 1),
    ]
    assert 'eval "exec ${COMMANDS[$SLURM_ARRAY_TASK_ID]}"' in lines
    assert script.stat().st_mode & stat.S_IXUSR
    assert "4 array tasks" in capsys.readouterr().out


def test_slurm_is_refused_without_nnunet_folders_before_anything_is_written(tree, capsys, monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed")
    script = tree / "sweep.sh"
    assert main(["sweep", *GRID, "--slurm", str(script)]) == 2
    assert capsys.readouterr().err.startswith("nnunet-polydice sweep: error: --slurm: nnUNet_preprocessed is not set;")
    assert not script.exists() and not (tree / "slurm_logs").exists()


def test_slurm_refuses_to_overwrite(tree, capsys):
    script = tree / "sweep.sh"
    script.write_text("my own script\n")
    assert main(["sweep", *GRID, "--slurm", str(script)]) == 2
    assert script.read_text() == "my own script\n"
    assert "exists" in capsys.readouterr().err


def test_slurm_dry_run_prints_the_script_and_writes_nothing(tree, capsys):
    script = tree / "sweep.sh"
    assert main(["sweep", *GRID, "--slurm", str(script), "--dry-run"]) == 0
    assert "#SBATCH --array=0-3" in capsys.readouterr().out
    assert not script.exists()


def test_print_and_slurm_exclude_each_other(tree, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", *GRID, "--print", "--slurm", str(tree / "x.sh")])
    assert exc.value.code == 2


@pytest.mark.parametrize("grid, message", [
    (["--K", "0", "--epsilon", "0"], "K must be a positive integer or inf (got '0')."),
    (["--K", "2", "--epsilon", "-1.5"], "epsilon must be >= -1"),
    (["--K", "1", "--epsilon", "-1"], "identically zero"),
])
def test_bad_K_or_epsilon_is_refused_before_anything_runs(tmp_path, capsys, monkeypatch, grid, message):
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(k, raising=False)  # refused before nnU-Net's folders are even looked at
    calls = []
    monkeypatch.setattr(sweep, "run_child", lambda *a, **k: calls.append(a) or 0)
    assert main(["sweep", "42", "2d", *grid]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-polydice sweep: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
    assert calls == []


def test_missing_plans_or_configuration_is_refused(tree, capsys):
    assert main(["sweep", *GRID, "-p", "nnUNetResEncUNetMPlans", "--print"]) == 2
    assert "nnUNetResEncUNetMPlans.json does not exist" in capsys.readouterr().err
    args = ["sweep", "42", "3d_lowres", "--K", "1", "--epsilon", "0", "--print"]
    assert main(args) == 2
    assert "configuration '3d_lowres' is not in nnUNetPlans.json; it has 2d, 3d_fullres" in capsys.readouterr().err


def test_unknown_dataset_id_is_one_line(tree, capsys):
    assert main(["sweep", "99", "2d", "--K", "1", "--epsilon", "0", "--print"]) == 2
    err = capsys.readouterr().err
    assert "cannot resolve dataset '99'" in err and len(err.strip().splitlines()) == 1


def test_run_jobs_reports_a_command_that_cannot_start():
    jobs = [sweep.Job("T", "0", "fresh", ("nnUNetv2_train", DS, "2d", "0", "-tr", "T", "-p", "P")),
            sweep.Job("U", "0", "skip", None)]
    seen = []

    def broken(argv, env):
        raise FileNotFoundError("no such file")

    failed = sweep.run_jobs(jobs, environ={}, echo=seen.append, runner=broken).failed
    assert failed == [jobs[0]]
    assert seen[0] == "[1/2] T fold 0: fresh" and "could not start" in seen[1] and seen[2] == "[2/2] U fold 0: skip"


# ------------------------------------------------------------------- names nnU-Net's lookup must find

def _refused(argv, capsys, monkeypatch):
    """Run the sweep with nnUNetv2_train replaced by a recorder; assert exit 2, one error line, nothing run or
    printed; return the error line."""
    calls = []
    monkeypatch.setattr(sweep, "run_child", lambda *a, **k: calls.append(a) or 0)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert calls == [] and captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1
    return captured.err.strip()


@pytest.mark.parametrize("mode", [["--dry-run"], ["--print"], []])
def test_a_trainer_nnunet_cannot_find_is_refused_before_anything_runs_with_the_closest_name(tree, capsys,
                                                                                            monkeypatch, mode):
    err = _refused(["sweep", DS, "2d", "--folds", "0", "--trainers", "nnUNetTrainerPolydice", *mode], capsys,
                   monkeypatch)
    assert err.startswith("nnunet-polydice sweep: error: trainer 'nnUNetTrainerPolydice' is not found by nnU-Net's "
                          "lookup (nnunetv2's trainers, then nnUNet_extTrainer=")
    assert str(trainers_folder()) in err   # looked up as the sweep's trainings will run: with our folder added
    assert "so nnUNetv2_train would fail with it. Did you mean 'nnUNetTrainerPolyDice'?" in err


def test_every_unknown_name_is_listed_with_its_suggestion_and_the_schedule_is_kept(tree, capsys, monkeypatch):
    err = _refused(["sweep", DS, "2d", "--folds", "0", "--schedule", "2x5", "--trainers", "nnUNetTrainerPolyDice",
                    "nnUNetTrainerPolydice", "nnUNetTrainerDiceLos", "--dry-run"], capsys, monkeypatch)
    assert "2 trainers would fail: " in err
    assert "'nnUNetTrainerPolydice_2ep5it' is not found" in err
    assert "Did you mean 'nnUNetTrainerPolyDice_2ep5it'?" in err
    assert "'nnUNetTrainerDiceLos_2ep5it' is not found" in err and "Did you mean 'nnUNetTrainerDiceLoss_2ep5it'?" in err


def test_a_trainer_in_the_users_own_extTrainer_folder_is_found(tree, capsys, monkeypatch):
    mine = tree / "my_trainers"
    mine.mkdir()
    (mine / "my_sweep_trainers.py").write_text(
        "from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer\n\n\n"
        "class MySweepTrainer(nnUNetTrainer):\n    pass\n")
    monkeypatch.setenv("nnUNet_extTrainer", str(mine))
    assert main(["sweep", DS, "2d", "--folds", "0", "--trainers", "MySweepTrainer", "nnUNetTrainerPolyDice_K3_eps0",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "[1/2] MySweepTrainer fold 0: fresh" in out and "[2/2] nnUNetTrainerPolyDice_K3_eps0 fold 0: fresh" in out


@pytest.mark.parametrize("name, message", [
    ("nnUNetTrainerPolyDice_\u0662ep\u0665it",   # Arabic-Indic 2 and 5: Python's int() would read them
     "is not a valid nnUNetTrainerPolyDice name: only ASCII letters, digits and single '_' may be used."),
    ("nnUNetTrainerPolyDice\n", "is not a valid nnUNetTrainerPolyDice name: only ASCII letters"),
    ("nnUNetTrainerPolyDice_K2_eps1\n", "is not a valid nnUNetTrainerPolyDice name"),
    ("nnUNetTrainer\n", "is not a valid nnU-Net trainer name: it must be an ASCII Python class name"),
    ("nnUNetTrainer_\u0662ep\u0665it", "is not a valid nnU-Net trainer name: it must be an ASCII Python class name"),
])
@pytest.mark.parametrize("option", ["--dry-run", "--print"])
def test_non_ascii_digits_and_trailing_newlines_are_refused(tree, capsys, monkeypatch, name, message, option):
    err = _refused(["sweep", DS, "2d", "--folds", "0", "--trainers", name, option], capsys, monkeypatch)
    assert f"{name!r} {message}" in err


# ----------------------------------------------------------------------------- folds vs splits_final.json

def _splits(tree, n):
    path = tree / "pre" / DS / "splits_final.json"
    path.write_text(json.dumps([{"train": ["a", "b"], "val": [f"c{i}"]} for i in range(n)]))
    return path


def test_a_fold_beyond_splits_final_is_refused_unless_a_random_split_is_asked_for(tree, capsys, monkeypatch):
    path = _splits(tree, 5)
    argv = ["sweep", DS, "2d", "--trainers", "nnUNetTrainer", "--folds", "0", "7", "--dry-run"]
    err = _refused(argv, capsys, monkeypatch)
    assert err == (f"nnunet-polydice sweep: error: --folds 7: {path} has 5 folds (0-4). nnU-Net would train it on a "
                   f"random 80:20 split of the training cases instead (with slices of one subject, neighbouring slices "
                   f"would land in training and validation). Give folds 0-4 or 'all', or pass --allow-random-split to "
                   f"ask for nnU-Net's random split.")
    assert main([*argv, "--allow-random-split"]) == 0
    assert "[2/2] nnUNetTrainer fold 7: fresh" in capsys.readouterr().out


def test_without_splits_final_folds_0_to_4_and_all_are_fine(tree, capsys, monkeypatch):
    assert main(["sweep", DS, "2d", "--trainers", "nnUNetTrainer", "--folds", "4", "all", "--print"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [_cmd("nnUNetTrainer", 4), _cmd("nnUNetTrainer", "all")]
    err = _refused(["sweep", DS, "2d", "--trainers", "nnUNetTrainer", "--folds", "5", "6", "--print"], capsys,
                   monkeypatch)
    assert (f"--folds 5 6: {tree / 'pre' / DS / 'splits_final.json'} does not exist yet, and the split nnU-Net writes "
            f"at the first training has folds 0-4. nnU-Net would train these folds on a random 80:20 split") in err


def test_a_smaller_split_file_sets_the_folds(tree, capsys, monkeypatch):
    _splits(tree, 3)
    assert main(["sweep", DS, "2d", "--trainers", "nnUNetTrainer", "--folds", "0", "1", "2", "--print"]) == 0
    capsys.readouterr()
    err = _refused(["sweep", DS, "2d", "--trainers", "nnUNetTrainer", "--folds", "3", "--print"], capsys, monkeypatch)
    assert "has 3 folds (0-2)" in err and "Give folds 0-2 or 'all'" in err
    (tree / "pre" / DS / "splits_final.json").write_text('{"not": "a list"}')
    err = _refused(["sweep", DS, "2d", "--trainers", "nnUNetTrainer", "--folds", "0", "--print"], capsys, monkeypatch)
    assert "splits_final.json is not nnU-Net's splits_final.json (a JSON list" in err


# ------------------------------------------------------------------------- states the sweep leaves alone

def _snapshot(folder):
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_foreign_and_pruned_are_shown_with_their_reason_and_never_run(tree, capsys, monkeypatch):
    res = tree / "res" / DS
    foreign = res / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0"
    _touch(foreign / "validation" / "summary.json")
    pruned = res / "nnUNetTrainerPolyDice_K1_eps0__nnUNetPlans__2d" / "fold_1"
    (pruned / "polydice_pruned.json").write_text("{}")
    calls = []
    monkeypatch.setattr(sweep, "run_child", lambda argv, env: calls.append(argv) or 0)
    assert main(["sweep", *GRID, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("[2/6] nnUNetTrainerPolyDice_K1_eps0 fold 1: pruned - stopped early by the tuner's pruner (checkpoint "
            "kept)\n[3/6]") in out
    assert ("[5/6] nnUNetTrainer fold 0: foreign - validation/summary.json without any checkpoint (copied from "
            "elsewhere?); it is never trained over\n[6/6]") in out
    assert "2 to run, 2 finished, 2 left alone (foreign or pruned)" in out
    assert main(["sweep", *GRID, "--print"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2:] == [
        "# nnUNetTrainerPolyDice_K1_eps0 fold 1: pruned - stopped early by the tuner's pruner (checkpoint kept); "
        "left alone",
        "# nnUNetTrainer fold 0: foreign - validation/summary.json without any checkpoint (copied from elsewhere?); "
        "it is never trained over; left alone"]
    assert _cmd("nnUNetTrainer", 0) not in lines and _cmd("nnUNetTrainerPolyDice_K1_eps0", 1, "--c") not in lines
    assert main(["sweep", *GRID]) == 0
    assert [(c[c.index("-tr") + 1], c[3]) for c in calls] == [("nnUNetTrainerPolyDice_K1_eps1", "0"),
                                                              ("nnUNetTrainerPolyDice_K1_eps1", "1")]
    out = capsys.readouterr().out
    assert "2 of 2 runs succeeded, 2 were already finished, 2 left alone (foreign or pruned)." in out


def test_sweep_end_to_end_validates_a_truncated_summary_and_leaves_a_copied_one_byte_identical(tmp_path, capsys,
                                                                                              monkeypatch):
    """The real sweep command with a stand-in nnUNetv2_train on PATH that records its arguments."""
    raw, pre, res = planned_folders(tmp_path, monkeypatch, DS)
    bin_dir, record = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    fake = bin_dir / "nnUNetv2_train"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{record}'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    trainer = "nnUNetTrainerPolyDice_K2_eps1"
    folds = res / DS / f"{trainer}__nnUNetPlans__2d"
    _touch(folds / "fold_0" / "checkpoint_final.pth")                  # a crash cut its summary short
    (folds / "fold_0" / "validation").mkdir(parents=True)
    (folds / "fold_0" / "validation" / "summary.json").write_text(GOOD_SUMMARY[:25])
    _touch(folds / "fold_1" / "validation" / "summary.json")           # copied in, no checkpoint
    (folds / "fold_1" / "notes.txt").write_text("results from another machine\n")
    before = _snapshot(folds / "fold_1")

    assert main(["sweep", DS, "2d", "--folds", "0", "1", "2", "--trainers", trainer]) == 0
    out = capsys.readouterr().out
    assert record.read_text().splitlines() == [f"{DS} 2d 0 -tr {trainer} -p nnUNetPlans --val",
                                               f"{DS} 2d 2 -tr {trainer} -p nnUNetPlans"]
    assert f"[1/3] {trainer} fold 0: validate - validation/summary.json is not valid JSON (truncated?)" in out
    assert f"[2/3] {trainer} fold 1: foreign - validation/summary.json without any checkpoint" in out
    assert _snapshot(folds / "fold_1") == before


def test_slurm_file_in_a_missing_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(k, raising=False)   # refused before nnU-Net's folders are even looked at
    for extra in ([], ["--dry-run"]):
        err = _refused(["sweep", "42", "2d", "--trainers", "nnUNetTrainer", "--slurm", "/nonexistent/dir/s.sh",
                        *extra], capsys, monkeypatch)
        assert err == ("nnunet-polydice sweep: error: --slurm /nonexistent/dir/s.sh: the folder /nonexistent/dir does "
                       "not exist; create it first or give a file in an existing folder.")


# ------------------------------------------------------------------------------------------ seeds

def test_seeds_repeat_every_name_seeds_outer_after_the_schedule():
    names = sweep.sweep_trainers([PD], [2], [1.0], baselines=["nnUNetTrainer"], schedule=(30, 40), seeds=[0, 2])
    assert names == ["nnUNetTrainerPolyDice_K2_eps1_30ep40it_s0", "nnUNetTrainer_30ep40it_s0",
                     "nnUNetTrainerPolyDice_K2_eps1_30ep40it_s2", "nnUNetTrainer_30ep40it_s2"]
    # a seeded extra name takes the schedule before its seed, and keeps its seed when it is among --seeds
    assert sweep.sweep_trainers(extra=["nnUNetTrainer_s2"], baselines=(), schedule=(3, 2), seeds=[2]) == \
        ["nnUNetTrainer_3ep2it_s2"]


@pytest.mark.parametrize("seeds, message", [
    (["0", "1", "0"], "seed 0 more than once"),
    ([3, 3], "seed 3 more than once"),
    (["-1"], "from 0 to 4294967295"),
    ([-2], "from 0 to 4294967295"),
    (["4294967296"], "from 0 to 4294967295"),
    (["x"], "from 0 to 4294967295"),
])
def test_bad_seeds_are_refused_with_the_range(seeds, message):
    with pytest.raises(ValueError, match=message):
        sweep.sweep_trainers(extra=["nnUNetTrainer"], baselines=(), seeds=seeds)


def test_a_name_with_another_seed_is_refused():
    with pytest.raises(ValueError, match="already has the seed _s3"):
        sweep.sweep_trainers(extra=["nnUNetTrainer_s3"], baselines=(), seeds=[1])


def test_sweep_seeds_on_the_command_line_refused_before_anything(tree, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(sweep, "run_child", lambda *a, **k: started.append(a) or 0)
    assert main(["sweep", *GRID, "--seeds", "1", "1"]) == 2
    assert "seed 1 more than once" in capsys.readouterr().err and not started
    assert main(["sweep", *GRID, "--seeds", "0", "--print"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert lines[0] == _cmd("nnUNetTrainerPolyDice_K1_eps0_s0", 0)
    assert len(lines) == 6 and all(line.split()[5].endswith("_s0") for line in lines)


def test_one_setting_is_trained_once_whichever_of_its_names_finished_it(tree, capsys):
    """nnUNetTrainerPolyDice_K2_eps1 is the family's default: its finished fold counts for the family name and
    the other way round; another seed or setting does not."""
    res = tree / "res" / DS
    for trainer in ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDice_K2_eps1_s4"):
        _touch(res / f"{trainer}__nnUNetPlans__2d" / "fold_0" / "checkpoint_final.pth")
        _touch(res / f"{trainer}__nnUNetPlans__2d" / "fold_0" / "validation" / "summary.json")
    assert main(["sweep", "42", "2d", "--folds", "0", "1", "--K", "2", "--epsilon", "1", "--families", PD,
                 "--baselines", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nnUNetTrainerPolyDice_K2_eps1 fold 0: skip - finished as nnUNetTrainerPolyDice (the same setting)" in out
    assert "nnUNetTrainerPolyDice_K2_eps1 fold 1: fresh" in out
    assert main(["sweep", "42", "2d", "--folds", "0", "--trainers", "nnUNetTrainerPolyDice_s4",
                 "nnUNetTrainerPolyDice_s5", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nnUNetTrainerPolyDice_s4 fold 0: skip - finished as nnUNetTrainerPolyDice_K2_eps1_s4" in out
    assert "nnUNetTrainerPolyDice_s5 fold 0: fresh" in out


def test_an_unknown_dataset_is_one_sentence_with_the_folders_nnunet_looked_in(tmp_path, monkeypatch):
    """nnU-Net's RuntimeError lists the three folders on lines of their own: all of it, on one line."""
    raw, pre, res = planned_folders(tmp_path, monkeypatch, DS)
    with pytest.raises(ValueError) as err:
        nnunet_env.resolve_dataset_name("999")
    text = str(err.value)
    assert text.startswith("cannot resolve dataset '999': Could not find a dataset with the ID 999.")
    assert "\n" not in text
    assert f"folders: nnUNet_preprocessed={pre}, nnUNet_results={res}, nnUNet_raw={raw}, If something" in text


@pytest.mark.parametrize("typed", ["\u0664\u0662", "\uff14\uff12", "Dataset\uff10\uff14\uff12_Toy"])
def test_a_dataset_typed_in_other_scripts_digits_is_refused_not_resolved(tmp_path, monkeypatch, typed):
    """nnU-Net's int() reads Arabic-Indic or fullwidth digits as 42: a data set the user did not type."""
    planned_folders(tmp_path, monkeypatch, DS)
    assert nnunet_env.resolve_dataset_name("42") == DS
    with pytest.raises(ValueError, match=r"give its id in ASCII digits 0-9 \(e\.g\. 731\) or its folder name"):
        nnunet_env.resolve_dataset_name(typed)


# ------------------------------------------------------------ SIGTERM and fold locks (issue 22 D)

def _stand_in(tmp_path, monkeypatch, body: str):
    """A stand-in nnUNetv2_train (a shell script running ``body``) first on PATH; returns the PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "nnUNetv2_train"
    fake.write_text("#!/bin/sh\n" + body)
    fake.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    monkeypatch.setenv("PATH", path)
    return path


def test_sigterm_to_a_sweep_stops_its_training_and_says_interrupted(tmp_path, monkeypatch):
    """SIGTERM (kill, a batch system) ends the sweep with 'interrupted' and exit 130, its nnUNetv2_train with it
    (not left training as an orphan), and its fold lock is removed."""
    _, _, res = planned_folders(tmp_path, monkeypatch, DS)
    pid_file = tmp_path / "train.pid"
    _stand_in(tmp_path, monkeypatch, SLEEPING_STAND_IN.format(pid_file=pid_file).removeprefix("#!/bin/sh\n"))
    done, alive = sigterm_while_child_runs(["sweep", DS, "2d", "--folds", "0", "--trainers",
                                            "nnUNetTrainerPolyDice_K2_eps1"], pid_file)
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert "nnunet-polydice sweep: interrupted." in done.stderr
    assert not alive  # stopped and reaped by the sweep, not reparented
    assert not list(res.rglob(locks.LOCK_NAME))


def _fold(res, trainer, fold=0):
    return res / DS / f"{trainer}__nnUNetPlans__2d" / f"fold_{fold}"


def test_a_fold_locked_by_a_live_process_is_shown_busy_and_skipped_naming_its_holder(tmp_path, capsys, monkeypatch):
    _, _, res = planned_folders(tmp_path, monkeypatch, DS)
    record = tmp_path / "calls.txt"
    _stand_in(tmp_path, monkeypatch, f"printf '%s\\n' \"$*\" >> '{record}'\n")
    busy, free = "nnUNetTrainerPolyDice_K2_eps1", "nnUNetTrainerPolyDice_K1_eps0"
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        owner = locks.command_owner("nnunet-polydice sweep", pid=sleeper.pid)
        assert locks.acquire_lock(_fold(res, busy), owner) is None
        holder = locks.holder_text(owner)
        argv = ["sweep", DS, "2d", "--folds", "0", "--trainers", busy, free]
        assert main([*argv, "--dry-run"]) == 0
        assert f"[1/2] {busy} fold 0: busy (trained by {holder})" in capsys.readouterr().out
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert f"[1/2] {busy} fold 0: skipped, busy: trained by {holder}" in out
        assert "1 of 2 runs succeeded" in out and "1 skipped: busy, trained by another process" in out
        assert record.read_text().splitlines() == [f"{DS} 2d 0 -tr {free} -p nnUNetPlans"]
        assert locks.read_lock(_fold(res, busy)) == owner  # the holder's lock is left alone
        assert not (_fold(res, free) / locks.LOCK_NAME).exists()  # ours is removed after the run
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_stale_fold_lock_of_a_dead_process_is_taken_over(tmp_path, capsys, monkeypatch):
    _, _, res = planned_folders(tmp_path, monkeypatch, DS)
    record = tmp_path / "calls.txt"
    _stand_in(tmp_path, monkeypatch, f"printf '%s\\n' \"$*\" >> '{record}'\n")
    trainer = "nnUNetTrainerPolyDice_K2_eps1"
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = locks.command_owner("nnunet-polydice sweep", pid=dead.pid)
    assert locks.acquire_lock(_fold(res, trainer), owner) is None
    assert main(["sweep", DS, "2d", "--folds", "0", "--trainers", trainer, "--dry-run"]) == 0
    assert f"[1/1] {trainer} fold 0: fresh" in capsys.readouterr().out
    assert main(["sweep", DS, "2d", "--folds", "0", "--trainers", trainer]) == 0
    out = capsys.readouterr().out
    assert f"taking over the lock of {locks.holder_text(owner)} (its process (pid {dead.pid}) is gone)" in out
    assert record.read_text().splitlines() == [f"{DS} 2d 0 -tr {trainer} -p nnUNetPlans"]
    assert not (_fold(res, trainer) / locks.LOCK_NAME).exists()


def test_a_run_another_process_finished_after_planning_is_skipped_at_its_turn(tmp_path, capsys, monkeypatch):
    """The stand-in training of job 1 finishes job 2's fold (as a second sweep would): job 2 is not trained again."""
    _, _, res = planned_folders(tmp_path, monkeypatch, DS)
    first, second = "nnUNetTrainerPolyDice_K1_eps0", "nnUNetTrainerPolyDice_K2_eps1"
    record, other = tmp_path / "calls.txt", _fold(res, second)
    _stand_in(tmp_path, monkeypatch, f"printf '%s\\n' \"$*\" >> '{record}'\nmkdir -p '{other}/validation'\n"
                                     f": > '{other}/checkpoint_final.pth'\n"
                                     f"printf '%s' '{GOOD_SUMMARY}' > '{other}/validation/summary.json'\n")
    assert main(["sweep", DS, "2d", "--folds", "0", "--trainers", first, second]) == 0
    out = capsys.readouterr().out
    assert f"[2/2] {second} fold 0: fresh\n[2/2] {second} fold 0: finished meanwhile, by another process; " \
           f"skipped" in out
    assert "1 finished meanwhile by another process" in out
    assert record.read_text().splitlines() == [f"{DS} 2d 0 -tr {first} -p nnUNetPlans"]
    assert runs.fold_status(other).finished


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (where even root creates nothing)")
def test_an_unwritable_results_folder_is_refused_before_any_training(tmp_path, capsys, monkeypatch):
    """nnU-Net would fail after its start-up (a minute) with a PermissionError traceback: the sweep checks first."""
    planned_folders(tmp_path, monkeypatch, DS)
    monkeypatch.setenv("nnUNet_results", "/proc/polydice_results")
    bin_dir, record = tmp_path / "bin", tmp_path / "calls.txt"
    bin_dir.mkdir()
    (bin_dir / "nnUNetv2_train").write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{record}'\n")
    (bin_dir / "nnUNetv2_train").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert main(["sweep", DS, "2d", "--folds", "0", "--trainers", "nnUNetTrainer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-polydice sweep: error: nnUNet_results: the run's folder /proc/polydice_results/")
    assert "cannot be written: nothing can be created in /proc" in err and not record.exists()


def test_a_configuration_name_too_long_for_a_results_folder_is_refused_before_the_lookup(tmp_path, capsys,
                                                                                         monkeypatch):
    """A plans file with a 300-character configuration (an older add-config wrote one): one sentence, no
    traceback, before nnU-Net's lookup and before anything is planned or written."""
    _, pre, res = planned_folders(tmp_path, monkeypatch, DS)
    long = "c" * 300
    (pre / DS / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}, long: {}}}))
    assert main(["sweep", DS, long, "--folds", "0", "--trainers", "nnUNetTrainer", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nnunet-polydice sweep: error: the results folder of nnUNetTrainer (configuration "
                          f"{'c' * 40!r}): the name 'nnUNetTrainer__nnUNetPlans__cccccccccccc")
    assert "bytes long; the file system allows at most 255 bytes a name" in err and not res.exists()
