"""``nnunet-polydice noise`` (nnunet_polydice.experiments.noise): the seed-to-seed sd and the minimal detectable
difference of a planned grid, from validation summaries written by nnU-Net's own ``save_summary_json``, with
numbers worked out by hand in the comments; every bad input refused before anything is trained or written."""

import json

import pytest
from conftest import planned_folders, replacing
from test_compare import DS, trainer_dir, write_summary

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import noise, sweep

# hippocampus, amygdala Dice of nnUNetTrainer_3ep2it_s<seed> on fold 0 and 1
RUNS = {(0, 0): (0.5, 0.2), (0, 1): (0.7, 0.2), (1, 0): (0.6, 0.3), (1, 1): (0.6, 0.5)}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    raw, pre, res = planned_folders(tmp_path, monkeypatch, DS)
    for (fold, seed), (h, a) in RUNS.items():
        d = trainer_dir(res, f"nnUNetTrainer_3ep2it_s{seed}")
        write_summary(d / f"fold_{fold}" / "validation" / "summary.json", {1: h, 2: a})
    return tmp_path


def _dirs(res, folds=(0, 1), seeds=(0, 1)):
    return {(str(f), s): res / DS / f"nnUNetTrainer_3ep2it_s{s}__nnUNetPlans__2d" / f"fold_{f}"
            for f in folds for s in seeds}


def test_seed_sd_is_pooled_within_folds_and_the_mdd_follows_the_formula(tree):
    rep = noise.report("nnUNetTrainer_3ep2it", _dirs(tree / "res"), folds=2, seeds=2)
    # hippocampus: fold 0 (0.5, 0.7) mean 0.6, fold 1 (0.6, 0.6): sd = sqrt((0.01 + 0.01 + 0 + 0) / 2) = 0.1;
    # the fold difference does not count
    assert rep.seed_sd("1") == pytest.approx(0.1)
    # amygdala: fold 0 (0.2, 0.2), fold 1 (0.3, 0.5) mean 0.4: sqrt((0 + 0 + 0.01 + 0.01) / 2) = 0.1
    assert rep.seed_sd("2") == pytest.approx(0.1)
    # MDD = (z_0.975 + z_0.8) * sqrt(2) * 0.1 / sqrt(2 x 2) = 2.80159 * 0.141421 / 2
    assert rep.mdd("1", 0.0) == pytest.approx(0.198102, abs=1e-6)
    # 8 settings: level 0.05 / 8, z_(1 - 0.003125) + z_0.8 = 3.575990; planned 5 folds x 3 seeds, rho 0.5:
    # 3.575990 * sqrt(2 * 0.5) * 0.1 / sqrt(15)
    big = noise.report("nnUNetTrainer_3ep2it", _dirs(tree / "res"), folds=5, seeds=3, settings=8, correlation=0.5)
    assert big.mdd("1", 0.5) == pytest.approx(0.0923317, abs=1e-6)
    assert big.mdd("1", 0.0) == pytest.approx(3.575990 * 2 ** 0.5 * 0.1 / 15 ** 0.5, abs=1e-6)


def test_an_unfinished_run_is_listed_not_counted(tree):
    dirs = _dirs(tree / "res", seeds=(0, 1, 2))  # seed 2 was never trained
    rep = noise.report("nnUNetTrainer_3ep2it", dirs, folds=2, seeds=3)
    assert sorted(rep.missing) == [("0", 2, "fresh: not trained"), ("1", 2, "fresh: not trained")]
    assert rep.seed_sd("1") == pytest.approx(0.1)
    text = "\n".join(rep.lines({"1": "hippocampus"}))
    assert "fold 0 seed 2: no result (fresh: not trained)" in text and "hippocampus" in text


def test_one_seed_has_no_sd_and_few_instances_are_said(tree):
    rep = noise.report("nnUNetTrainer_3ep2it", _dirs(tree / "res", seeds=(0,)), folds=2, seeds=1)
    assert rep.seed_sd("1") is None and rep.mdd("1", 0.0) is None
    text = "\n".join(rep.lines())
    assert "hippocampus" not in text and "1: no seed sd (a seed sd needs two seeds with a value on at least one " \
        "fold)." in text and "smallest two-sided p is 2/2^2" in text


