"""``nnunet-polydice tune``: the space <-> trainer-name mapping, the pruning hook's decisions against real Optuna
studies, the checks of its inputs, its summary arithmetic, and one end-to-end run with real nnUNetv2_train
subprocesses on the tiny embedded data (two workers on one journal-file study, a forced pruner, a reused run,
a continued study, the Slurm script).

Expected values are worked out by hand in the comments; nothing of nnU-Net, torch, Optuna or the file
system is replaced.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import nnunet_env, replacing, run
from optuna.trial import TrialState, create_trial

from nnunet_polydice.cli import main as cli_main
from nnunet_polydice.experiments import racing, slurm, tune
from nnunet_polydice.experiments.instance import Instance
from nnunet_polydice.experiments.runs import PRUNED_MARKER
from nnunet_polydice.experiments.tune import record, takeover
from nnunet_polydice.integration import pruning
from nnunet_polydice.integration.locate import trainers_folder
from nnunet_polydice.integration.naming import parse_trainer_name

optuna.logging.set_verbosity(optuna.logging.ERROR)


# ------------------------------------------------------------------------------------- epsilon words

@pytest.mark.parametrize("text, expected", [
    ("0:2:0.5", [0.0, 0.5, 1.0, 1.5, 2.0]),
    ("0.25:1:0.25", [0.25, 0.5, 0.75, 1.0]),
    ("1:2.2:0.5", [1.0, 1.5, 2.0]),  # 2.5 would pass STOP
    ("-1:-1:0.25", [-1.0]),
])
def test_epsilon_range_by_hand(text, expected):
    assert tune.epsilon_range(text) == expected


def test_epsilon_words_mix_numbers_and_ranges():
    assert tune.parse_epsilons(["-0.5", "0:1:0.5", "2"]) == [-0.5, 0.0, 0.5, 1.0, 2.0]


@pytest.mark.parametrize("words, message", [
    (["0:2:0.1"], "the step must be at least 0.25"),
    (["2:0:0.5"], "is empty: START (2) is larger than STOP (0)"),
    (["a:b:c"], "a range is START:STOP:STEP"),
    (["0:1"], "a range is START:STOP:STEP"),
    (["half"], "is not a finite number or a START:STOP:STEP range"),
    (["nan"], "'nan' is not a finite number"),
    (["-inf"], "'-inf' is not a finite number"),
    (["0:nan:0.5"], "START, STOP and STEP must be finite numbers (no nan or inf)"),
    (["0:Infinity:0.5"], "START, STOP and STEP must be finite numbers"),
    (["-inf:0:0.5"], "START, STOP and STEP must be finite numbers"),
    (["0:1e9:0.25"], "'0:1e9:0.25' has 4000000001 values; a range may have at most 1000"),
    (["-1000:1000:1"], "has 2001 values; a range may have at most 1000"),
])
def test_epsilon_words_refused(words, message):
    with pytest.raises(ValueError, match="--epsilon") as err:
        tune.parse_epsilons(words)
    assert message in str(err.value)


# ------------------------------------------------------------------------------------- the space

def test_space_tokens_and_canonical_names():
    space = tune.build_space(["nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE"], ["1", "inf", 1], [0.0, 0.5, 0.5],
                             (30, 40))
    # "1" and 1 are one K; 0.5 twice is one epsilon: 2 families x 2 K x 2 epsilon
    assert space.families == ("nnUNetTrainerPolyDice", "nnUNetTrainerPolyDiceCE")
    assert space.K == ("1", "inf") and space.epsilon == ("0", "0p5")
    assert space.size == 8
    assert space.grid() == {"family": list(space.families), "K": ["1", "inf"], "epsilon": ["0", "0p5"]}
    assert [s.trainer for s in space.settings] == [
        "nnUNetTrainerPolyDice_K1_eps0_30ep40it", "nnUNetTrainerPolyDice_K1_eps0p5_30ep40it",
        "nnUNetTrainerPolyDice_Kinf_eps0_30ep40it", "nnUNetTrainerPolyDice_Kinf_eps0p5_30ep40it",
        "nnUNetTrainerPolyDiceCE_K1_eps0_30ep40it", "nnUNetTrainerPolyDiceCE_K1_eps0p5_30ep40it",
        "nnUNetTrainerPolyDiceCE_Kinf_eps0_30ep40it", "nnUNetTrainerPolyDiceCE_Kinf_eps0p5_30ep40it"]
    for s in space.settings:  # the name's own parse gives the tokens back
        spec = parse_trainer_name(s.trainer)
        assert (spec.family.name, spec.epochs, spec.iterations) == (s.family, 30, 40)
        assert s.trainer.endswith(f"_K{s.K}_eps{s.epsilon}_30ep40it")
        assert space.by_trainer(s.trainer) == s
    assert space.setting("nnUNetTrainerPolyDiceCE", "inf", "0p5").label == "K=inf eps=0.5"


def test_space_without_schedule_and_poly_tversky_defaults():
    space = tune.build_space(["nnUNetTrainerPolyTversky"], [2], [1.0, -0.5])
    # the Poly Tversky names carry the default alpha 0.3 and beta 0.7
    assert [s.trainer for s in space.settings] == ["nnUNetTrainerPolyTversky_K2_eps1_a0p3_b0p7",
                                                  "nnUNetTrainerPolyTversky_K2_epsm0p5_a0p3_b0p7"]
    assert space.epsilon == ("1", "m0p5") and space.epochs is None


@pytest.mark.parametrize("families, K, eps, message", [
    (["nnUNetTrainerTversky"], [2], [1.0], "is not a Poly family"),
    (["nnUNetTrainerPolyDice"], [0], [1.0], "K"),
    (["nnUNetTrainerPolyDice"], [2], [-2.0], "epsilon"),
    (["nnUNetTrainerPolyDice"], [], [1.0], "the search space is empty: --K has no values"),
    ([], [2], [1.0], "the search space is empty: --families has no values"),
])
def test_space_refusals(families, K, eps, message):
    with pytest.raises(ValueError, match=message):
        tune.build_space(families, K, eps)


def test_trials_suggest_exactly_the_grid_through_the_queue():
    """An in-memory study: enqueue_grid + the space's suggest give every name once, in the seeded order."""
    space = tune.build_space(["nnUNetTrainerPolyDice"], ["1", "2", "inf"], [0.0, 1.0], (2, 2))
    study = optuna.create_study(direction="maximize")
    queued = tune.enqueue_grid(study, space, seed=3)
    assert sorted(s.trainer for s in queued) == sorted(s.trainer for s in space.settings)
    assert tune.enqueue_grid(study, space, seed=3) == []  # already waiting: not twice
    names = []
    study.optimize(lambda t: names.append(space.suggest(t).trainer) or 0.0, n_trials=space.size)
    assert names == [s.trainer for s in queued]
    assert tune.untried_settings(study, space) == []
    # the categorical distributions are over the tokens
    dists = study.trials[0].distributions
    assert dists["K"].choices == ("1", "2", "inf") and dists["epsilon"].choices == ("0", "1")


