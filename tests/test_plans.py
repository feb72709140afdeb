"""The smaller CPU configuration added beside nnU-Net's own in a plans file, and ``nnunet-polydice add-config``
on plans written by nnU-Net's own ``nnUNetv2_plan_and_preprocess`` (checked with nnU-Net's ``PlansManager``)."""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from conftest import nnunet_env, run

from nnunet_polydice.experiments.workspace import prepare_embedded
from nnunet_polydice.integration.plans import (
    add_configuration,
    add_smaller_configuration,
    resolve_configuration,
    smaller_configuration,
)

DATASET = "Dataset731_Colin27HippoAmyg"


def _plans():
    arch = {"network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {"n_stages": 6, "features_per_stage": [32, 64, 128, 256, 512, 512],
                            "kernel_sizes": [[3, 3]] * 6, "strides": [[1, 1]] + [[2, 2]] * 5,
                            "n_conv_per_stage": [2] * 6, "n_conv_per_stage_decoder": [2] * 5, "conv_bias": True},
            "_kw_requires_import": []}
    return {"plans_name": "nnUNetPlans",
            "configurations": {"2d": {"data_identifier": "nnUNetPlans_2d", "batch_size": 2,
                                      "patch_size": [192, 160], "architecture": arch},
                               "3d_lowres": {"inherits_from": "2d"}}}


def test_smaller_configuration_inherits_and_shrinks():
    plans = _plans()
    config = smaller_configuration(plans, n_stages=5, base_features=8, max_features=64, batch_size=8, max_patch=96)
    kw = config["architecture"]["arch_kwargs"]
    assert config["inherits_from"] == "2d" and config["batch_size"] == 8
    assert kw["n_stages"] == 5 and kw["features_per_stage"] == [8, 16, 32, 64, 64]
    assert kw["strides"] == [[1, 1]] + [[2, 2]] * 4 and len(kw["kernel_sizes"]) == 5
    assert kw["n_conv_per_stage_decoder"] == [2] * 4
    assert config["patch_size"] == [96, 96]  # 192 -> 96, 160 -> 96 (multiples of the pooling 16)
    assert "data_identifier" not in config  # inherited: nnU-Net reuses the preprocessed data
    assert plans["configurations"]["2d"]["architecture"]["arch_kwargs"]["n_stages"] == 6  # base untouched


def test_patch_cap_rounds_down_to_the_pooling_and_keeps_smaller_patches():
    config = smaller_configuration(_plans(), n_stages=5, max_patch=100)
    assert config["patch_size"] == [96, 96]
    assert "patch_size" not in smaller_configuration(_plans(), n_stages=5, max_patch=512)


@pytest.mark.parametrize("edge, stages, smallest", [(7, 5, 16), (15, 5, 16), (1, 2, 2), (3, 3, 4)])
def test_a_patch_edge_below_the_pooling_is_refused_not_enlarged(edge, stages, smallest):
    with pytest.raises(ValueError, match=rf"a patch edge of at most {edge} cannot be met: a U-Net of {stages} stages "
                                         rf"pools axis 0 by {smallest} .*give an edge of {smallest} or more, or "
                                         r"fewer stages\."):
        smaller_configuration(_plans(), n_stages=stages, max_patch=edge)
    assert smaller_configuration(_plans(), n_stages=stages, max_patch=smallest)["patch_size"] == [smallest] * 2


@pytest.mark.parametrize("name", ["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres", "3D_FULLRES"])
def test_nnunets_own_configuration_names_are_refused(name, tmp_path):
    from nnunet_polydice.integration.plans import check_configuration_name

    with pytest.raises(ValueError, match=rf"--name '{name}' is one of nnU-Net's own configuration names"):
        check_configuration_name(name)
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(_plans(), indent=4))
    before = path.read_text()
    with pytest.raises(ValueError, match="one of nnU-Net's own configuration names"):
        add_smaller_configuration(path, name=name)
    assert path.read_text() == before
    assert check_configuration_name("3d_fullres_cpu") == "3d_fullres_cpu"


def test_configuration_names_are_short_ascii_folder_names(tmp_path):
    """A configuration's name is part of every results folder (<trainer>__<plans>__<configuration>, at most 255
    bytes): 48 characters at most; other scripts' letters and digits are refused. Nothing is written."""
    from nnunet_polydice.integration.plans import check_configuration_name

    assert check_configuration_name("c" * 48) == "c" * 48
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(_plans(), indent=4))
    before = path.read_text()
    for name in ("c" * 49, "c" * 300, "2d_\uff11", "d\u00e9mo"):
        with pytest.raises(ValueError, match=r"cannot name an nnU-Net configuration: use 1 to 48 ASCII"):
            add_smaller_configuration(path, name=name)
    assert path.read_text() == before


