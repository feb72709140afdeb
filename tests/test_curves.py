"""``nnunet-polydice curves`` (nnunet_polydice.experiments.curves) on training logs written by hand in exactly the
format of nnU-Net's ``nnUNetTrainer.print_to_log_file`` (``<datetime>: <args joined by ' '> ``), with every
pseudo Dice, mean and EMA value worked out in the comments. The real logs of real trainings are read in
tests/test_demo_and_tools_e2e.py."""

import csv
import json
import math

import matplotlib.image
import pytest

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import curves

DS = "Dataset042_Toy"
LABELS = {"background": 0, "hippocampus": 1, "amygdala": 2}

# nnU-Net's first lines (its citation, printed without a timestamp) and two ordinary lines: every line ends
# with the space print_to_log_file writes after its last argument
HEADER = ("\n#######################################################################\n"
          "Please cite the following paper when using nnU-Net:\n"
          "Isensee, F., Jaeger, P. F., Kohl, S. A., Petersen, J., & Maier-Hein, K. H. (2021). nnU-Net: a "
          "self-configuring method for deep learning-based biomedical image segmentation. Nature methods, 18(2), "
          "203-211.\n"
          "#######################################################################\n \n"
          "2024-09-30 23:58:01.512311: do_dummy_2d_data_aug: False \n"
          "2024-09-30 23:58:01.601123: Using splits from existing split file: /pre/Dataset042_Toy/splits_final.json \n")


def epoch_lines(n, lr, train, val, dice, seconds, best=None, stamp="2024-09-30 23:59:"):
    """The lines nnU-Net prints for one epoch (on_train_epoch_start, on_epoch_end), numpy 2 style."""
    dice_text = ", ".join(f"np.float32({d})" for d in dice)
    lines = [f"{stamp}00.000001: ", f"{stamp}00.000002: Epoch {n} ", f"{stamp}00.000003: Current learning rate: {lr} ",
             f"{stamp}09.000004: train_loss {train} ", f"{stamp}09.000005: val_loss {val} ",
             f"{stamp}09.000006: Pseudo dice [{dice_text}] ", f"{stamp}09.000007: Epoch time: {seconds} s "]
    if best is not None:
        lines.append(f"{stamp}09.000008: Yayy! New best EMA pseudo Dice: {best} ")
    return "\n".join(lines) + "\n"


# The first run: epochs 0, 1, 2 and the start of 3 (stopped within epoch 3).
#   m_t = nanmean of the pseudo Dice: 0.1, 0.3, 0.6 (the amygdala is nan in epoch 2)
#   ema: 0.1; 0.9 * 0.1 + 0.1 * 0.3 = 0.12; 0.9 * 0.12 + 0.1 * 0.6 = 0.168
FIRST = (HEADER + epoch_lines(0, 0.01, 0.4321, 0.3877, [0.2, 0.0], 11.0, best=0.1)
         + epoch_lines(1, 0.0091, 0.2011, 0.1502, [0.4, 0.2], 10.52, best=0.12)
         + epoch_lines(2, 0.00818, -0.0523, -0.1012, [0.6, "nan"], 10.3, best=0.168)
         + "2024-09-30 23:59:30.000001: \n2024-09-30 23:59:30.000002: Epoch 3 \n"
         + "2024-09-30 23:59:30.000003: Current learning rate: 0.00725 \n")
# Resumed with --c from the checkpoint after epoch 1: epoch 2 again, then 3 (the later file wins for 2).
#   m_t: 0.4, 0.6; ema: 0.9 * 0.12 + 0.1 * 0.4 = 0.148; 0.9 * 0.148 + 0.1 * 0.6 = 0.1932
SECOND = (HEADER + epoch_lines(2, 0.00818, -0.0611, -0.1203, [0.5, 0.3], 10.1, best=0.148,
                               stamp="2024-10-01 00:05:")
          + epoch_lines(3, 0.00725, -0.1022, -0.1555, [0.7, 0.5], 10.2, best=0.1932, stamp="2024-10-01 00:05:"))
# A later `nnUNetv2_train ... --val` run: a log without any epoch, which changes nothing.
VALIDATION_ONLY = HEADER + "2024-10-01 01:00:00.000001: predicting case_001 \n"
# file names as nnU-Net makes them (month and day not zero-padded): as text the 1 October file sorts first
NAMES = ("training_log_2024_9_30_23_58_01.txt", "training_log_2024_10_1_00_05_00.txt",
         "training_log_2024_10_1_01_00_00.txt")