def test_sampler_choice_and_worker_shares():
    # grid when the trials cover the untried settings, or are at most TPE's 10 random start-up trials
    assert tune.choose_sampler("auto", 5, 5) == "grid" and tune.choose_sampler("auto", 4, 8) == "grid"
    assert tune.choose_sampler("auto", 10, 40) == "grid" and tune.choose_sampler("auto", 11, 40) == "tpe"
    assert tune.choose_sampler("random", 9, 5) == "random"
    assert "no more than TPE's 10 random start-up trials" in tune.sampler_reason("auto", "grid", 4, 8)
    assert "brute force" in tune.sampler_reason("auto", "grid", 8, 8)
    assert tune.sampler_reason("auto", "tpe", 20, 40).startswith("tpe: 20 trials over 40 untried settings")
    with pytest.raises(ValueError, match="--sampler 'bayes'"):
        tune.choose_sampler("bayes", 1, 1)
    assert tune.worker_shares(10, 4) == [3, 3, 2, 2] and tune.worker_shares(1, 3) == [1, 0, 0]
    with pytest.raises(ValueError, match="--workers must be at least 1"):
        tune.worker_shares(3, 0)


# ------------------------------------------------------------------------------------- pruners

def test_pruner_specs():
    name, kwargs = pruning.parse_pruner("median:n_warmup_steps=3, n_startup_trials=2")
    assert (name, kwargs) == ("median", {"n_warmup_steps": 3, "n_startup_trials": 2})
    assert isinstance(pruning.make_pruner("none"), optuna.pruners.NopPruner)
    threshold = pruning.make_pruner("threshold:lower=1.0,n_warmup_steps=0")
    assert isinstance(threshold, optuna.pruners.ThresholdPruner)
    hb = pruning.make_pruner("hyperband:min_resource=1,reduction_factor=3", max_resource=20)
    assert hb._max_resource == 20  # set from folds x epochs, so that every process makes the same brackets
    assert tune.median_pruner(30) == "median:n_startup_trials=3,n_warmup_steps=15,n_min_trials=3"
    assert tune.median_pruner(3) == "median:n_startup_trials=3,n_warmup_steps=1,n_min_trials=3"
    assert tune.median_pruner(1) == "median:n_startup_trials=3,n_warmup_steps=1,n_min_trials=3"
    with pytest.raises(ValueError, match="unknown pruner 'asha'; allowed: median, percentile, sha"):
        pruning.make_pruner("asha")
    with pytest.raises(ValueError, match="MedianPruner takes no warmup; its keywords: n_startup_trials"):
        pruning.make_pruner("median:warmup=3")
    with pytest.raises(ValueError, match="'n_warmup_steps' is not keyword=value"):
        pruning.make_pruner("median:n_warmup_steps")
    # a keyword given twice, counts that are not integers, numbers that are not finite: refused, never taken
    for spec, says in (("median:n_warmup_steps=1,n_warmup_steps=2", "n_warmup_steps is given twice"),
                       ("median:n_startup_trials=1e400", "n_startup_trials takes a finite number (got '1e400')"),
                       ("median:n_startup_trials=2.5", "n_startup_trials counts trials or steps and takes an integer"),
                       ("median:n_startup_trials=" + "9" * 5000, "takes an integer of at most 18 digits"),
                       ("threshold:lower=nan", "lower takes a finite number (got 'nan')"),
                       ("threshold:upper=inf", "upper takes a finite number (got 'inf')"),
                       ("percentile:percentile=-inf", "percentile takes a finite number")):
        with pytest.raises(ValueError, match=re.escape(says)):
            pruning.make_pruner(spec)
    assert isinstance(pruning.make_pruner("sha:min_resource=auto"), optuna.pruners.SuccessiveHalvingPruner)


# ------------------------------------------------------------------------------------- the pruning hook

def _sqlite_study(tmp_path, name="s"):
    url = f"sqlite:///{tmp_path / 'study.sqlite3'}"
    study = optuna.create_study(storage=pruning.open_storage(url), study_name=name, direction="maximize")
    return url, study


def _link(url, study, trial, pruner, **kw):
    return pruning.TrialLink(storage=url, study=study.study_name, trial_id=trial._trial_id, trial_number=trial.number,
                             pruner=pruner, **kw)


def test_reporter_forced_threshold_pruner(tmp_path):
    """ThresholdPruner(lower=1.0, n_warmup_steps=1): a Dice below 1 is pruned from step 1 on, not at step 0."""
    url, study = _sqlite_study(tmp_path)
    trial = study.ask()
    reporter = pruning.TrialReporter(_link(url, study, trial, "threshold:lower=1.0,n_warmup_steps=1"))
    assert reporter.running()
    assert reporter.report(None, 0) is False  # no value this epoch: nothing reported
    assert reporter.report(0.75, 0) is False  # step 0 < warm-up
    assert reporter.report(0.80, 1) is True
    assert study.trials[0].intermediate_values == {0: 0.75, 1: 0.80}


def test_reporter_steps_of_a_later_fold(tmp_path):
    """Fold index 1 of 5-epoch folds reports at 5 + epoch."""
    url, study = _sqlite_study(tmp_path)
    trial = study.ask()
    reporter = pruning.TrialReporter(_link(url, study, trial, "none", step_offset=5))
    assert reporter.report(0.5, 0) is False and reporter.report(0.6, 2) is False
    assert study.trials[0].intermediate_values == {5: 0.5, 7: 0.6}


def test_reporter_median_pruner_decisions(tmp_path):
    """MedianPruner(n_startup_trials=2, n_warmup_steps=1) against two finished trials whose values at step 1
    are 0.4 and 0.6 (median 0.5): a trial whose best so far is 0.45 is pruned at step 1, one at 0.55 is not,
    and at step 0 (warm-up) neither is."""
    url, study = _sqlite_study(tmp_path)
    for curve, final in (({0: 0.1, 1: 0.4}, 0.4), ({0: 0.2, 1: 0.6}, 0.6)):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=final, intermediate_values=curve,
                                     params={}, distributions={}))
    spec = "median:n_startup_trials=2,n_warmup_steps=1"
    low, high = study.ask(), study.ask()
    low_r, high_r = (pruning.TrialReporter(_link(url, study, t, spec)) for t in (low, high))
    assert low_r.report(0.30, 0) is False and high_r.report(0.30, 0) is False
    assert low_r.report(0.45, 1) is True
    assert high_r.report(0.55, 1) is False


def test_reporter_sees_a_trial_that_is_no_longer_running(tmp_path):
    url, study = _sqlite_study(tmp_path)
    trial = study.ask()
    reporter = pruning.TrialReporter(_link(url, study, trial, "none"))
    study.tell(trial, state=TrialState.FAIL)
    assert reporter.running() is False


