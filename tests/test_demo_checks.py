"""The demo's checks run before any work: a trainer nnU-Net does not find, a work folder that is a file, has no
parent or holds other files are refused with a sentence, and nothing is created, planned or trained. nnU-Net's
commands are found beside the interpreter when they are not on PATH (locate.nnunet_command)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SLEEPING_STAND_IN, nnunet_env, sigterm_while_child_runs

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import demo
from nnunet_polydice.experiments.workspace import run_logged
from nnunet_polydice.integration.locate import nnunet_command


@pytest.fixture
def no_work(monkeypatch):
    """Any nnU-Net command started fails the test: the checks come first."""
    popen = subprocess.Popen

    class Started(popen):
        def __init__(self, args, *rest, **kwargs):
            assert "nnUNetv2" not in str(args), f"an nnU-Net command was started: {args}"
            super().__init__(args, *rest, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Started)


def _demo(tmp_path, capsys, *args) -> str:
    assert main(["demo", "--variant", "tiny", "--schedule", "1x2", "--device", "cpu", *args]) == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("typo, suggestion", [("nnUNetTrainerPolydice", "nnUNetTrainerPolyDice"),
                                              ("nnUNetTrainerPolyDise", "nnUNetTrainerPolyDice")])
def test_a_trainer_typo_is_refused_before_planning(tmp_path, capsys, no_work, typo, suggestion):
    work = tmp_path / "demo"
    err = _demo(tmp_path, capsys, "--work", str(work), "--trainers", typo, "nnUNetTrainer")
    assert f"Did you mean '{suggestion}" in err and typo in err
    assert not work.exists()


@pytest.mark.parametrize("content", ["notes.txt", ".hidden", "subfolder/"])
def test_a_folder_of_other_files_is_not_a_work_folder(tmp_path, capsys, no_work, content):
    work = tmp_path / "mine"
    (work / content.rstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    if content.endswith("/"):
        (work / content).mkdir()
    else:
        (work / content).write_text("mine")
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    err = _demo(tmp_path, capsys, "--work", str(work))
    assert f"--work {work} is a folder with other files in it and no {demo.MARKER}: the demo works in a folder " \
           f"of its own" in err
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before


@pytest.mark.parametrize("where, message", [
    ("a_file", "--work {p} is a file, not a folder"),
    ("a_file/sub", "--work {p} cannot be created: {parent} is a file, not a folder"),
    ("no/such/folder", "--work {p}: its parent folder {parent} does not exist"),
])
def test_a_work_folder_that_cannot_be_one_is_a_sentence(tmp_path, capsys, no_work, where, message):
    (tmp_path / "a_file").write_text("mine")
    p = tmp_path / where
    err = _demo(tmp_path, capsys, "--work", str(p))
    assert message.format(p=p, parent=p.parent) in err and "Errno" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a_file"] and (tmp_path / "a_file").read_text() == "mine"


def test_its_own_earlier_folder_and_an_empty_one_are_fine(tmp_path):
    info = demo.DEMO_DATA["colin27"]
    own = tmp_path / "own"
    own.mkdir()
    (own / demo.MARKER).write_text(json.dumps({"data": "colin27", "dataset": info.dataset, "variant": "tiny"}))
    (own / "nnUNet_raw").mkdir()
    assert demo.check_work_folder(own, info, "tiny") == own.resolve()
    with pytest.raises(ValueError, match=r"holds a demo of colin27 \(tiny variant\); this run asks for colin27 "
                                         r"\(full variant\)"):
        demo.check_work_folder(own, info, "full")
    (tmp_path / "empty").mkdir()
    assert demo.check_work_folder(tmp_path / "empty", info, "tiny") == (tmp_path / "empty").resolve()
    assert demo.check_work_folder(tmp_path / "new", info, "tiny") == (tmp_path / "new").resolve()
    assert not (tmp_path / "new").exists()


def test_nnunets_commands_are_found_beside_the_interpreter_without_path(tmp_path):
    beside = Path(sys.executable).parent
    for command in demo.NNUNET_COMMANDS:
        assert nnunet_command(command, {"PATH": ""}) == str(beside / command)
        assert nnunet_command(command, {"PATH": str(tmp_path)}) == str(beside / command)
    with pytest.raises(FileNotFoundError, match=r"nnUNetv2_nothing is not on PATH nor next to .*; install nnunetv2"):
        nnunet_command("nnUNetv2_nothing", {"PATH": ""})
    with pytest.raises(FileNotFoundError, match="nnUNetv2_nothing is not on PATH"):
        run_logged(["nnUNetv2_nothing", "-h"], {"PATH": "/nonexistent"}, echo=lambda s: None)


def test_run_logged_runs_a_command_that_is_only_beside_the_interpreter(tmp_path):
    said = []
    run_logged(["nnUNetv2_plan_and_preprocess", "-h"], {"PATH": "", "nnUNet_raw": str(tmp_path)}, echo=said.append)
    assert said == ["$ nnUNetv2_plan_and_preprocess -h"]


def test_sigterm_to_the_demo_stops_nnunets_command_and_says_interrupted(tmp_path):
    """SIGTERM during the demo's planning: the stand-in nnUNetv2_plan_and_preprocess is stopped with the demo (not
    left running as an orphan), and the demo says 'interrupted' and exits 130."""
    bin_dir, pid_file = tmp_path / "bin", tmp_path / "plan.pid"
    bin_dir.mkdir()
    for command in demo.NNUNET_COMMANDS:
        sleeping = command == "nnUNetv2_plan_and_preprocess"
        (bin_dir / command).write_text(SLEEPING_STAND_IN.format(pid_file=pid_file) if sleeping else "#!/bin/sh\n")
        (bin_dir / command).chmod(0o755)
    env = {**nnunet_env(), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done, alive = sigterm_while_child_runs(["demo", "--work", str(tmp_path / "w"), "--device", "cpu", "--variant",
                                            "tiny"], pid_file, env)
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert "nnunet-polydice demo: interrupted." in done.stderr
    assert not alive