def test_parse_log_reads_nnunets_lines():
    epochs = curves.parse_log(FIRST)
    assert [e.epoch for e in epochs] == [0, 1, 2, 3]
    e0, e2, e3 = epochs[0], epochs[2], epochs[3]
    assert (e0.learning_rate, e0.train_loss, e0.val_loss, e0.seconds, e0.best_ema) == (0.01, 0.4321, 0.3877, 11.0, 0.1)
    assert e0.pseudo_dice == [0.2, 0.0]
    assert e2.pseudo_dice[0] == 0.6 and math.isnan(e2.pseudo_dice[1]) and e2.train_loss == -0.0523
    assert e2.best_ema == 0.168
    assert e3.learning_rate == 0.00725 and not e3.complete and e3.train_loss is None


def test_parse_log_reads_numpy1_lists_and_skips_other_lines():
    text = ("2024-1-2 03:04:05: Epoch 0 \n"  # a timestamp without microseconds, as datetime prints a whole second
            "2024-01-02 03:04:06.000001: Pseudo dice [0.8123, nan, 0.0] \n"
            "not a log line: Epoch 7\n"
            "2024-01-02 03:04:06.000002: This is the configuration used by this training: \n")
    (e,) = curves.parse_log(text)
    assert e.epoch == 0 and e.pseudo_dice[0] == 0.8123 and math.isnan(e.pseudo_dice[1]) and e.pseudo_dice[2] == 0.0
    assert curves.parse_log(HEADER) == []


def test_mean_foreground_and_ema_by_hand():
    assert curves.mean_foreground([0.2, 0.0]) == pytest.approx(0.1)
    assert curves.mean_foreground([0.6, math.nan]) == 0.6  # nanmean, as nnU-Net's mean_fg_dice
    assert math.isnan(curves.mean_foreground([math.nan, math.nan]))
    assert curves.ema([0.1, 0.3, 0.4, 0.6]) == pytest.approx([0.1, 0.12, 0.148, 0.1932])
    assert curves.ema([]) == []
    # a NaN epoch poisons the rest, as in nnU-Net's logger
    assert curves.ema([0.5, math.nan, 0.5])[0] == 0.5 and math.isnan(curves.ema([0.5, math.nan, 0.5])[2])


@pytest.mark.parametrize("threshold, epochs", [(0.1, 1), (0.12, 2), (0.15, 4), (0.1932, 4), (0.2, None)])
def test_epochs_to_reach(threshold, epochs):
    # ema 0.1, 0.12, 0.148, 0.1932: 0.1 is reached after the first epoch (>=), 0.15 only after the fourth
    assert curves.epochs_to_reach([0.1, 0.12, 0.148, 0.1932], threshold) == epochs


def write_logs(fold_dir, *texts, names=NAMES):
    fold_dir.mkdir(parents=True, exist_ok=True)
    for name, text in zip(names, texts):
        (fold_dir / name).write_text(text)


def test_resumed_logs_are_merged_by_epoch_later_file_wins(tmp_path):
    write_logs(tmp_path, FIRST, SECOND, VALIDATION_ONLY)
    files = curves.log_files(tmp_path)
    assert [p.name for p in files] == list(NAMES)  # by the time in the name, not as text
    epochs = curves.merge_logs([curves.parse_log(p.read_text()) for p in files])
    assert [e.epoch for e in epochs] == [0, 1, 2, 3]
    assert epochs[2].pseudo_dice == [0.5, 0.3] and epochs[2].train_loss == -0.0611  # the resumed run's epoch 2
    values = curves.ema([curves.mean_foreground(e.pseudo_dice) for e in epochs])
    assert values == pytest.approx([0.1, 0.12, 0.148, 0.1932])
    # nnU-Net's own EMA, printed when it was a new best, is what the recomputation gives
    assert [e.best_ema for e in epochs] == pytest.approx(values)
    # the first run alone would have reached 0.15 after epoch 2 (ema 0.168), the merged history after epoch 3
    first = curves.merge_logs([curves.parse_log(FIRST)])
    assert curves.epochs_to_reach(curves.ema([curves.mean_foreground(e.pseudo_dice) for e in first]), 0.15) == 3
    assert curves.epochs_to_reach(values, 0.15) == 4