def test_reporter_in_another_process_through_journal_storage(tmp_path):
    """The trainer's side runs in nnUNetv2_train's process: a second Python process reports through the link
    in its environment to a journal-file study, which this process then reads."""
    url = f"journal:///{tmp_path / 'tune.log'}".replace("////", "///")
    assert pruning.storage_kind(url) == "journal" and pruning.journal_path(url) == tmp_path / "tune.log"
    study = optuna.create_study(storage=pruning.open_storage(url), study_name="j", direction="maximize")
    trial = study.ask()
    link = _link(url, study, trial, "threshold:lower=0.9,n_warmup_steps=0", step_offset=3)
    code = ("from nnunet_polydice.integration.pruning import TrialLink, TrialReporter\n"
            "r = TrialReporter(TrialLink.from_env())\n"
            "print(r.report(0.25, 0), r.report(0.95, 1))\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, pruning.TRIAL_ENV: link.to_env()},
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["True", "False"]  # 0.25 < lower 0.9: prune; 0.95: keep
    assert optuna.load_study(study_name="j", storage=pruning.open_storage(url)).trials[0].intermediate_values == {
        3: 0.25, 4: 0.95}


def test_heartbeat_fails_a_silent_trial_and_enqueues_it_again(tmp_path):
    """The RDB storage tune's workers open: a running trial without a heartbeat for the grace period is failed
    by the next worker's fail_stale_trials and its parameters are enqueued once more (1 s / 2 s here instead of
    30 s / 180 s)."""
    storage = pruning.open_storage(f"sqlite:///{tmp_path / 'hb.sqlite3'}", heartbeat=True, grace=2, interval=1,
                                   on_stale=takeover.stale_callback())
    study = optuna.create_study(storage=storage, study_name="hb", direction="maximize")
    trial = study.ask()
    trial.suggest_categorical("K", ["1", "inf"])
    storage.record_heartbeat(trial._trial_id)  # what the killed worker's heartbeat thread last wrote
    import time

    time.sleep(3)
    optuna.storages.fail_stale_trials(study)
    states = [(t.state, t.params or t.system_attrs.get("fixed_params")) for t in study.get_trials()]
    assert states[0] == (TrialState.FAIL, trial.params)
    assert states[1][0] == TrialState.WAITING and study.get_trials()[1].params == trial.params


def test_journal_storage_fails_trials_of_dead_local_workers(tmp_path):
    """Journal storage has no heartbeat: a worker starting on the same host fails a running trial whose worker
    process is gone and enqueues its setting again; a trial of a live process is left alone."""
    space = tune.build_space(["nnUNetTrainerPolyDice"], ["1", "2"], [0.0], (2, 2))
    study = optuna.create_study(storage=pruning.open_storage(f"journal:///{tmp_path}/t.log".replace("////", "///")),
                                study_name="j", direction="maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):
        trial = study.ask()
        space.suggest(trial)
        trial.set_user_attr("host", takeover.socket.gethostname())
        trial.set_user_attr("pid", pid)
    assert takeover.fail_dead_local_trials(study) == [0]
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.RUNNING, TrialState.WAITING]
    assert trials[2].params == trials[0].params and trials[2].user_attrs["resumes"] == 0


def test_trial_link_environment():
    link = pruning.TrialLink(storage="sqlite:///x.db", study="s", trial_id=4, trial_number=3, pruner="none",
                             step_offset=10, label_key="2")
    assert pruning.TrialLink.from_env({pruning.TRIAL_ENV: link.to_env()}) == link
    assert pruning.TrialLink.from_env({}) is None and pruning.TrialLink.from_env({pruning.TRIAL_ENV: " "}) is None
    with pytest.raises(ValueError, match="NNUNET_POLYDICE_TRIAL is set but is not a trial link"):
        pruning.TrialLink.from_env({pruning.TRIAL_ENV: '{"study": 1}'})


def test_signal_from_nnunets_own_logger(tmp_path):
    """nnU-Net's logger computes ema_fg_dice itself; the per-label signal is the same average of one entry."""
    from nnunetv2.training.logging.nnunet_logger import MetaLogger

    logger = MetaLogger(str(tmp_path), False)
    for epoch, (mean, per_class) in enumerate([(0.3, [0.2, 0.4]), (0.7, [0.6, 0.8])]):
        logger.log("mean_fg_dice", mean, epoch)
        logger.log("dice_per_class_or_region", per_class, epoch)
    # 0.9 * 0.3 + 0.1 * 0.7 = 0.34; label at index 1: 0.9 * 0.4 + 0.1 * 0.8 = 0.44
    assert pruning.epoch_signal(logger.get_value, None) == pytest.approx(0.34)
    assert pruning.epoch_signal(logger.get_value, 1) == pytest.approx(0.44)


def test_label_index_from_nnunets_label_manager():
    """The mixin finds a label's entry of dice_per_class_or_region through nnU-Net's own LabelManager."""
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    labels = {"background": 0, "hippocampus": 1, "amygdala": 2}
    lm = LabelManager(labels, regions_class_order=None)
    assert pruning.signal_index(tune.resolve_label("amygdala", {"labels": labels}), lm.foreground_labels) == 1
    regions = {"background": 0, "whole": [1, 2], "core": [2]}
    lm = LabelManager(regions, regions_class_order=[1, 2])
    assert lm.has_regions
    assert pruning.signal_index(tune.resolve_label("core", {"labels": regions}), lm.foreground_regions) == 1


def test_moving_average_and_label_index():
    assert pruning.ema([0.5]) == 0.5
    assert pruning.ema([math.nan, 0.5, 1.0]) == pytest.approx(0.55)  # NaN (class absent) skipped
    assert pruning.ema([math.nan]) is None
    assert pruning.signal_index("2", [1, 2]) == 1
    assert pruning.signal_index("(1, 2)", [(1, 2, 3), (1, 2)]) == 1
    with pytest.raises(ValueError, match=r"label key '3' is not among this training's classes \['1', '2'\]"):
        pruning.signal_index("3", [1, 2])


# ------------------------------------------------------------------------------------- a fold's value, locks

SUMMARY = {"foreground_mean": {"Dice": 0.5}, "mean": {"1": {"Dice": 0.7}, "2": {"Dice": 0.3}, "3": {"Dice": math.nan}},
           "metric_per_case": []}


def test_fold_value():
    assert tune.fold_value(SUMMARY) == 0.5 and tune.fold_value(SUMMARY, "2") == 0.3
    with pytest.raises(ValueError, match="is NaN"):
        tune.fold_value(SUMMARY, "3")
    with pytest.raises(ValueError, match="has no Dice for 4"):
        tune.fold_value(SUMMARY, "4")


def test_fold_lock(tmp_path):
    folder = tmp_path / "fold_0"
    me = {"host": "h", "pid": os.getpid(), "study_uid": "u", "trial": 1, "trial_id": 2}
    assert tune.acquire_lock(folder, me) is None
    assert tune.acquire_lock(folder, {**me, "trial": 9}) == me  # held: the holder comes back
    running = {2: True}
    # alive process on this host, trial running: not stale; the same on another host: not stale
    assert tune.lock_is_stale(me, "u", running.get, host="h") is None
    assert tune.lock_is_stale(me, "u", running.get, host="other") is None
    # the trial ended in this study: stale, wherever its process is
    assert "trial 1 is no longer running" in tune.lock_is_stale(me, "u", {2: False}.get, host="other")
    # a lock of another study is judged by its process only
    assert tune.lock_is_stale(me, "v", {2: False}.get, host="other") is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert "is gone" in tune.lock_is_stale({**me, "pid": dead.pid}, "u", running.get, host="h")
    assert tune.lock_is_stale({}, "u", running.get) == "the lock file is empty or unreadable"


# ------------------------------------------------------------------------------------- input checks

@pytest.fixture()
def fake_results(tmp_path, monkeypatch):
    """nnU-Net's three folders with one planned dataset (plans with configuration '2d', 3 splits, 2 labels)."""
    raw, pre, res = (tmp_path / n for n in ("raw", "pre", "res"))
    ds = pre / "Dataset991_Tune"
    for folder in (raw / "Dataset991_Tune", ds, res):
        folder.mkdir(parents=True)
    (ds / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}}}))
    (ds / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "hippocampus": 1, "amygdala": 2}}))
    (ds / "splits_final.json").write_text(json.dumps([{"train": [], "val": []}] * 3))
    for key, value in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(key, str(value))
    return tmp_path