@pytest.fixture
def fake_plans(tmp_path, monkeypatch):
    """A user's nnU-Net folders with the plans of :func:`_plans` (patch 192 x 160, pooling up to 32)."""
    raw, pre = tmp_path / "raw" / "Dataset993_Plans", tmp_path / "pre" / "Dataset993_Plans"
    raw.mkdir(parents=True)
    pre.mkdir(parents=True)
    (pre / "nnUNetPlans.json").write_text(json.dumps(_plans(), indent=4))
    for key, value in (("nnUNet_raw", raw.parent), ("nnUNet_preprocessed", pre.parent),
                       ("nnUNet_results", tmp_path / "res")):
        monkeypatch.setenv(key, str(value))
    return pre / "nnUNetPlans.json"


def test_add_config_says_it_rounded_and_prints_cpu_sized_next_commands(fake_plans, capsys):
    from nnunet_polydice.cli import main
    from nnunet_polydice.experiments.demo import CPU_SCHEDULE

    assert main(["add-config", "993", "--patch-size", "100"]) == 0
    out = capsys.readouterr().out
    e, i = CPU_SCHEDULE
    assert "patch size [96, 96] (base [192, 160])" in out
    assert "--patch-size 100 was rounded down to a multiple of the pooling of each axis" in out
    assert f"--schedule {e}x{i} --device cpu" in out
    assert f"nnUNetv2_train Dataset993_Plans 2d_cpu 0 -tr nnUNetTrainerPolyDice_{e}ep{i}it -device cpu" in out
    assert main(["add-config", "993", "--name", "2d_b", "--patch-size", "64"]) == 0
    assert "rounded down" not in capsys.readouterr().out   # 64 is a multiple of the pooling 16: met exactly


@pytest.mark.parametrize("args, message", [
    (["--patch-size", "7"], "a patch edge of at most 7 cannot be met: a U-Net of 5 stages pools axis 0 by 16"),
    (["--patch-size", "15", "--stages", "5"], "a patch edge of at most 15 cannot be met"),
    (["--name", "3d_fullres"], "--name '3d_fullres' is one of nnU-Net's own configuration names"),
    (["--name", "3d_cascade_fullres"], "is one of nnU-Net's own configuration names"),
    (["--features", "99999999999"], "--features must be an integer from 1 to 4096 (got 99999999999)"),
    (["--batch-size", "1025"], "--batch-size must be keep or an integer from 1 to 1024 (got 1025)"),
    (["--patch-size", "-3"], "--patch-size must be keep or an integer from 1 to 4096"),
    (["--stages", "17"], "--stages must be an integer from 1 to 16"),
])
def test_add_config_refusals_before_the_plans_change(fake_plans, capsys, args, message):
    from nnunet_polydice.cli import main

    before = fake_plans.read_text()
    try:
        code = main(["add-config", "993", *args])
    except SystemExit as exit_:   # argparse's refusal of a value its type does not take
        code = exit_.code
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert fake_plans.read_text() == before and sorted(p.name for p in fake_plans.parent.iterdir()) == \
        ["nnUNetPlans.json"]