def test_a_resumed_run_drops_the_later_epochs_of_the_earlier_log():
    # the earlier run reached epoch 2; the later one restarted from the checkpoint after epoch 0 and stopped in
    # epoch 2: nnU-Net's logger then holds epochs 0 (old) and 1 (new) only
    later = epoch_lines(1, 0.0091, 0.3, 0.2, [0.9, 0.9], 10.0) + "2024-09-30 23:59:40.000001: Epoch 2 \n"
    merged = curves.merge_logs([curves.parse_log(FIRST), curves.parse_log(later)])
    assert [e.epoch for e in merged] == [0, 1] and merged[1].pseudo_dice == [0.9, 0.9]


# ------------------------------------------------------------------------------ a results tree

def fold_dir(res, trainer, fold, conf="2d"):
    d = res / DS / f"{trainer}__nnUNetPlans__{conf}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "dataset.json").write_text(json.dumps({"labels": LABELS, "file_ending": ".nii.gz"}))
    return d / f"fold_{fold}"


A, B = "nnUNetTrainer_4ep2it", "nnUNetTrainerPolyDice_4ep2it"  # sorted: B first ('P' < '_')
# B, fold 0: m_t 0.3, 0.5, 0.5, 0.7; ema 0.3, 0.32, 0.338, 0.3742. fold 1: m_t 0.05, 0.1, 0.1, 0.2;
# ema 0.05, 0.055, 0.0595, 0.07355 (never 0.1)
B_LOGS = {
    "0": "".join(epoch_lines(n, 0.01, 0.1, 0.1, d, 9.0) for n, d in enumerate(([0.4, 0.2], [0.6, 0.4], [0.5, 0.5],
                                                                              [0.8, 0.6]))),
    "1": "".join(epoch_lines(n, 0.01, 0.1, 0.1, d, 9.0) for n, d in enumerate(([0.1, 0.0], [0.2, 0.0], [0.2, 0.0],
                                                                              [0.3, 0.1]))),
}