def test_prepare_defaults(fake_results):
    setup = tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["2"], epsilons=["0:1:0.5"],
                         schedule="30x40", label="amygdala")
    res = fake_results / "res"
    assert setup.dataset == "Dataset991_Tune" and setup.folds == ("0",) and setup.label_key == "2"
    assert setup.study == "2d_30ep40it_folds0_amygdala"
    assert setup.storage == f"journal://{res.resolve() / 'Dataset991_Tune' / 'polydice_tune.journal'}"
    assert setup.out_dir == res.resolve() / "Dataset991_Tune" / "polydice_tune" / setup.study
    assert setup.pruner == "none" == tune.DEFAULT_PRUNER
    # 3 settings x 1 fold x 1 run x 30 x 40 = 3600 iterations; without seeds the default budget is all of it
    assert (setup.grid_iterations, setup.budget, setup.seeds, setup.race) == (3600, 3600, (None,), False)
    assert (setup.epochs, setup.iterations, setup.max_resource) == (30, 40, 30)
    assert [s.trainer for s in setup.space.settings] == [
        "nnUNetTrainerPolyDice_K2_eps0_30ep40it", "nnUNetTrainerPolyDice_K2_eps0p5_30ep40it",
        "nnUNetTrainerPolyDice_K2_eps1_30ep40it"]
    plain = tune.prepare("Dataset991_Tune", "2d", folds=["2", "0"], plans="nnUNetPlans", lookup=False)
    assert plain.study == "2d_nnunet_folds2-0" and (plain.epochs, plain.iterations) == (1000, 250)
    assert plain.space.size == 2 * 4 * 5  # the documented ready grid of both Poly Dice families


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dataset": "992"}, ValueError, "cannot resolve dataset '992'"),
    ({"configuration": "3d_fullres"}, ValueError, "configuration '3d_fullres' is not in nnUNetPlans.json; it has 2d"),
    ({"plans": "OtherPlans"}, FileNotFoundError, "OtherPlans.json does not exist"),
    ({"folds": ["0", "3"]}, ValueError, "--folds 3: .*splits_final.json has 3 folds .* --allow-random-split"),
    ({"label": "thalamus"}, ValueError, "--label 'thalamus' is not a label of this dataset; its labels: "
                                        "hippocampus, amygdala"),
    ({"pruner": "median:patience=2"}, ValueError, "MedianPruner takes no patience"),
    ({"storage": "not a url"}, ValueError, "--storage 'not a url' is not a storage URL"),
    ({"epsilons": ["1:0:0.5"]}, ValueError, "is empty"),
    ({"schedule": "30"}, ValueError, "the schedule must be <epochs>x<iterations>"),
])
def test_prepare_refusals(fake_results, kwargs, error, message):
    args = {"dataset": "991", "configuration": "2d", **kwargs}
    with pytest.raises(error, match=message):
        tune.prepare(args.pop("dataset"), args.pop("configuration"), **args)


def test_prepare_refuses_an_output_folder_that_is_a_file(fake_results):
    blocker = fake_results / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--out .* is a file, not a folder"):
        tune.prepare("991", "2d", out_dir=blocker)


def test_storage_urls_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="names no file"):
        pruning.storage_kind("journal://")
    with pytest.raises(ValueError, match="cannot be opened: the folder .* does not exist"):
        pruning.open_storage(f"journal:///{tmp_path}/missing/tune.log")
    with pytest.raises(ValueError, match="cannot be opened"):
        pruning.open_storage(f"sqlite:///{tmp_path}/missing/tune.sqlite3")
    with pytest.raises(ValueError, match="cannot be opened"):
        pruning.open_storage("nosuchdialect://host/db")


def test_a_study_keeps_its_definition(fake_results, capsys):
    setup = tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["2"], epsilons=["1"],
                         schedule="2x2", lookup=False)
    study, uid = tune.open_study(setup)
    assert study.user_attrs[record.DEFINITION]["space"] == {"family": ["nnUNetTrainerPolyDice"], "K": ["2"],
                                                               "epsilon": ["1"]}
    assert tune.open_study(setup)[1] == uid and len(uid) == 32  # reopened: the same study
    wider = tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["2", "3"], epsilons=["1"],
                         schedule="2x2", lookup=False)
    with pytest.raises(ValueError, match="study '2d_2ep2it_folds0' was created for another space"):
        tune.open_study(wider)
    # --status reads the study's own space, whatever space options it is given
    assert tune.setup_of_study(wider, study).space == setup.space
    assert cli_main(["tune", "991", "2d", "--schedule", "2x2", "--study", "absent", "--status"]) == 2
    assert "has no study 'absent'; studies there: 2d_2ep2it_folds0" in capsys.readouterr().err


