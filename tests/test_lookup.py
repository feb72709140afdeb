"""integration/lookup.py: trainer names asked of nnU-Net's own lookup (recursive_find_trainer_class_by_name), and
the trainers module's __getattr__ that nnU-Net's lookup reaches through hasattr()."""

import importlib.util
import os
import re

import pytest

from nnunet_polydice.integration.locate import trainers_folder, with_trainers_folder
from nnunet_polydice.integration.lookup import (
    TrainerNotFound,
    check_trainers,
    closest_name,
    find_trainer_class,
    nnunet_trainer_names,
)
from nnunet_polydice.integration.naming import InvalidTrainerName

TWO_FIVE = "\u0662ep\u0665it"   # Arabic-Indic digits 2 and 5


@pytest.fixture(scope="module")
def trainers_module():
    """nnunet_polydice_trainers.py loaded from the trainers folder, under a name of its own."""
    spec = importlib.util.spec_from_file_location("trainers_under_test",
                                                  trainers_folder() / "nnunet_polydice_trainers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def env(monkeypatch):
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    return with_trainers_folder()


def test_the_trainers_module_resolves_only_the_canonical_ascii_spelling(trainers_module):
    assert trainers_module.nnUNetTrainer_2ep5it.__name__ == "nnUNetTrainer_2ep5it"
    assert trainers_module.nnUNetTrainerPolyDice_2ep5it.polyloss_spec.epochs == 2
    for name in ("nnUNetTrainer\n", "nnUNetTrainer_" + TWO_FIVE, "nnUNetTrainer_2ep5it\n"):
        assert not hasattr(trainers_module, name)       # not ours: nnU-Net's lookup goes on, then says not found
    for name in ("nnUNetTrainerPolyDice\n", "nnUNetTrainerPolyDice_" + TWO_FIVE, "nnUNetTrainerPolyDice_K2_eps1\n"):
        with pytest.raises(InvalidTrainerName, match="only ASCII letters, digits and single '_' may be used"):
            getattr(trainers_module, name)               # ours, misspelt: the sentence, through nnU-Net's hasattr()


def test_nnunet_finds_ours_and_its_own_in_the_sweep_environment(env):
    assert find_trainer_class("nnUNetTrainerPolyDice_K3_eps0p5", env).polyloss_spec.K == 3
    assert find_trainer_class("nnUNetTrainer_2ep5it", env).polyloss_spec.iterations == 5
    assert find_trainer_class("nnUNetTrainerDiceLoss", env).__module__.startswith("nnunetv2.")
    assert check_trainers(["nnUNetTrainer", "nnUNetTrainerPolyDice"], env) == ["nnUNetTrainer", "nnUNetTrainerPolyDice"]


def test_names_that_differ_only_in_their_seed_share_one_sentence(env):
    with pytest.raises(TrainerNotFound) as err:
        check_trainers(["nnUNetTrainerBogus_s0", "nnUNetTrainerBogus_s1", "nnUNetTrainer_s0", "nnUNetTrainerBogus2"],
                       env)
    text = str(err.value)
    assert text.startswith("2 trainers would fail: trainer 'nnUNetTrainerBogus_s0' is not found")
    assert text.count("is not found") == 2 and "(The same holds for 'nnUNetTrainerBogus_s1'.)" in text
    assert "trainer 'nnUNetTrainerBogus2' is not found" in text


def test_without_our_folder_nnunet_does_not_find_ours(monkeypatch):
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    with pytest.raises(TrainerNotFound, match=r"'nnUNetTrainerPolyDice_K3_eps0p5' is not found .*"
                                              r"nnUNet_extTrainer=''"):
        find_trainer_class("nnUNetTrainerPolyDice_K3_eps0p5", {})
    assert "nnUNet_extTrainer" not in os.environ   # the lookup's environment is put back


@pytest.mark.parametrize("name, guess", [
    ("nnUNetTrainerPolydice", "nnUNetTrainerPolyDice"),
    ("nnUNetTrainer\n", "nnUNetTrainer"),
    ("nnUNetTrainer_" + TWO_FIVE, "nnUNetTrainer_2ep5it"),
    ("nnUNetTrainerPolydice_2ep5it", "nnUNetTrainerPolyDice_2ep5it"),
    ("nnUNetTrainerDiceLos", "nnUNetTrainerDiceLoss"),
])
def test_a_name_nnunet_does_not_find_gets_the_closest_known_name(env, name, guess):
    with pytest.raises(TrainerNotFound, match=rf"trainer {re.escape(repr(name))} is not found by nnU-Net's lookup "
                                              rf".*Did you mean '{guess}'\?"):
        find_trainer_class(name, env)


def test_our_misspelt_names_keep_their_sentence_through_nnunets_lookup(env):
    with pytest.raises(InvalidTrainerName, match="is not a valid nnUNetTrainerPolyDice name"):
        find_trainer_class("nnUNetTrainerPolyDice\n", env)


def test_a_name_that_is_no_trainer_class(env):
    # nnU-Net's trainer modules import torch; hasattr(module, 'torch') is true, but it is no trainer
    with pytest.raises(TrainerNotFound, match=r"'torch' names no nnU-Net trainer class"):
        find_trainer_class("torch", env)


def test_suggestions_come_from_our_catalogue_and_nnunets_trainer_classes():
    names = nnunet_trainer_names()
    assert "nnUNetTrainer" in names and "nnUNetTrainerDiceLoss" in names and "nnUNetTrainerPolyDice" not in names
    assert closest_name("nnUNetTrainerPolyDice_K2_eps1 ", ["nnUNetTrainerPolyDice_K2_eps1"]) == \
        "nnUNetTrainerPolyDice_K2_eps1"
    assert closest_name("somethingelse", ["nnUNetTrainer"]) is None


def test_nnunetv2_train_answers_a_malformed_name_with_its_sentence_alone(tmp_path):
    """Through nnU-Net's own command: our sentence is all of stderr (no traceback through its lookup), status 2.
    (One name here, since nnU-Net's start-up takes 8 s; every malformed name reaches the same line of the trainers
    module, and the next test checks it for another name without nnU-Net's command.)"""
    import subprocess

    name, says = "nnUNetTrainerPolyDice_2ep3it_s01", "spells its seed in a non-canonical way"

    from nnunet_polydice.integration.locate import nnunet_command

    env = with_trainers_folder({k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")})
    env.update({k: str(tmp_path / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")},
               PYTHONWARNINGS="ignore")
    proc = subprocess.run([nnunet_command("nnUNetv2_train"), "1", "2d", "0", "-tr", name, "-device", "cpu"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"nnUNetv2_train: error: Trainer name {name!r} ") and says in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr + proc.stdout


def test_a_malformed_name_still_raises_outside_nnunets_commands(trainers_module):
    """In a library call (here: pytest's process), the name's error is raised as before, not an exit."""
    from nnunet_polydice.integration.lookup import exit_in_nnunet_command

    with pytest.raises(InvalidTrainerName, match="two seed suffixes"):
        trainers_module.nnUNetTrainer_s1_s1  # noqa: B018 (the lookup nnU-Net makes)
    exit_in_nnunet_command(ValueError("x"), program="/usr/bin/python")  # returns
    with pytest.raises(SystemExit) as stop:
        exit_in_nnunet_command(ValueError("x"), program="/venv/bin/nnUNetv2_predict")
    assert stop.value.code == 2


def test_nnunets_trainer_names_read_from_its_source_are_those_an_import_of_every_module_finds():
    """The independent answer: import each module of nnU-Net's trainer package (as nnU-Net's lookup may) and keep
    the subclasses of nnUNetTrainer; the source reading must name the same classes, without those imports."""
    import importlib
    import pkgutil

    import nnunetv2.training.nnUNetTrainer as package
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    imported = set()
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        try:
            module = importlib.import_module(info.name)
        except ImportError:
            continue
        imported.update(k for k, v in vars(module).items() if isinstance(v, type) and issubclass(v, nnUNetTrainer))
    assert set(nnunet_trainer_names()) == imported and len(imported) > 50


@pytest.mark.parametrize("argv", [["list", "nnUNetTrainer"], ["list", "nnUNetTrainerBogus"]])
def test_commands_that_look_up_nnunets_trainers_exit(argv):
    """A ``list NAME`` that printed its row and never exited was reported: it must end (the timeout is a hang guard
    only) with its status. (``doctor NAME``, which runs nnU-Net's own lookup, runs in a subprocess in
    tests/test_install.py.)"""
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(sys.executable).parent / "nnunet-polydice"
    proc = subprocess.run([str(tool), *argv], capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
                          env=with_trainers_folder(dict(os.environ)))  # as the start-up hook sets it
    assert proc.returncode == (2 if "Bogus" in argv[1] else 0), proc.stderr