@pytest.mark.parametrize("kwargs, message", [
    ({"base": "3d_fullres"}, "base configuration '3d_fullres' is not in the plans"),
    ({"base": "3d_lowres", "n_stages": 7}, "n_stages must be between 2 and the base's 6"),  # inherited from 2d
    ({"n_stages": 7}, "n_stages must be between 2 and the base's 6"),
    ({"base_features": 64, "max_features": 32}, "base_features <= max_features"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
])
def test_bad_requests_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        smaller_configuration(_plans(), **kwargs)


def test_add_configuration_never_replaces_a_different_one(tmp_path):
    path = tmp_path / "nnUNetPlans.json"
    path.write_text(json.dumps(_plans()))
    config = smaller_configuration(_plans(), n_stages=4)
    assert add_configuration(path, "2d_cpu", config) is True
    assert json.loads(path.read_text())["configurations"]["2d_cpu"] == config
    assert add_configuration(path, "2d_cpu", config) is False  # identical: nothing to do
    before = path.read_text()
    with pytest.raises(FileExistsError, match="already has a configuration '2d_cpu'"):
        add_configuration(path, "2d_cpu", smaller_configuration(_plans(), n_stages=3))
    with pytest.raises(FileExistsError):
        add_configuration(path, "2d", config)
    assert path.read_text() == before


def test_an_inherited_base_is_resolved_as_nnunet_resolves_it():
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    plans = _plans()
    plans["configurations"]["3d_lowres"]["batch_size"] = 5  # a child value over the parent's 2
    assert resolve_configuration(plans, "3d_lowres") == PlansManager(plans).get_configuration("3d_lowres").configuration
    config = smaller_configuration(plans, base="3d_lowres", n_stages=3, base_features=4, max_features=8,
                                   batch_size=None, max_patch=64)
    assert config["inherits_from"] == "3d_lowres" and "batch_size" not in config
    assert config["patch_size"] == [64, 64]  # the parent's [192, 160], capped at 64 (a multiple of the pooling 4)
    plans["configurations"]["small"] = config
    got = PlansManager(plans).get_configuration("small")
    assert got.batch_size == 5 and got.data_identifier == "nnUNetPlans_2d"
    assert got.network_arch_init_kwargs["features_per_stage"] == [4, 8, 8]

    old = _plans()
    del old["configurations"]["2d"]["architecture"]
    with pytest.raises(ValueError, match="no 'architecture' entry"):
        smaller_configuration(old)
    plans["configurations"]["2d"]["inherits_from"] = "small"
    with pytest.raises(ValueError, match="in a circle"):
        resolve_configuration(plans, "small")


# ------------------------------------------------------------------------ add-config on nnU-Net's own plans

@pytest.fixture(scope="module")
def planned(tmp_path_factory):
    """The tiny Colin27/AAL cut planned and preprocessed (2d) by nnU-Net, as test_nnunet_integration's ``tiny``."""
    work = tmp_path_factory.mktemp("planned731")
    prepare_embedded(DATASET, work, variant="tiny", configuration=None, environ=nnunet_env(), echo=lambda *_: None)
    return work


@pytest.fixture
def user(planned, tmp_path):
    """A copy of the tiny Colin27/AAL cut (64 x 64 slices) planned and preprocessed (2d) by nnU-Net, as a user's
    own nnU-Net folders: (environment, plans file, its text)."""
    work = tmp_path / "user"
    shutil.copytree(planned, work)
    plans_file = work / "nnUNet_preprocessed" / DATASET / "nnUNetPlans.json"
    return nnunet_env(work), plans_file, plans_file.read_text()


def add_config(env, *args, check=True):
    """The installed ``nnunet-polydice add-config`` in a subprocess (nnU-Net reads its folders at import)."""
    tool = shutil.which("nnunet-polydice") or str(Path(sys.executable).parent / "nnunet-polydice")
    return run([tool, "add-config", *args], env, check=check)


def _inserted(before: str, after: str) -> str:
    """The text ``after`` has in one place more than ``before`` (failing unless it is one insertion)."""
    i = 0
    while i < len(before) and before[i] == after[i]:
        i += 1
    middle = after[i:len(after) - (len(before) - i)]
    assert after == before[:i] + middle + before[i:], "the rest of the file changed"
    return middle


@pytest.mark.e2e
def test_add_config_on_real_plans(user):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    env, plans_file, before = user
    out = add_config(env, "731").stdout  # by id, all defaults: the demo's 2d_cpu
    after = plans_file.read_text()
    # one insertion, the new entry as the last configuration, every other byte of nnU-Net's file kept
    assert json.loads("{" + _inserted(before, after).lstrip(",") + "}").keys() == {"2d_cpu"}
    assert list(json.loads(after)["configurations"]) == ["2d", "2d_cpu"]
    assert not [p.name for p in plans_file.parent.iterdir() if p.name.endswith(".tmp")]

    base = json.loads(before)["configurations"]["2d"]
    assert base["patch_size"] == [64, 64] and base["batch_size"] == 2  # nnU-Net's plan of the 64 x 64 slices
    cpu = PlansManager(str(plans_file)).get_configuration("2d_cpu")
    assert cpu.data_identifier == "nnUNetPlans_2d" == base["data_identifier"]  # the base's preprocessed data
    assert cpu.batch_size == 8
    assert cpu.patch_size == [64, 64]  # under the cap of 96: the base's
    kw = cpu.network_arch_init_kwargs
    assert kw["n_stages"] == 5 and kw["features_per_stage"] == [8, 16, 32, 64, 128]
    assert kw["strides"] == base["architecture"]["arch_kwargs"]["strides"]
    assert cpu.spacing == base["spacing"] and cpu.normalization_schemes == base["normalization_schemes"]
    assert f"{plans_file.parent / 'nnUNetPlans_2d'} without preprocessing again" in out
    assert f"nnunet-polydice sweep {DATASET} 2d_cpu " in out
    assert f"nnUNetv2_train {DATASET} 2d_cpu 0 -tr nnUNetTrainerPolyDice" in out

    again = add_config(env, DATASET)  # by name; identical: left as it is
    assert "nothing was changed" in again.stdout and plans_file.read_text() == after


@pytest.mark.e2e
def test_add_config_sizes_and_a_chain(user):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    env, plans_file, before = user
    add_config(env, "731", "--name", "2d_small", "--stages", "3", "--features", "4", "--max-features", "8",
               "--batch-size", "keep", "--patch-size", "42")
    add_config(env, "731", "--base", "2d_small", "--name", "2d_smaller", "--stages", "2", "--patch-size", "keep")
    manager = PlansManager(str(plans_file))
    small, smaller = manager.get_configuration("2d_small"), manager.get_configuration("2d_smaller")
    assert small.batch_size == 2  # keep: the base's
    assert small.patch_size == [40, 40]  # 42 rounded down to a multiple of the pooling 2 * 2 = 4
    assert small.network_arch_init_kwargs["features_per_stage"] == [4, 8, 8]
    assert smaller.patch_size == [40, 40] and smaller.batch_size == 8  # inherited from 2d_small; the default 8
    assert smaller.network_arch_init_kwargs["features_per_stage"] == [8, 16]
    assert smaller.data_identifier == "nnUNetPlans_2d"
    assert {k: v for k, v in json.loads(plans_file.read_text()).items() if k != "configurations"} == \
        {k: v for k, v in json.loads(before).items() if k != "configurations"}


@pytest.mark.e2e
@pytest.mark.parametrize("args, message", [
    (["--name", "2d"], "--name '2d' is one of nnU-Net's own configuration names"),
    (["--base", "3d_fullres"], "--base '3d_fullres' is not a configuration of nnUNetPlans.json; the available "
                               "ones are: 2d."),
    (["--stages", "6"], "--stages 6 is out of range: the base configuration '2d' has 5 stages; choose 2 to 5."),
    (["--stages", "0"], "argument --stages: --stages must be an integer from 1 to 16 (got 0)."),
    (["--batch-size", "none"], "--batch-size must be keep or an integer from 1 to 1024 (got 'none')."),
    (["--features", "16", "--max-features", "8"], "--max-features 8 is below --features 16"),
    (["--name", "2d__x"], "--name '2d__x' cannot name an nnU-Net configuration"),
    (["--name", "c" * 300], f"--name {'c' * 40!r}... (300 characters) cannot name an nnU-Net configuration: use 1 to "
                            f"48 ASCII letters"),
    (["-p", "nnUNetResEncUNetMPlans"], "no plans file"),
])
def test_add_config_refusals_change_nothing(user, args, message):
    env, plans_file, before = user
    proc = add_config(env, "731", *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert plans_file.read_text() == before and proc.stdout == ""


@pytest.mark.e2e
def test_add_config_refuses_a_differing_configuration_of_the_same_name(user):
    env, plans_file, _ = user
    add_config(env, "731")
    after = plans_file.read_text()
    proc = add_config(env, "731", "--stages", "4", check=False)
    assert proc.returncode == 2 and "already has a configuration '2d_cpu'" in proc.stderr
    assert plans_file.read_text() == after
    proc = add_config(env, "1", check=False)
    assert proc.returncode == 2 and "cannot resolve dataset '1'" in proc.stderr


@pytest.mark.e2e
def test_a_file_in_another_layout_keeps_its_content(user):
    _, plans_file, before = user
    plans_file.write_text(json.dumps(json.loads(before)) + "\n")  # one line, as a user's own tool may write it
    added = add_smaller_configuration(plans_file)
    assert added.changed and not added.layout_kept
    written = json.loads(plans_file.read_text())
    assert written["configurations"].pop("2d_cpu") == added.config
    assert written == json.loads(before) and plans_file.read_text().endswith("}\n")


@pytest.mark.e2e
@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file")
def test_a_read_only_plans_file_is_refused(user):
    _, plans_file, before = user
    plans_file.chmod(0o444)
    with pytest.raises(PermissionError, match="cannot write the plans file"):
        add_smaller_configuration(plans_file)
    assert plans_file.read_text() == before
