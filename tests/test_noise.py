"""``nnunet-polydice noise`` (nnunet_polydice.experiments.noise): the seed-to-seed sd and the minimal detectable
difference of a planned grid, from validation summaries written by nnU-Net's own ``save_summary_json``, with
numbers worked out by hand in the comments; every bad input refused before anything is trained or written."""

import json

import pytest
from test_results import DS, trainer_dir, write_summary

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import ablation, noise

# hippocampus, amygdala Dice of nnUNetTrainer_3ep2it_s<seed> on fold 0 and 1
RUNS = {(0, 0): (0.5, 0.2), (0, 1): (0.7, 0.2), (1, 0): (0.6, 0.3), (1, 1): (0.6, 0.5)}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    (raw / DS).mkdir(parents=True)
    (pre / DS).mkdir(parents=True)
    (pre / DS / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}}}))
    for k, v in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
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
    assert "A seed sd needs two seeds" in text and "smallest two-sided p is 2/2^2" in text


def test_cli_reports_from_finished_runs_without_training(tree, capsys, monkeypatch):
    started = []
    monkeypatch.setattr(ablation.subprocess, "call", lambda *a, **k: started.append(a) or 0)
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
    monkeypatch.setattr(ablation.subprocess, "call", lambda *a, **k: started.append(a) or 0)
    before = sorted(p.relative_to(tree) for p in tree.rglob("*"))
    assert main(["noise", "42", "2d", "--folds", "0", "--device", "cpu", *extra]) == 2
    assert message in capsys.readouterr().err
    assert not started and sorted(p.relative_to(tree) for p in tree.rglob("*")) == before