def test_summary_arithmetic(fake_results):
    """Three trials of a 2-setting space on 2 folds of 10 epochs x 5 iterations: a completed one that trained
    20 epochs, a pruned one that trained 3, a reused one (0 epochs). Spent: 23 x 5 = 115 iterations; the full
    grid: 2 settings x 2 folds x 10 epochs x 5 iterations = 200."""
    setup = tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["1", "2"], epsilons=["0"],
                         schedule="10x5", folds=["0", "1"], lookup=False, budget="100%")
    study = optuna.create_study(direction="maximize")
    dist = {k: optuna.distributions.CategoricalDistribution(v) for k, v in setup.space.grid().items()}
    k1, k2 = (s.params for s in setup.space.settings)
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.6, params=k1, distributions=dist,
                                 intermediate_values={0: 0.2, 19: 0.5}, user_attrs={"epochs_trained": 20}))
    study.add_trial(create_trial(state=TrialState.PRUNED, params=k2, distributions=dist,
                                 intermediate_values={0: 0.1, 2: 0.15},
                                 user_attrs={"epochs_trained": 3, "reason": "pruned after epoch 3/10 of fold 0"}))
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.7, params=k2, distributions=dist,
                                 user_attrs={"epochs_trained": 0, "reused_folds": ["0", "1"]}))
    summary = tune.summarize(study, setup, tune.LiveRunner(setup, study, ""))
    assert (summary.iterations_spent, summary.full_grid_iterations) == (115, 200)
    assert summary.best.number == 2 and summary.best.trainer == "nnUNetTrainerPolyDice_K2_eps0_10ep5it"
    assert tune.cost_lines(summary)[0].startswith(
        "training iterations spent: 115 of a budget of 200 (100% of the grid)")
    assert "57.5% of the full grid's 200" in tune.cost_lines(summary)[0]
    assert tune.cost_lines(summary)[1] == ("reused finished runs (0 iterations): trial 2 "
                                       "nnUNetTrainerPolyDice_K2_eps0_10ep5it fold 0 1")
    assert tune.verdict_lines(summary)[0] == \
        "Best: nnUNetTrainerPolyDice_K2_eps0_10ep5it  validation Dice 0.7000 (trial 2)"
    assert tune.verdict_lines(summary)[1].startswith("Noise: none known. Every setting has one run per fold")
    rows = list(csv.DictReader(tune.trials_csv(summary).splitlines()))
    assert [(r["trial"], r["state"], r["value"], r["last_step"], r["epochs_trained"]) for r in rows] == [
        ("0", "COMPLETE", "0.6", "19", "20"), ("1", "PRUNED", "", "2", "3"), ("2", "COMPLETE", "0.7", "", "0")]
    assert tune.next_commands(setup, summary.best.trainer) == [
        "nnunet-polydice sweep Dataset991_Tune 2d --trainers nnUNetTrainerPolyDice_K2_eps0_10ep5it --folds 0 1 2 3 4",
        "nnUNetv2_predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d Dataset991_Tune -c 2d -tr "
        "nnUNetTrainerPolyDice_K2_eps0_10ep5it -p nnUNetPlans -f 0 1 2 3 4"]
    written = tune.write_outputs(summary)
    assert [p.name for p in written] == ["tune.md", "tune.csv", "tune_curves.png", "tune_settings.csv"]
    assert written[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (setup.out_dir / "tune.csv").unlink()
    (setup.out_dir / "tune.csv").write_text("the user's own file")
    tune.write_outputs(summary)  # the manifest lists tune.csv: it is ours to rewrite
    other = setup.out_dir / ".polydice_tune.json"
    other.unlink()
    with pytest.raises(FileExistsError, match="tune.md there was not written by nnunet-polydice tune"):
        tune.write_outputs(summary)


def test_sqlite_is_refused_for_several_workers():
    tune.check_storage_for_workers("sqlite:///t.db", 1)
    tune.check_storage_for_workers("journal:///t.log", 4, slurm=True)
    tune.check_storage_for_workers("postgresql://u@h/db", 4)
    with pytest.raises(ValueError, match="--storage sqlite:///t.db with --workers 2: SQLite lets two workers take "
                                         "the same queued trial"):
        tune.check_storage_for_workers("sqlite:///t.db", 2)
    with pytest.raises(ValueError, match="with --slurm"):
        tune.check_storage_for_workers("sqlite:///t.db", 1, slurm=True)


def test_slurm_script_text_and_refusals(fake_results, tmp_path, monkeypatch):
    """The script names the interpreter by absolute path, exports nnU-Net's folders (absolute, also when given
    relative) and writes each task's output to the study's logs folder, which is created with it."""
    monkeypatch.chdir(fake_results)
    monkeypatch.setenv("nnUNet_raw", "raw")  # relative: written as an absolute path
    setup = tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["2", "inf"],
                         epsilons=["0", "0.5"], schedule="30x40", folds=["1"], storage=f"journal://{tmp_path}/t.log",
                         study="s1", pruner="none", lookup=False)
    env = {**os.environ, "nnUNet_extTrainer": ""}
    text = slurm.tune_script(setup, [2, 1], sampler="grid", seed=7, environ=env)
    lines = text.splitlines()
    logs = setup.out_dir / "logs"
    assert lines[:4] == ["#!/bin/bash", "#SBATCH --job-name=polydice-tune-s1", "#SBATCH --array=0-1",
                         f"#SBATCH --output={logs}/%x_%A_%a.out"]
    assert "TRIALS=(2 1)" in lines
    assert lines[-1] == (
        f"exec {sys.executable} -m nnunet_polydice.cli tune Dataset991_Tune 2d --families nnUNetTrainerPolyDice "
        f"--K 2 inf --epsilon 0.0 0.5 --folds 1 -p nnUNetPlans --storage journal://{tmp_path}/t.log --study s1 "
        "--pruner none --sampler grid --schedule 30x40 --budget 4800 --seed 7 "
        "--trials \"${TRIALS[$SLURM_ARRAY_TASK_ID]}\" --worker-index \"$SLURM_ARRAY_TASK_ID\"")
    assert f"export nnUNet_raw={fake_results / 'raw'}" in lines
    assert f"export nnUNet_preprocessed={fake_results / 'pre'}" in lines
    assert f"export nnUNet_results={fake_results / 'res'}" in lines
    assert f"export nnUNet_extTrainer={trainers_folder()}" in lines
    path = slurm.write_script(tmp_path / "tune.sbatch", text, slurm.tune_log_folder(setup))
    assert path.read_text() == text and os.access(path, os.X_OK) and logs.is_dir()
    with pytest.raises(FileExistsError, match="--slurm .*tune.sbatch exists; nnunet-polydice never overwrites"):
        slurm.write_script(path, "other", logs)
    with pytest.raises(ValueError, match="--slurm .*: the folder .*missing does not exist"):
        slurm.write_script(tmp_path / "missing" / "t.sbatch", text, logs)
    monkeypatch.delenv("nnUNet_results")
    with pytest.raises(ValueError, match="^--slurm: nnUNet_results is not set; the script exports"):
        slurm.tune_script(setup, [1], sampler="grid", seed=7)


# ------------------------------------------------------------------------------------- end to end

COLIN = "Dataset731_Colin27HippoAmyg"
TIMEOUT = 600
SPACE = ["--families", "nnUNetTrainerPolyDice", "--K", "1", "2", "3", "--epsilon", "0", "--schedule", "2x2",
         "--device", "cpu"]
FORCED = "threshold:lower=1.0,n_warmup_steps=0"  # a Dice is below 1: every trained trial is pruned at step 0


def _tool() -> str:
    found = shutil.which("nnunet-polydice") or str(Path(sys.executable).parent / "nnunet-polydice")
    assert Path(found).is_file(), "nnunet-polydice is not installed (pip install .)"
    return found


def _trials(work: Path, study: str = "2d_cpu_2ep2it_folds0"):
    """The study's trials through Optuna's API, from the default storage (the journal file)."""
    path = work / "nnUNet_results" / COLIN / "polydice_tune.journal"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    return optuna.load_study(study_name=study, storage=storage).get_trials()


def _fold(work: Path, trainer: str) -> Path:
    return work / "nnUNet_results" / COLIN / f"{trainer}__nnUNetPlans__2d_cpu" / "fold_0"


def _foreground_dice(fold: Path) -> float:
    return json.loads((fold / "validation" / "summary.json").read_text())["foreground_mean"]["Dice"]