@pytest.fixture
def tree(tmp_path, monkeypatch):
    res = tmp_path / "res"
    for k, v in (("nnUNet_raw", tmp_path / "raw"), ("nnUNet_preprocessed", tmp_path / "pre"), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    (tmp_path / "raw" / DS).mkdir(parents=True)
    write_logs(fold_dir(res, A, 0), FIRST, SECOND, VALIDATION_ONLY)
    (fold_dir(res, A, 0) / "checkpoint_final.pth").write_bytes(b"")  # finished: a checkpoint and a summary
    (fold_dir(res, A, 0) / "validation").mkdir()
    (fold_dir(res, A, 0) / "validation" / "summary.json").write_text(json.dumps(
        {"foreground_mean": {"Dice": 0.5}, "mean": {"1": {"Dice": 0.5}}, "metric_per_case": []}))
    fold_dir(res, A, 1).mkdir()  # not trained yet
    for f, text in B_LOGS.items():
        write_logs(fold_dir(res, B, f), text)
    (fold_dir(res, B, 1) / "checkpoint_latest.pth").write_bytes(b"")
    return res


def test_collect_table_and_files(tree, tmp_path):
    found = curves.collect(tree, DS, "2d", threshold=0.1)
    assert found.trainers == [B, A] and found.folds == ["0", "1"]
    assert found.classes == ["hippocampus", "amygdala"]
    assert found.missing == [(A, "1", "no training_log_*.txt")]
    assert found.runs_of(B)[0].ema == pytest.approx([0.3, 0.32, 0.338, 0.3742])
    table = {(r[0], r[1]): r for r in found.table()}
    assert table[(A, "0")] == [A, "0", "finished", "4", "0.1932", "0.1932 (3)", "1"]
    assert table[(A, "mean")] == [A, "mean", "", "4.0", "0.1932", "", "1.0 (1/1 folds)"]
    assert table[(B, "1")] == [B, "1", "not finished", "4", "0.0736", "0.0736 (3)", "never"]  # 0.07355
    assert table[(B, "mean")] == [B, "mean", "", "4.0", "0.2239", "", "1.0 (1/2 folds)"]  # (0.3742 + 0.07355) / 2

    out = tmp_path / "out"
    written, plotted = curves.write_outputs(found, out)
    assert sorted(p.name for p in written) == sorted(
        ["curves.md", "curves.csv", "curves_epochs.csv", "curves_pseudo_dice_hippocampus.png",
         "curves_pseudo_dice_amygdala.png", "curves_ema_pseudo_dice.png"])
    # one line per trainer in every figure; the line is the mean over the folds at each epoch
    for name, lines in plotted.items():
        assert [line.trainer for line in lines] == [B, A], name
        assert len({line.color for line in lines}) == 2
    hip = {line.trainer: line for line in plotted["curves_pseudo_dice_hippocampus.png"]}
    assert hip[B].x == (0, 1, 2, 3) and hip[B].y == pytest.approx([0.25, 0.4, 0.35, 0.55])  # (0.4 + 0.1) / 2, ...
    assert hip[A].y == pytest.approx([0.2, 0.4, 0.5, 0.7])
    amy = {line.trainer: line for line in plotted["curves_pseudo_dice_amygdala.png"]}
    assert amy[A].x == (0, 1, 2, 3)  # epoch 2 of the first run had nan; the merged epoch 2 has 0.3
    ema_lines = {line.trainer: line for line in plotted["curves_ema_pseudo_dice.png"]}
    assert ema_lines[B].y == pytest.approx([(0.3 + 0.05) / 2, (0.32 + 0.055) / 2, (0.338 + 0.0595) / 2,
                                            (0.3742 + 0.07355) / 2])
    for p in written:
        if p.suffix == ".png":
            image = matplotlib.image.imread(p)
            assert image.shape == (500, 800, 4)  # FIGSIZE 8 x 5 inches at 100 dpi
            assert (image[..., :3] < 0.99).any(axis=-1).mean() > 0.02  # not blank
    rows = list(csv.DictReader((out / "curves.csv").open()))
    b1 = next(r for r in rows if r["trainer"] == B and r["fold"] == "1")
    assert b1["epochs_to_threshold"] == "never" and float(b1["last_ema"]) == pytest.approx(0.07355)
    assert b1["state"] == "continue"
    a0 = next(r for r in rows if r["trainer"] == A and r["fold"] == "0")
    assert a0["log_files"] == ";".join(NAMES)
    epochs = list(csv.DictReader((out / "curves_epochs.csv").open()))
    a2 = next(r for r in epochs if r["trainer"] == A and r["epoch"] == "2")
    assert float(a2["pseudo_dice_amygdala"]) == 0.3 and float(a2["ema_fg_pseudo_dice"]) == pytest.approx(0.148)
    md = (out / "curves.md").read_text()
    assert "| trainer | fold | state | epochs | last EMA | best EMA (epoch) | epochs until EMA >= 0.1 |" in md
    assert "band = lowest to highest fold value" in md and "![curves_ema_pseudo_dice](curves_ema_pseudo_dice.png)" in md
    assert json.loads((out / ".polydice_curves.json").read_text())["files"] == [p.name for p in written]


def test_cli_writes_and_never_overwrites_user_files(tree, tmp_path, capsys):
    assert main(["curves", "42", "2d", "--threshold", "0.15"]) == 0
    printed = capsys.readouterr().out
    out = tree / DS / "polydice_curves_2d"
    assert (out / "curves_ema_pseudo_dice.png").is_file()
    assert "epochs until EMA >= 0.15" in printed and f"{A} / fold 1: no training_log_*.txt" in printed
    assert main(["curves", DS, "2d", "--trainers", B, "--folds", "0"]) == 0  # its own files: overwritten
    md = (out / "curves.md").read_text()
    assert f"| {B} | 0 | " in md and f"| {A} |" not in md

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "curves.md").write_text("my notes")
    assert main(["curves", DS, "2d", "--out", str(mine)]) == 2
    assert "not written by nnunet-polydice curves" in capsys.readouterr().err
    assert (mine / "curves.md").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == ["curves.md"]


