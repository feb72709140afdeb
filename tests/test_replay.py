"""tune --replay (experiments/tune/replay.py): a tune replayed against a finished seeded grid.

Fast tests replay hand-made grids whose curves and validation Dice are chosen so that every decision (which run is
pruned at which epoch, what the race does, what is spent) is worked out by hand. The e2e test trains a small seeded
grid with ``sweep --seeds``, runs a live ``tune`` over the same space in an empty results folder, then ``tune
--replay`` on the grid, and asks for the same trials, values, pruning epochs, race and spent iterations.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import optuna
import pytest
from conftest import nnunet_env, run

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import tune
from nnunet_polydice.experiments.tune import record
from nnunet_polydice.integration.curve_file import curve_payload, write_curve

DATASET = "Dataset731_Colin27HippoAmyg"
K_CURVES = {  # setting's K -> (EMA pseudo Dice per epoch, validation Dice), the same for both seeds but the value
    "1": ([0.20, 0.30, 0.40], 0.50),
    "2": ([0.20, 0.05, 0.06], 0.20),  # below 0.1 from epoch 1 on: a threshold pruner stops it there
    "3": ([0.25, 0.35, 0.45], 0.60),
}


def _summary(dice: float) -> dict:
    case = {"reference_file": "/x/colin_y100.nii.gz", "prediction_file": "/p/colin_y100.nii.gz",
            "metrics": {"1": {"Dice": dice, "n_ref": 10, "n_pred": 10}, "2": {"Dice": dice, "n_ref": 5, "n_pred": 5}}}
    return {"metric_per_case": [case], "mean": {"1": {"Dice": dice}, "2": {"Dice": dice}},
            "foreground_mean": {"Dice": dice}}


def write_run(grid: Path, trainer: str, fold: str, ema: list, dice: float, *, curve: bool = True) -> Path:
    """One finished run as ship_grid.py keeps it: dataset.json, validation/summary.json, polydice_curve.json."""
    folder = grid / DATASET / f"{trainer}__nnUNetPlans__2d_cpu" / f"fold_{fold}"
    (folder / "validation").mkdir(parents=True, exist_ok=True)
    (folder.parent / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "hippocampus": 1,
                                                                       "amygdala": 2}}))
    (folder / "validation" / "summary.json").write_text(json.dumps(_summary(dice)))
    if curve:
        series = {"ema_fg_dice": ema, "mean_fg_dice": ema, "train_losses": [1.0] * len(ema),
                  "val_losses": [1.0] * len(ema), "dice_per_class_or_region": [[v, v] for v in ema]}
        write_curve(folder, curve_payload(f"{trainer}", lambda key: series[key]))
    return folder


@pytest.fixture
def grid(tmp_path):
    """3 settings (K 1 2 3, eps 0) x fold 0 x seeds 0 1, schedule 3x2; seed 1's validation Dice is seed 0's + 0.01."""
    grid = tmp_path / "grid"
    for k, (ema, dice) in K_CURVES.items():
        for seed in (0, 1):
            write_run(grid, f"nnUNetTrainerPolyDice_K{k}_eps0_3ep2it_s{seed}", "0", ema, dice + 0.01 * seed)
    return grid


def _setup(grid, tmp_path, **kw):
    options = dict(families=["nnUNetTrainerPolyDice"], K_values=["1", "2", "3"], epsilons=["0"], folds=["0"],
                   schedule="3x2", seeds=["0", "1"], pruner="threshold:lower=0.1,n_warmup_steps=0", budget="100%",
                   out_dir=tmp_path / "out", replay=grid, race=True)
    options.update(kw)
    return tune.prepare("731", "2d_cpu", **options)


def test_a_replay_feeds_the_pruner_the_recorded_curve_and_costs_what_a_live_tune_would(grid, tmp_path):
    setup = _setup(grid, tmp_path)
    assert setup.replay == grid and setup.results == grid and setup.storage == tune.REPLAY_STORAGE
    summary, study = tune.run_replay(setup, 20)
    trials = sorted(study.get_trials(), key=lambda t: t.number)
    by = {(t.user_attrs[record.TRAINER], tuple(record.race_keys(t))): t for t in trials}
    k2 = by[("nnUNetTrainerPolyDice_K2_eps0_3ep2it", ())]
    # K=2 reports 0.20 at step 0, then 0.05 < 0.1 at step 1: pruned there, after 2 epochs
    assert k2.state == optuna.trial.TrialState.PRUNED and k2.intermediate_values == {0: 0.20, 1: 0.05}
    assert k2.user_attrs[record.EPOCHS_TRAINED] == 2
    assert k2.user_attrs[record.REASON] == "pruned after epoch 1 of 0-2 of fold 0 seed 0 (value 0.0500)"
    for k in ("1", "3"):  # the others are trained to the end on seed 0, then raced on seed 1
        search = by[(f"nnUNetTrainerPolyDice_K{k}_eps0_3ep2it", ())]
        assert search.state == optuna.trial.TrialState.COMPLETE and search.value == K_CURVES[k][1]
        assert search.intermediate_values == dict(enumerate(K_CURVES[k][0]))
        assert search.user_attrs[record.EPOCHS_TRAINED] == 3
        raced = by[(f"nnUNetTrainerPolyDice_K{k}_eps0_3ep2it", ("0:s1",))]
        assert raced.value == pytest.approx(K_CURVES[k][1] + 0.01) and raced.user_attrs[record.EPOCHS_TRAINED] == 3
    assert len(trials) == 5
    # spent: (3 + 2 + 3) epochs in the search, 3 + 3 in the race, x 2 iterations; the grid is 3 x 2 x 3 x 2 = 36
    assert summary.iterations_spent == 28 and summary.full_grid_iterations == 36
    # the race: K3 leads K1 by exactly 0.10 on both seeds, so the paired interval is [0.10, 0.10]: told apart
    assert summary.look is not None and summary.look.leader == "nnUNetTrainerPolyDice_K3_eps0_3ep2it"
    lines = tune.verdict_lines(summary)
    assert lines[0].startswith("Winner: nnUNetTrainerPolyDice_K3_eps0_3ep2it  mean validation Dice 0.6050 over 2 "
                               "(fold, seed) runs"), lines
    assert "Race: stopped: the leader was told apart from every rival." in lines, lines


def test_no_winner_is_named_over_rivals_without_runs(grid, tmp_path):
    # a budget of 6 iterations: the first search trial (3 x 2) finishes, the other two are refused for the
    # budget. One setting with runs has no rival to be told apart from: the report names a leader, not a
    # winner, and says who was not yet tried
    setup = _setup(grid, tmp_path, budget="6", race=False, pruner="none")
    summary, study = tune.run_replay(setup, 20, sampler="grid")
    assert summary.look is not None and not summary.look.rivals
    others = sorted(set(s.trainer for s in setup.space.settings) - {summary.look.leader})
    assert sorted(summary.untried) == others
    lines = tune.verdict_lines(summary)
    assert not any(line.startswith("Winner") for line in lines), lines
    assert lines[0].startswith(f"Leader: {summary.look.leader}  mean validation Dice ") and \
        "no winner is named: no other setting has finished runs to be told apart from (not yet tried (no " \
        "finished run): " in lines[0], lines
    assert [r.status for r in summary.settings if r.setting.trainer == summary.look.leader] == ["leader"]


def test_a_replay_with_a_budget_stops_where_a_live_tune_would(grid, tmp_path):
    # 12 iterations: the first search trial reserves 3 x 2 = 6, the second 6: the third (6 more) is not started
    setup = _setup(grid, tmp_path, budget="12", race=False, pruner="none")
    summary, study = tune.run_replay(setup, 20, sampler="grid")
    states = [t.state.name for t in sorted(study.get_trials(), key=lambda t: t.number)]
    assert states[:2] == ["COMPLETE", "COMPLETE"] and summary.iterations_spent == 12
    refused = [t for t in study.get_trials() if record.fail_kind(t) is record.FailKind.BUDGET]
    assert len(refused) == 1 and refused[0].user_attrs[record.EPOCHS_TRAINED] == 0
    assert tune.failed_rows(summary, 0) == []  # not started for the budget is not a failure


def test_a_grid_without_a_run_is_refused_with_the_sweep_command(grid, tmp_path):
    folder = grid / DATASET / "nnUNetTrainerPolyDice_K3_eps0_3ep2it_s1__nnUNetPlans__2d_cpu" / "fold_0"
    (folder / "polydice_curve.json").unlink()
    setup = _setup(grid, tmp_path)
    with pytest.raises(ValueError) as err:
        tune.check_grid(setup)
    text = str(err.value)
    assert "lacks 1 of the 6 runs" in text and "no polydice_curve.json" in text
    assert text.endswith(f"nnUNet_results={grid} nnunet-polydice sweep Dataset731_Colin27HippoAmyg 2d_cpu --trainers "
                         f"nnUNetTrainerPolyDice_K3_eps0_3ep2it --folds 0 --seeds 1")
    with pytest.raises(ValueError, match="--replay needs --seeds: only seeded runs repeat"):
        tune.check_grid(_setup(grid, tmp_path, seeds=None, race=False))


def test_a_curve_of_another_schedule_is_refused(grid, tmp_path):
    write_run(grid, "nnUNetTrainerPolyDice_K1_eps0_3ep2it_s0", "0", [0.2, 0.3], 0.5)
    with pytest.raises(ValueError, match="holds 2 epochs, not the schedule's 3"):
        tune.check_grid(_setup(grid, tmp_path))


def test_the_label_signal_is_nnunets_ema_of_that_label(grid, tmp_path):
    # amygdala (label 2): dice_per_class_or_region entry 1, smoothed 0.9 old + 0.1 new, as a live trainer reports it
    setup = _setup(grid, tmp_path, label="amygdala", pruner="none", race=False)
    _, study = tune.run_replay(setup, 1, sampler="grid")
    (trial,) = study.get_trials()
    ema, dice = K_CURVES[trial.user_attrs[record.TRAINER].split("_K")[1][0]]
    expected = [ema[0]]
    for v in ema[1:]:
        expected.append(0.9 * expected[-1] + 0.1 * v)
    assert [trial.intermediate_values[e] for e in range(3)] == pytest.approx(expected, abs=0, rel=1e-15)
    assert trial.value == dice


@pytest.mark.parametrize("extra, message", [
    (["--workers", "2"], "--replay with --workers 2: a replay runs one worker"),
    (["--storage", "journal:///tmp/x.journal"], "--replay with --storage: a replay's study lives in a new storage"),
    (["--status"], "--replay with --status"),
])
def test_the_cli_refuses_replay_options_before_anything_is_written(grid, tmp_path, capsys, extra, message,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["tune", "731", "2d_cpu", "--K", "1", "2", "3", "--epsilon", "0", "--families",
                 "nnUNetTrainerPolyDice", "--schedule", "3x2", "--seeds", "0", "1", "--folds", "0", "--replay",
                 str(grid), *extra])
    assert code == 2 and message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_the_cli_replay_reports_as_a_replay_and_writes_only_its_out_folder(grid, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    snapshot = sorted((str(p), p.stat().st_mtime_ns) for p in grid.rglob("*"))
    code = main(["tune", "731", "2d_cpu", "--K", "1", "2", "3", "--epsilon", "0", "--families",
                 "nnUNetTrainerPolyDice", "--schedule", "3x2", "--seeds", "0", "1", "--folds", "0", "--pruner",
                 "threshold:lower=0.1,n_warmup_steps=0", "--budget", "100%", "--race", "--replay", str(grid)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"in a replay of {grid} (nothing is trained)" in out
    assert "Training iterations spent: 28 of a budget of 36" in out
    assert sorted((str(p), p.stat().st_mtime_ns) for p in grid.rglob("*")) == snapshot  # the grid is only read
    out_dir = tmp_path / "polydice_replay" / "2d_cpu_3ep2it_folds0"
    assert (out_dir / "tune.md").read_text().startswith("# Tuning (a replay of")


# --------------------------------------------------------------------------------------------- e2e: exactness

SPACE = ["--families", "nnUNetTrainerPolyDice", "--K", "1", "2", "3", "inf", "--epsilon", "0", "--folds", "0",
         "--schedule", "3x2"]
SEEDS = ["--seeds", "0", "1"]


def _tool() -> str:
    import shutil
    import sys

    return shutil.which("nnunet-polydice") or str(Path(sys.executable).parent / "nnunet-polydice")


def _live_trials(results: Path, study: str):
    path = results / DATASET / "polydice_tune.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return sorted(optuna.load_study(study_name=study, storage=storage).get_trials(), key=lambda t: t.number)


def _threshold_pruning_half(grid_results: Path) -> str:
    """A threshold pruner that prunes the two seed-0 runs whose lowest EMA from epoch 1 on is lowest (and not the
    other two): its lower bound lies between the second and third of those minima."""
    from nnunet_polydice.integration.curve_file import read_curve

    lows = []
    for folder in sorted(grid_results.glob(f"{DATASET}/*_s0__nnUNetPlans__2d_cpu/fold_0")):
        series = [v for v in read_curve(folder)["ema_fg_dice"][1:] if not math.isnan(v)]
        lows.append(min(series))
    lows.sort()
    assert len(lows) == 4 and lows[1] < lows[2], lows  # the tiny set's curves must tell them apart
    return f"threshold:lower={(lows[1] + lows[2]) / 2!r},n_warmup_steps=1"


@pytest.mark.e2e
def test_a_replay_is_the_live_tune_decision_for_decision(tmp_path):
    """4 settings x fold 0 x seeds 0 1 of the tiny set, 3 epochs x 2 iterations: the grid by sweep --seeds, a live
    tune (a pruner that prunes two of the four, racing on) in an empty results folder, and its replay on the grid."""
    from nnunet_polydice.experiments.workspace import prepare_embedded

    work = tmp_path / "work"
    env = nnunet_env(work)
    prepare_embedded(DATASET, work, variant="tiny", echo=lambda s: None, environ=env)
    tool = _tool()
    run([tool, "sweep", "731", "2d_cpu", *SPACE, *SEEDS, "--baselines", "--device", "cpu"], env, timeout=1800)
    pruner = _threshold_pruning_half(work / "nnUNet_results")

    live_results = tmp_path / "live_results"
    live_env = {**env, "nnUNet_results": str(live_results)}
    common = ["tune", "731", "2d_cpu", *SPACE, *SEEDS, "--pruner", pruner, "--budget", "100%", "--study", "X",
              "--sampler", "tpe", "--trials", "4", "--seed", "3", "--race"]
    live = run([tool, *common, "--device", "cpu"], live_env, timeout=1800).stdout
    replay_out = tmp_path / "replay_out"
    replayed = run([tool, *common, "--replay", str(work / "nnUNet_results"), "--out", str(replay_out)], env,
                   timeout=600).stdout

    trials = _live_trials(live_results, "X")
    assert sum(t.state.name == "PRUNED" for t in trials) >= 1, live
    assert any(record.is_racing(t) for t in trials), live  # the race ran
    live_out = live_results / DATASET / "polydice_tune" / "X"
    for name in ("tune.csv", "tune_settings.csv"):  # trial by trial: setting, state, value, cost, runs, verdicts
        live_rows, replay_rows = (list(csv.DictReader((f / name).open())) for f in (live_out, replay_out))
        assert [_decisions(r) for r in replay_rows] == [_decisions(r) for r in live_rows], name
        for a, b in zip(replay_rows, live_rows):
            if a.get("last_value"):
                assert float(a["last_value"]) == pytest.approx(float(b["last_value"]), rel=PSEUDO_DICE_REL)
    spent = [line for line in live.splitlines() if line.startswith("Training iterations spent")]
    assert spent and spent[0] in replayed
    verdict = [line for line in live.splitlines() if line.startswith(("Winner: ", "No single winner: "))]
    assert verdict and verdict[0] in replayed

    # every trial, decision for decision, in the replay's own study (this process) and in the live journal
    setup = tune.prepare("731", "2d_cpu", families=["nnUNetTrainerPolyDice"], K_values=["1", "2", "3", "inf"],
                         epsilons=["0"], folds=["0"], schedule="3x2", seeds=["0", "1"], pruner=pruner, budget="100%",
                         study="X", out_dir=tmp_path / "again", replay=work / "nnUNet_results",
                         race=True)
    _, study = tune.run_replay(setup, 4, sampler="tpe", seed=3)
    again = sorted(study.get_trials(), key=lambda t: t.number)
    assert [_trial_decisions(t) for t in again] == [_trial_decisions(t) for t in trials]
    for a, b in zip(again, trials):
        assert a.value == b.value  # validation Dice: bit for bit
        assert a.intermediate_values == pytest.approx(b.intermediate_values, rel=PSEUDO_DICE_REL)
    assert os.path.isdir(live_out) and not (work / "nnUNet_results" / DATASET / "polydice_tune").exists()


#: Two CPU trainings of one seeded name have bit-identical losses, weights and validation Dice, but nnU-Net's
#: validation pseudo Dice (argmax over random validation patches) was seen to differ in one voxel now and then
#: (0.032757 vs 0.032763, one epoch of 36): the replay reports its grid's recorded run, the live tune its own.
PSEUDO_DICE_REL = 1e-3


def _decisions(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "last_value"}


def _trial_decisions(t):
    return (t.number, t.params, t.state, t.value, sorted(t.intermediate_values), record.race_keys(t),
            t.user_attrs.get(record.EPOCHS_TRAINED), t.user_attrs.get(record.REASON))


def test_a_fold_without_a_class_is_valued_over_the_classes_it_has():
    """nnU-Net's foreground mean is NaN when a class is in no reference and no prediction (a run right not to paint
    an absent structure): the fold's value is then the mean over the classes with a Dice; else nnU-Net's value."""
    right = {"foreground_mean": {"Dice": math.nan}, "mean": {"1": {"Dice": 0.25}, "2": {"Dice": math.nan}}}
    assert tune.fold_value(right) == 0.25
    both = {"foreground_mean": {"Dice": 0.3}, "mean": {"1": {"Dice": 0.4}, "2": {"Dice": 0.2}}}
    assert tune.fold_value(both) == 0.3
    with pytest.raises(ValueError, match="validation Dice of 2 is NaN"):
        tune.fold_value(right, "2")
    with pytest.raises(ValueError, match="of every foreground class is NaN"):
        tune.fold_value({"foreground_mean": {"Dice": None}, "mean": {"1": {"Dice": None}}})