@pytest.mark.e2e
def test_tune_end_to_end(tmp_path):
    """1. study A: one trial trains to the end (pruner none); 2. study B, two workers, forced pruner, 2 of its 3
    settings: the two trials run at once, one per worker; 3. the same command again takes the third, still
    queued: together the three are the run of study A reused and two pruned after their first epoch;
    4. --status from another process; 5. a Slurm script."""
    from nnunet_polydice.experiments.workspace import prepare_embedded

    work = tmp_path / "work"
    env = nnunet_env(work)
    prepare_embedded(COLIN, work, variant="tiny", echo=lambda s: None, environ=env)
    tool = _tool()
    base = [tool, "tune", "731", "2d_cpu", *SPACE, "--budget", "100%"]

    # 1. one trial, trained to the end: its value is nnU-Net's validation Dice
    out = run([*base, "--trials", "1", "--pruner", "none"], env, timeout=TIMEOUT).stdout
    (first,) = _trials(work)
    trained = first.user_attrs["trainer"]
    assert first.state == TrialState.COMPLETE and first.user_attrs["epochs_trained"] == 2
    assert first.value == _foreground_dice(_fold(work, trained))
    assert sorted(first.intermediate_values) == [0, 1]
    assert f"Best: {trained}  validation Dice {first.value:.4f} (trial 0)" in out
    assert "Training iterations spent: 4 of a budget of 12" in out
    assert "of the full grid's 12 (3 settings x 1 folds x 2 epochs" in out
    final_mtime = (_fold(work, trained) / "checkpoint_final.pth").stat().st_mtime_ns

    # 2. study B on two workers with a forced pruner: the grid is enqueued, two trials run at once
    second = [*base, "--study", "B", "--trials", "2", "--workers", "2", "--sampler", "grid", "--pruner", FORCED]
    out = run(second, env, timeout=TIMEOUT).stdout
    assert "3 settings, 3 untried, 0 trials so far; running 2 trials on 2 worker(s)" in out
    assert "Sampler grid: asked for with --sampler." in out
    trials = _trials(work, "B")
    assert [t.state.is_finished() for t in trials] == [True, True], out  # only the trials run are enqueued
    assert trials[0].user_attrs["pid"] != trials[1].user_attrs["pid"]  # two worker processes

    # 3. the same command again: the study goes on with the queued setting
    again = run(second, env, timeout=TIMEOUT).stdout
    assert "3 settings, 1 untried, 2 trials so far; running 1 trials on 1 worker(s)" in again
    trials = {t.user_attrs["trainer"]: t for t in _trials(work, "B")}
    assert len(trials) == 3 and all(t.state.is_finished() for t in trials.values())
    reused = trials.pop(trained)
    assert reused.state == TrialState.COMPLETE and reused.value == first.value
    assert reused.user_attrs["reused_folds"] == ["0"] and reused.user_attrs["epochs_trained"] == 0
    assert (_fold(work, trained) / "checkpoint_final.pth").stat().st_mtime_ns == final_mtime  # not trained again
    for name, pruned in trials.items():
        assert pruned.state == TrialState.PRUNED and pruned.user_attrs["epochs_trained"] == 1
        folder = _fold(work, name)
        marker = json.loads((folder / PRUNED_MARKER).read_text())
        assert (marker["trial"], marker["epoch"], marker["study"]) == (pruned.number, 0, "B")
        assert pruned.intermediate_values == {0: marker["value"]}
        assert (folder / "checkpoint_latest.pth").is_file() and not (folder / "checkpoint_final.pth").exists()
        assert not (folder / "validation").exists()  # stopped before nnU-Net's final validation
        import torch

        checkpoint = torch.load(folder / "checkpoint_latest.pth", map_location="cpu", weights_only=False)
        assert checkpoint["current_epoch"] == 1  # --c would go on with epoch 1
    assert not list((work / "nnUNet_results").rglob(tune.LOCK_NAME))
    assert f"Best: {trained}  validation Dice {first.value:.4f} (trial {reused.number})" in again
    assert f"Reused finished runs (0 iterations): trial {reused.number} {trained} fold 0" in again
    assert "Training iterations spent: 4 of a budget of 12" in again  # 0 + 1 + 1 epochs x 2 iterations

    out_dir = work / "nnUNet_results" / COLIN / "polydice_tune" / "B"
    rows = {r["trainer"]: r for r in csv.DictReader((out_dir / "tune.csv").open())}
    assert rows[trained]["state"] == "COMPLETE" and float(rows[trained]["value"]) == first.value
    assert {n: rows[n]["state"] for n in trials} == {n: "PRUNED" for n in trials}
    assert (out_dir / "tune_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # 4. --status reads the study from its storage; a third run of the command starts nothing
    status = run([tool, "tune", "731", "2d_cpu", "--schedule", "2x2", "--study", "B", "--status"], env,
                 timeout=TIMEOUT).stdout
    assert "3 trials (1 complete, 2 pruned); space of 3." in status
    for name, pruned in trials.items():
        k = name[len("nnUNetTrainerPolyDice_K")]
        assert f"| {pruned.number} | PRUNED | nnUNetTrainerPolyDice | {k} | 0 |" in status

    # 5. a Slurm array of 3 workers for a new study over the same space: the grid is enqueued for them
    script = tmp_path / "tune.sbatch"
    slurm = [*base, "--study", "cluster", "--workers", "3", "--trials", "7", "--slurm", str(script)]
    out = run(slurm, env, timeout=TIMEOUT).stdout
    assert f"Wrote {script}: 3 array tasks, 3 trials of study cluster (grid sampler; budget 12" in out
    text = script.read_text()
    assert "#SBATCH --array=0-2" in text and "TRIALS=(1 1 1)" in text
    assert "--study cluster --pruner none --sampler grid" in text
    assert [t.state for t in _trials(work, "cluster")] == [TrialState.WAITING] * 3
    refused = run(slurm, env, timeout=TIMEOUT, check=False)
    assert refused.returncode == 2 and "exists; nnunet-polydice never overwrites a file" in refused.stderr


@pytest.mark.e2e
def test_tune_races_two_settings_on_two_seeds(tmp_path):
    """Two settings x seeds 0, 1 x fold 0 x _1ep2it (grid: 8 training iterations, budget 100%): the search trains
    seed 0 of each; one seed per fold shows no run-to-run noise, so racing trains seed 1 of both, after which
    the order is used up (or the leader is told apart). Nothing is trained twice, the budget holds, and the
    report names a winner or the set it could not separate."""
    from nnunet_polydice.experiments.workspace import prepare_embedded

    work = tmp_path / "work"
    env = nnunet_env(work)
    prepare_embedded(COLIN, work, variant="tiny", echo=lambda s: None, environ=env)
    argv = [_tool(), "tune", "731", "2d_cpu", "--families", "nnUNetTrainerPolyDice", "--K", "1", "2", "--epsilon",
            "0", "--schedule", "1x2", "--device", "cpu", "--seeds", "0", "1", "--budget", "100%", "--study", "R",
            "--race"]
    out = run(argv, env, timeout=2 * TIMEOUT).stdout  # four nnUNetv2_train processes
    assert "Sampler grid: 2 trials cover the 2 untried settings" in out and "racing on:" in out
    trials = _trials(work, "R")
    assert all(t.state == TrialState.COMPLETE for t in trials), out
    pairs = [(t.user_attrs["trainer"], key) for t in trials for key in t.user_attrs["instance_values"]]
    assert len(pairs) == len(set(pairs)) == 4  # every (setting, fold, seed) once
    assert sorted(key for _, key in pairs) == ["0:s0", "0:s0", "0:s1", "0:s1"]
    assert [bool(t.user_attrs.get("race_instances")) for t in trials] == [False, False, True, True]
    spent = sum(t.user_attrs["epochs_trained"] for t in trials) * 2
    assert spent == 8 and "Training iterations spent: 8 of a budget of 8 (100% of the grid)" in out
    for name in ("nnUNetTrainerPolyDice_K1_eps0_1ep2it", "nnUNetTrainerPolyDice_K2_eps0_1ep2it"):
        for seed in (0, 1):
            assert (_fold(work, f"{name}_s{seed}") / "checkpoint_final.pth").is_file()
    # the verdict is the racing rule's on the four runs the study holds
    values, cases = {}, {}
    for t in trials:
        for key, value in t.user_attrs["instance_values"].items():
            inst, name = Instance.parse(key), t.user_attrs["trainer"]
            values.setdefault(name, {})[inst] = value
            summary = json.loads((_fold(work, f"{name}_s{inst[1]}") / "validation" / "summary.json").read_text())
            cases.setdefault(name, {})[inst] = tune.case_values(summary)
    look = racing.race_step(values, racing.instance_order(["0"], [0, 1]), cases=cases)
    expected = f"Winner: {look.leader}  " if len(look.remaining) == 1 else \
        f"No single winner: the leader {look.leader} "
    assert expected in out, out
    assert "Noise: run-to-run sd of one setting's validation Dice" in out
    out_dir = work / "nnUNet_results" / COLIN / "polydice_tune" / "R"
    rows = list(csv.DictReader((out_dir / "tune_settings.csv").open()))
    assert [r["runs"] for r in rows] == ["2", "2"]
    # again: nothing left to search or race, nothing trained
    again = run(argv, env, timeout=TIMEOUT).stdout
    assert len(_trials(work, "R")) == 4 and "Training iterations spent: 8 " in again


# ------------------------------------------------------------------- the CLI refuses before any work

def _snapshot(folder):
    return sorted((str(p), p.stat().st_size if p.is_file() else -1) for p in folder.rglob("*"))


TUNE = ["tune", "991", "2d", "--families", "nnUNetTrainerPolyDice", "--K", "2", "--epsilon", "0", "--schedule", "2x2"]


@pytest.mark.parametrize("extra, message", [
    (["--trials", "0"], "--trials must be an integer from 1 to 10000 (got 0)."),
    (["--trials", "-1"], "--trials must be an integer from 1 to 10000 (got -1)."),
    (["--workers", "0"], "--workers must be an integer from 1 to 1000 (got 0)."),
    (["--grace", "5"], "--grace must be an integer from 6 to 86400 (got 5)."),
    (["--grace", "1e9"], "--grace must be an integer from 6 to 86400"),
    (["--workers", "5000"], "--workers must be an integer from 1 to 1000 (got 5000)."),
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295 (got -1)."),
    (["--seed", "4294967296", "--slurm", "t.sbatch"], "--seed must be an integer from 0 to 4294967295"),
    (["--epsilon", "0:inf:0.5"], "START, STOP and STEP must be finite numbers"),
    (["--epsilon", "0:1e9:0.25"], "a range may have at most 1000"),
    (["--schedule", "1000000x1"], "epochs from 1 to 10000 and iterations from 1 to 10000"),
    (["--study", "../../x"], "--study '../../x' is not a plain name"),
    (["--study", "a/b"], "--study 'a/b' is not a plain name"),
    (["--study", ".."], "--study '..' is not a plain name"),
    (["--pruner", "median:n_startup_trials=abc"], "MedianPruner takes numbers (or true/false/none), not text: "
                                                  "n_startup_trials='abc'"),
    (["--out", "/nonexistent_polydice/deep/x"], "its parent folder /nonexistent_polydice/deep does not exist"),
    # the grid of TUNE: 1 setting x 1 fold x 2 epochs x 2 iterations = 4 training iterations
    (["--budget", "0"], "--budget '0': the budget must be above 0"),
    (["--budget", "-3"], "--budget '-3': the budget must be above 0"),
    (["--budget", "5"], "--budget '5' is more than the full grid (4 training iterations)"),
    (["--budget", "200%"], "--budget '200%' is more than the full grid (100 %, 4 iterations)"),
    (["--budget", "lots"], "--budget 'lots' is neither a number of training iterations nor a share of the grid"),
    (["--budget", "1"], "is 1 training iterations, less than one run (4)"),
    (["--seeds", "0", "0"], "--seeds gives the seed 0 more than once"),
    (["--seeds", "-1"], "--seeds must be an integer from 0 to 4294967295 (got -1)."),
    (["--seeds", "0", "1", "--race"], "--race needs at least two settings to race; the space has one (K=2 eps=0)"),
    (["--K", "2", "3", "--race"], "--race needs at least two seeds (--seeds 0 1 2)"),
    (["--pruner", "wilcoxon-cases:p=0.1"], "WilcoxonPruner takes no p; its keywords: p_threshold, n_startup_steps"),
    (["--pruner", "foo"], "unknown pruner 'foo'; allowed: median, percentile, sha, hyperband, threshold, none, "
                          "wilcoxon-instances, wilcoxon-cases"),
    (["--pruner", "wilcoxon-cases:p_threshold=nan"], "p_threshold takes a finite number (got 'nan')"),
    (["--pruner", "wilcoxon-instances:p_threshold=2"], "WilcoxonPruner refuses these values"),
])
def test_tune_refuses_before_any_study_folder_or_file(fake_results, monkeypatch, capsys, extra, message):
    monkeypatch.chdir(fake_results)
    before = _snapshot(fake_results)
    assert cli_main(replacing(TUNE, extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-polydice tune: error: ") and message in err and "Traceback" not in err
    assert _snapshot(fake_results) == before


@pytest.mark.parametrize("url", ["journal://{f}", "journal://{f}.d"])
def test_tune_never_appends_to_a_file_that_is_not_a_journal(fake_results, capsys, url):
    mine = fake_results / "notes.txt"
    mine.write_text("my notes\n")
    (fake_results / "notes.txt.d").mkdir()
    before = _snapshot(fake_results)
    assert cli_main([*TUNE, "--storage", url.format(f=mine)]) == 2
    err = capsys.readouterr().err
    assert "exists and it is not" in err and "nothing was written to it" in err
    assert _snapshot(fake_results) == before and mine.read_text() == "my notes\n"


@pytest.mark.parametrize("name", ["tune.md", "tune_curves.png"])
def test_tune_refuses_a_users_report_file_before_opening_the_study(fake_results, capsys, name):
    out = fake_results / "mine"
    out.mkdir()
    (out / name).write_text("mine")
    before = _snapshot(fake_results)
    assert cli_main([*TUNE, "--out", str(out)]) == 2
    assert f"{name} there was not written by nnunet-polydice" in capsys.readouterr().err
    assert _snapshot(fake_results) == before   # no journal, no study


def test_tune_refuses_empty_seeds(fake_results, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main([*TUNE, "--seeds"])
    assert exit_.value.code == 2 and "--seeds: expected at least one argument" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--seeds needs at least one seed"):
        tune.prepare("991", "2d", seeds=[], lookup=False)


def _dist(space):
    return {k: optuna.distributions.CategoricalDistribution(v) for k, v in space.grid().items()}


def test_no_setting_twice_while_untried_ones_remain():
    """The case of the issue: --trials 4 over 8 settings. Plain TPE's first 10 trials are independent random
    draws, so repeats are possible; inside NoRepeatSampler every trial is a new setting while untried ones remain."""
    space = tune.build_space(["nnUNetTrainerPolyDice"], ["1", "2", "3", "inf"], [0.0, 1.0], (2, 2))
    for kind in ("tpe", "random"):
        study = optuna.create_study(direction="maximize", sampler=tune.make_sampler(kind, 0, 0, 0, space))
        names = []
        study.optimize(lambda t, names=names: names.append(space.suggest(t)) or 0.1 * len(names), n_trials=8)
        assert len(set(names)) == 8
        # every setting tried: the wrapper lets the inner sampler's proposal through (a ninth trial repeats one)
        study.optimize(lambda t, names=names: names.append(space.suggest(t)) or 0.0, n_trials=1)
        assert len(names) == 9 and names[-1] in names[:8]


def test_the_median_needs_three_curves_at_the_step():
    """n_min_trials=3: two curves and a reused run (complete, no curve) at step 5 are not enough to prune a trial
    whose value there is below both; a third curve is."""
    space = tune.build_space(["nnUNetTrainerPolyDice"], ["1", "2", "3", "inf"], [0.0], (10, 2))
    study = optuna.create_study(direction="maximize", pruner=tune.make_study_pruner(tune.median_pruner(10)))
    dist, params = _dist(space), [s.params for s in space.settings]
    for p, curve in ((params[0], {5: 0.50}), (params[1], {5: 0.52}), (params[2], {})):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, params=p, distributions=dist,
                                     intermediate_values=curve))
    trial = study.ask()
    trial.report(0.40, 5)
    assert not trial.should_prune()  # 3 complete trials, but only 2 curves at step 5
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.5, params=params[3], distributions=dist,
                                 intermediate_values={5: 0.51}))
    assert trial.should_prune()  # median of 0.50, 0.51, 0.52 is 0.51 > 0.40