@pytest.mark.parametrize("folds, message", [
    (["9"], "--folds 9: none of these trainers has a fold folder of them; folds there: 0, 1"),
    (["7", "all"], "--folds 7 all: none of these trainers has a fold folder"),
])
def test_curves_of_folds_no_run_has_keep_the_last_outputs(tree, tmp_path, capsys, folds, message):
    out = tmp_path / "ours"
    assert main(["curves", DS, "2d", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["curves", DS, "2d", "--out", str(out), "--folds", *folds]) == 2
    err = capsys.readouterr().err
    assert message in err and "training_log" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_gaps_in_the_logs_are_reported(tree):
    d = fold_dir(tree, B, 2)
    write_logs(d, "".join(epoch_lines(n, 0.01, 0.1, 0.1, [0.5, 0.5], 9.0) for n in (0, 1, 3)))
    d3 = fold_dir(tree, B, 3)
    write_logs(d3, "".join(epoch_lines(n, 0.01, 0.1, 0.1, [0.5, 0.5], 9.0) for n in (5, 6)))
    found = curves.collect(tree, DS, "2d", trainers=[B])
    (run,) = [r for r in found.runs if r.fold == "2"]
    assert [e.epoch for e in run.epochs] == [0, 1]
    assert run.notes == ["the logs lack epoch 2 (a training_log deleted?): curves and EMA up to epoch 1 only"]
    assert (B, "3", "the logs start at epoch 5, not 0 (an earlier training_log deleted?): the EMA cannot be "
                    "recomputed") in found.missing


@pytest.mark.parametrize("argv, message", [
    (["curves", "999", "2d"], "cannot resolve dataset '999'"),
    (["curves", "Dataset043_Other", "2d"], "no results of Dataset043_Other in nnUNet_results."),
    (["curves", DS, "3d_fullres"], "no trainer folders *__nnUNetPlans__3d_fullres in "),
    (["curves", DS, "3d_fullres"], "configurations with plans nnUNetPlans there: 2d (check the configuration"),
    (["curves", DS, "2d", "--trainers", "nnUNetTrainerDiceLoss"],
     "--trainers nnUNetTrainerDiceLoss has no results folder nnUNetTrainerDiceLoss__nnUNetPlans__2d; trainers with "
     f"results: {B}, {A}."),
    (["curves", DS, "2d", "--folds", "1", "--trainers", A], "no training_log_*.txt in the fold folders of "),
    (["curves", DS, "2d", "--threshold", "1.5"],
     "--threshold must be a number from 0 to 1, an EMA pseudo Dice (got '1.5'); the default is 0.1."),
    (["curves", DS, "2d", "--threshold", "nan"], "--threshold must be a number from 0 to 1"),
    (["curves", DS, "2d", "--threshold", "\uff10.5"], "--threshold must be a number from 0 to 1"),  # fullwidth 0
    (["curves", DS, "2d", "--folds", "x"], "a fold is a non-negative integer or 'all'"),
])
def test_bad_input_is_one_sentence(tree, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tree / DS / "polydice_curves_2d").exists()


def test_an_out_that_is_a_file_is_refused_before_any_work(tree, tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert main(["curves", DS, "2d", "--out", str(a_file)]) == 2
    assert f"--out {a_file} is a file, not a folder" in capsys.readouterr().err
    assert main(["curves", DS, "2d", "--out", str(a_file / "sub")]) == 2
    assert f"--out {a_file / 'sub'} cannot be created: {a_file} is a file, not a folder" in capsys.readouterr().err
    assert a_file.read_text() == "x"


def test_seeds_of_one_setting_are_one_band_and_names_of_one_setting_one_line(tmp_path, monkeypatch):
    """The seeds 0 and 1 of S on fold 0 log B's two folds: one line, their mean (B's line), in the colour of S's
    unseeded line; the family name and its explicit default name are one line, labelled by the setting."""
    s = "nnUNetTrainerPolyDice_K1_eps0"
    default = "nnUNetTrainerPolyDice_K2_eps1"  # the defaults of nnUNetTrainerPolyDice
    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    write_logs(fold_dir(tmp_path, f"{s}_s0", 0), B_LOGS["0"])
    write_logs(fold_dir(tmp_path, f"{s}_s1", 0), B_LOGS["1"])
    write_logs(fold_dir(tmp_path, s, 0), B_LOGS["0"])
    write_logs(fold_dir(tmp_path, "nnUNetTrainerPolyDice", 0), B_LOGS["0"])
    write_logs(fold_dir(tmp_path, default, 1), B_LOGS["1"])
    found = curves.collect(tmp_path, DS, "2d")
    assert [g[0] for g in found.settings()] == ["nnUNetTrainerPolyDice_K2_eps1", s, f"{s} (seeds 0,1)"]
    _, plotted = curves.write_outputs(found, tmp_path / "out")
    hip = {line.trainer: line for line in plotted["curves_pseudo_dice_hippocampus.png"]}
    assert list(hip) == [default, s, f"{s} (seeds 0,1)"]
    assert hip[f"{s} (seeds 0,1)"].y == pytest.approx([0.25, 0.4, 0.35, 0.55])  # (0.4 + 0.1) / 2, ...
    assert hip[s].y == pytest.approx([0.4, 0.6, 0.5, 0.8]) and hip[s].color == hip[f"{s} (seeds 0,1)"].color
    assert hip[default].y == pytest.approx([0.25, 0.4, 0.35, 0.55]) and hip[default].color != hip[s].color
    assert "(seeds ...)" in found.text() and "pooled" in found.text()