def test_a_class_absent_from_every_validation_reference_has_no_noise_value(tmp_path):
    # the amygdala is in no validation reference; the runs paint 5 false-positive voxels (nnU-Net's Dice 0) or
    # nothing (NaN): neither is a Dice of the amygdala, so no mean and no seed sd, and the report says why
    dirs = {}
    for (fold, seed), (h, fp) in {("0", 0): (0.5, 5), ("0", 1): (0.7, 0)}.items():
        d = trainer_dir(tmp_path, f"nnUNetTrainer_s{seed}") / f"fold_{fold}"
        write_summary(d / "validation" / "summary.json", {1: h, 2: 0.0 if fp else float("nan")}, absent={2: fp})
        dirs[(fold, seed)] = d
    rep = noise.report("nnUNetTrainer", dirs, folds=1, seeds=2)
    assert rep.seed_sd("1") == pytest.approx(0.1 * 2 ** 0.5) and rep.seed_sd("2") is None
    text = "\n".join(rep.lines({"1": "hippocampus", "2": "amygdala"}))
    assert "amygdala: absent from the validation reference of fold 0 seed 0, fold 0 seed 1; left out there" in text
    assert "amygdala: no seed sd (absent from the validation reference of every run" in text
    row = next(line for line in text.splitlines() if line.startswith("amygdala "))
    assert row.split()[1:] == ["-", "-", "-"]


def test_runs_that_all_score_the_same_measure_no_noise(tmp_path):
    # the reference predicted nothing in every run: Dice 0 everywhere, sd 0; an MDD of 0 would claim any
    # difference detectable, so there is none, and the report says why
    dirs = {}
    for seed in (0, 1):
        d = trainer_dir(tmp_path, f"nnUNetTrainer_s{seed}") / "fold_0"
        write_summary(d / "validation" / "summary.json", {1: 0.0, 2: 0.0})
        dirs[("0", seed)] = d
    rep = noise.report("nnUNetTrainer", dirs, folds=1, seeds=2)
    assert rep.seed_sd("1") is None and rep.mdd("1", 0.0) is None
    assert "hippocampus: no seed sd (every run scored 0.0000: no noise could be measured)." in \
        "\n".join(rep.lines({"1": "hippocampus"}))


def test_a_damaged_summary_is_a_missing_run(tree):
    path = tree / "res" / DS / "nnUNetTrainer_3ep2it_s1__nnUNetPlans__2d" / "fold_1" / "validation" / "summary.json"
    data = json.loads(path.read_text())
    data["mean"]["1"]["Dice"] = 5.0
    path.write_text(json.dumps(data))
    rep = noise.report("nnUNetTrainer_3ep2it", _dirs(tree / "res"), folds=2, seeds=2)
    assert [(f, s) for f, s, _ in rep.missing] == [("1", 1)]
    assert "mean/1/Dice = 5 is outside [0, 1]" in rep.missing[0][2]
    assert ("1", 1) not in rep.values["1"]


def test_cli_reports_from_finished_runs_without_training(tree, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(sweep, "run_child", lambda *a, **k: started.append(a) or 0)
    assert main(["noise", "42", "2d", "--folds", "0", "1", "--seeds", "0", "1", "--schedule", "3x2",
                 "--no-train", "--settings", "8"]) == 0
    out = capsys.readouterr().out
    assert not started
    row = next(line for line in out.splitlines() if line.startswith("hippocampus"))
    assert row.split()[1:] == ["0.6000", "0.1000", "0.2529"]  # mean, seed sd, MDD at 0.05/8 (2x2 instances)
    assert "nnUNetTrainer_3ep2it_s0 fold 0: skip" in out


@pytest.mark.parametrize("extra, message", [
    (["--seeds", "1", "1"], "seed 1 more than once"),
    (["--seeds", "-1"], "from 0 to 4294967295"),
    (["--correlation", "1"], "--correlation must be a number above -1 and below 1"),
    (["--correlation", "nan"], "--correlation must be"),
    (["--correlation", "abc"], "--correlation must be"),
    (["--settings", "0"], "--settings must be an integer from 1"),
    (["--plan-folds", "x"], "--plan-folds must be an integer"),
    (["--plan-seeds", "0"], "--plan-seeds must be an integer from 1"),
    (["--metric", "dice"], "nnU-Net's per-class metrics"),
    (["--reference", "nnUNetTrainr"], "Did you mean 'nnUNetTrainer"),
    (["--reference", "nnUNetTrainer_s3"], "already has the seed _s3"),
    (["--folds", "7"], "fold"),
    (["--schedule", "0x2"], "--schedule"),
])
def test_bad_input_is_refused_before_anything_trains(tree, capsys, monkeypatch, extra, message):
    started = []
    monkeypatch.setattr(sweep, "run_child", lambda *a, **k: started.append(a) or 0)
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    assert main(replacing(["noise", "42", "2d", "--folds", "0", "--device", "cpu"], extra)) == 2
    assert message in capsys.readouterr().err
    assert not started and sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