@pytest.mark.parametrize("n, pruned", [(3, False), (4, True)])
def test_wilcoxon_over_instances_needs_four_worse_runs(n, pruned):
    """Optuna's WilcoxonPruner (one-sided, p_threshold 0.1): a trial worse than the best on all of n paired
    (fold, seed) runs has p = 1/2^n: 0.125 for 3 (never pruned), 0.0625 for 4 (pruned)."""
    study = optuna.create_study(direction="maximize", pruner=tune.make_study_pruner("wilcoxon-instances"))
    best = {i: 0.8 + 0.01 * i for i in range(6)}
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.8, intermediate_values=best))
    trial = study.ask()
    for i in range(n):
        trial.report(best[i] - 0.05 - 0.01 * i, i)  # distinct differences, all negative
    assert trial.should_prune() is pruned
    assert tune.wilcoxon_unit("wilcoxon-cases:p_threshold=0.05") == "cases" and tune.wilcoxon_unit("median") is None


def test_case_values_of_a_summary():
    summary = {"metric_per_case": [
        {"reference_file": "/r/a.nii.gz", "metrics": {"1": {"Dice": 0.5}, "2": {"Dice": float("nan")}}},
        {"reference_file": "C:\\r\\b.nii.gz", "metrics": {"1": {"Dice": 0.4}, "2": {"Dice": 0.8}}},
        {"reference_file": "/r/c.nii.gz", "metrics": {"1": {"Dice": float("nan")}, "2": {"Dice": float("nan")}}}]}
    # a: only label 1 defined (0.5); b: mean of 0.4 and 0.8; c: nothing defined, left out
    assert tune.case_values(summary) == pytest.approx({"a.nii.gz": 0.5, "b.nii.gz": 0.6})
    assert tune.case_values(summary, "2") == {"b.nii.gz": 0.8}
    assert tune.case_values({}) == {} and tune.case_values(None) == {}


