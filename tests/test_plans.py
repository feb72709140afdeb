"""The smaller CPU configuration added beside nnU-Net's own in a plans file."""

import json

import pytest

from nnunet_polydice.integration.plans import add_configuration, smaller_configuration


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


@pytest.mark.parametrize("kwargs, message", [
    ({"base": "3d_fullres"}, "base configuration '3d_fullres' is not in the plans"),
    ({"base": "3d_lowres"}, "has no 'architecture' of its own"),
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