def _finished(folder: Path, dice: float, cases: dict):
    (folder / "validation").mkdir(parents=True)
    (folder / "checkpoint_final.pth").write_bytes(b"")
    (folder / "validation" / "summary.json").write_text(json.dumps({
        "foreground_mean": {"Dice": dice}, "mean": {"1": {"Dice": dice}},
        "metric_per_case": [{"reference_file": c, "metrics": {"1": {"Dice": v}}} for c, v in cases.items()]}))


def test_seeded_summary_names_the_set_it_cannot_separate(fake_results):
    """Two settings on seeds 0 and 1 of fold 0 (finished runs on disk, search trials in the study). K1: 0.70,
    0.60; K2: 0.66, 0.66. Means 0.65 and 0.66: K2 leads; per-case differences (K2 - K1) of 0.06 and -0.04 on
    seed 0 and 0.16, 0.06 on seed 1 give an interval that spans 0: no single winner, both named, and the
    pooled run-to-run sd is sqrt(0.005 / 2) = 0.05 (K1's squares 0.005, K2's 0, one degree of freedom each);
    K2 (K=2, eps=1) is the family's default setting, and the report says so."""
    setup = tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["1", "2"], epsilons=["1"],
                         schedule="2x2", seeds=["0", "1"], lookup=False, race=True)
    assert setup.race and setup.instances == [("0", 0), ("0", 1)] and setup.grid_iterations == 16
    assert not tune.prepare("991", "2d", families=["nnUNetTrainerPolyDice"], K_values=["1", "2"], epsilons=["1"],
                            schedule="2x2", seeds=["0", "1"], lookup=False).race  # off unless asked for
    assert setup.budget == 8  # half the grid: the search (2 runs of 4) and nothing more
    k1, k2 = setup.space.settings
    runs = {(k1, 0): (0.70, {"a": 0.70, "b": 0.70}), (k1, 1): (0.60, {"a": 0.50, "b": 0.70}),
            (k2, 0): (0.66, {"a": 0.76, "b": 0.66}), (k2, 1): (0.66, {"a": 0.66, "b": 0.76})}
    for (s, seed), (dice, cases) in runs.items():
        _finished(setup.fold_folder(setup.run_name(s, ("0", seed)), "0"), dice, cases)
    study = optuna.create_study(direction="maximize")
    for s in (k1, k2):
        study.add_trial(create_trial(state=TrialState.COMPLETE, value=runs[(s, 0)][0], params=s.params,
                                     distributions=_dist(setup.space), user_attrs={"epochs_trained": 2}))
    summary = tune.summarize(study, setup, tune.LiveRunner(setup, study, ""))
    assert summary.iterations_spent == 8 and summary.look.leader == k2.trainer
    assert summary.look.remaining == [k2.trainer, k1.trainer] and summary.look.rivals[0].unit == "cases"
    lines = tune.verdict_lines(summary)
    assert lines[0].startswith(f"No single winner: the leader {k2.trainer} (mean validation Dice 0.6600 over 2 "
                               f"(fold, seed) runs) could not be told apart from K=1 eps=1: any of these; the default "
                               f"setting K=2 eps=1 is among them.")
    assert lines[-1].startswith("Noise: run-to-run sd of one setting's validation Dice 0.0500 (pooled within "
                                "setting and fold over seeds, 2 degrees of freedom); the gap from the leader to the "
                                "runner-up is 0.0100.")
    assert [(r.setting.trainer, len(r.values), r.status.split(":")[0]) for r in summary.settings] == [
        (k1.trainer, 2, "not told apart"), (k2.trainer, 2, "leader")]
    assert "| nnUNetTrainerPolyDice_K2_eps1_2ep2it | 2 | 0.6600 | 0.0000 | leader |" in tune.settings_table(summary)
    assert "training iterations spent: 8 of a budget of 8 (50% of the grid)" in tune.cost_lines(summary)[0]
    assert "x 1 folds x 2 seeds x 2 epochs" in tune.cost_lines(summary)[0]


def test_pruning_is_reported_in_nnunets_epoch_numbers():
    assert tune.epoch_note(5, 10) == "epoch 5 of 0-9"   # nnU-Net's log prints "Epoch 5" for this epoch
    assert tune.epoch_note(0, 2) == "epoch 0 of 0-1"


@pytest.mark.parametrize("kind", ["journal:///{}/new.journal", "sqlite:///{}/new.sqlite"])
def test_status_of_a_storage_that_does_not_exist_says_so_and_creates_nothing(fake_results, tmp_path, capsys, kind):
    folder = tmp_path / "user"
    folder.mkdir()
    url = kind.format(folder)
    assert cli_main(["tune", "991", "2d", "--schedule", "2x2", "--storage", url, "--status"]) == 2
    err = capsys.readouterr().err
    assert f"no study there yet: {url} does not exist" in err and err.count("\n") == 1
    assert list(folder.iterdir()) == []
