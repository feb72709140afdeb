"""experiments/checks.py: every kind of argument a user types is checked in one place, with a sentence that
names the option, the value and what is allowed (MONAI's test_ill_opts, one case per spelling)."""

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from nnunet_polydice.cli import main
from nnunet_polydice.experiments import checks, paths
from nnunet_polydice.integration.naming import MAX_SEED


@pytest.mark.parametrize("value, expected", [(0, 0), (7, 7), (MAX_SEED, MAX_SEED), ("42", 42), (" 3 ", 3)])
def test_seeds_in_range_pass(value, expected):
    assert checks.check_seed(value) == expected


@pytest.mark.parametrize("value", [-1, "-1", MAX_SEED + 1, str(2**64), 1.5, "1.5", "abc", "", True, None, "١"])
def test_seeds_out_of_range_or_not_integers_are_refused_naming_option_and_range(value):
    with pytest.raises(ValueError, match=rf"^--seed must be an integer from 0 to {MAX_SEED} \(got "):
        checks.check_seed(value)


def test_the_seed_sentence_names_the_option_given():
    with pytest.raises(ValueError, match=r"^compare's --seed must be an integer from 0 to 4294967295 \(got -3\)\.$"):
        checks.check_seed(-3, "compare's --seed")


def test_seed_lists():
    assert checks.check_seeds([3, "0", 1]) == [3, 0, 1]
    assert checks.check_seeds((MAX_SEED,), "--seeds") == [MAX_SEED]


@pytest.mark.parametrize("values, message", [
    ([], r"^--seeds needs at least one seed, each an integer from 0 to 4294967295"),
    (None, r"^--seeds needs at least one seed"),
    ("12", r"^--seeds needs at least one seed"),
    ([1, 2, 1], r"^--seeds gives the seed 1 more than once; give each seed once\.$"),
    ([1, "01"], r"^--seeds gives the seed 1 more than once"),
    ([0, -1], r"^--seeds must be an integer from 0 to 4294967295 \(got -1\)\.$"),
    ([2**32], r"^--seeds must be an integer from 0 to 4294967295 \(got 4294967296\)\.$"),
])
def test_bad_seed_lists_are_refused(values, message):
    with pytest.raises(ValueError, match=message):
        checks.check_seeds(values)


# ------------------------------------------------------------------------- sizes, names, folders, storages

def test_ranges_expand_exactly_and_are_bounded_before_expanding():
    assert checks.check_range("0:1:0.25", "--epsilon", Decimal("0.25")) == [Decimal(x) for x in
                                                                            ("0", "0.25", "0.5", "0.75", "1")]
    assert len(checks.check_range("0:999:1", "--epsilon", Decimal("0.25"))) == checks.MAX_RANGE_VALUES
    with pytest.raises(ValueError, match=r"^--epsilon '0:1000:1' has 1001 values; a range may have at most 1000\.$"):
        checks.check_range("0:1000:1", "--epsilon", Decimal("0.25"))
    for text in ("0:nan:1", "snan:1:1", "0:1:inf", "-Infinity:0:1"):
        with pytest.raises(ValueError, match="must be finite numbers"):
            checks.check_range(text, "--epsilon", Decimal("0.25"))


@pytest.mark.parametrize("text, expected", [("30x20", (30, 20)), ("1ep1it", (1, 1)), ("10000x10000", (10000, 10000))])
def test_schedules_in_bounds(text, expected):
    assert checks.check_schedule(text) == expected


@pytest.mark.parametrize("text", ["10001x1", "1x10001", "0x5", "5x0", "99999999999999999999x1", "1x", "５x5"])
def test_schedules_out_of_bounds_name_the_bounds(text):
    with pytest.raises(ValueError, match=r"^--schedule: .*epochs from 1 to 10000 and iterations from 1 to 10000"):
        checks.check_schedule(text)


@pytest.mark.parametrize("name", ["s1", "2d_30ep40it_folds0", "a.b-c+d", "x" * 128])
def test_plain_study_names(name):
    assert checks.check_study_name(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a\\b", "..", "a..b", ".hidden", "-x", "x" * 129, "a b", "é"])
def test_study_names_that_are_paths_or_odd_are_refused(name):
    with pytest.raises(ValueError, match=r"^--study .* is not a plain name"):
        checks.check_study_name(name)


def test_output_folders_need_an_existing_parent(tmp_path):
    assert checks.check_output_folder(tmp_path / "new") == tmp_path / "new"
    with pytest.raises(ValueError, match=rf"^--out {tmp_path / 'a' / 'b'}: its parent folder {tmp_path / 'a'} does "
                                         r"not exist"):
        checks.check_output_folder(tmp_path / "a" / "b")
    assert list(tmp_path.iterdir()) == []


def test_files_of_the_user_are_never_claimed(tmp_path):
    (tmp_path / "a.md").write_text("mine")
    checks.check_files_free(tmp_path, ["a.md", "b.md"], owned={"a.md"}, tool="compare")
    with pytest.raises(FileExistsError, match=r"a\.md there was not written by nnunet-polydice compare"):
        checks.check_files_free(tmp_path, ["b.md", "a.md"], owned=set(), tool="compare", option="--out")
    (tmp_path / "b.md").symlink_to(tmp_path / "gone")  # a dangling link is somebody's too
    with pytest.raises(FileExistsError, match=r"b\.md there"):
        checks.check_files_free(tmp_path, ["b.md"], owned=set(), tool="curves")


def test_names_longer_than_the_file_system_allows_are_refused_before_any_look(tmp_path):
    """ENAMETOOLONG as a sentence naming the option, before exists() would raise it."""
    long = "x" * 300
    for check in (checks.check_output_folder, paths.ensure_writable_dir, paths.ensure_new_file):
        with pytest.raises(ValueError, match=r"--out: the name 'x{40}'\.\.\. is 300 bytes long; the file system "
                                             r"allows at most 255 bytes a name"):
            check(tmp_path / long / "inner", "--out")
    deep = tmp_path.joinpath(*["d" * 200] * 25)
    with pytest.raises(ValueError, match=r"--raw: the path is \d+ bytes long; the file system allows at most 4096"):
        checks.check_output_folder(deep, "--raw")
    for url in (f"journal://{tmp_path / long}.journal", f"sqlite:///{tmp_path / long}.sqlite"):
        with pytest.raises(ValueError, match=r"--storage '.*'\.\.\.: the name 'x{40}'\.\.\. is 30\d bytes long"):
            checks.check_storage(url)
    assert list(tmp_path.iterdir()) == []  # nothing created
    assert paths.check_path_length(tmp_path / ("y" * 255), "--out") == tmp_path / ("y" * 255)


def test_storages(tmp_path):
    journal = tmp_path / "j.log"
    assert checks.check_storage(f"journal://{journal}") == f"journal://{journal}"       # new file
    journal.write_text('{"op_code":0,"worker_id":"w","study_name":"s","directions":[1]}\n')  # Optuna's first line
    assert checks.check_storage(f"journal://{journal}")                                 # an Optuna journal
    (tmp_path / "empty.log").write_text("")
    assert checks.check_storage(f"journal://{tmp_path / 'empty.log'}")
    for text in ("hello\n", "[1, 2]\n", '{"a": 1}\n', "\x00\x01binary", '{"op_code": 0}\n',  # foreign JSON too
                 '{"op_code": 4, "study_id": 0}\n', '{"op_code": 0, "study_name": "s", "directions": 1}\n'):
        (tmp_path / "mine.txt").write_text(text)
        with pytest.raises(ValueError, match=r"exists and it is not an Optuna journal"):
            checks.check_storage(f"journal://{tmp_path / 'mine.txt'}")
        assert (tmp_path / "mine.txt").read_text() == text
    with pytest.raises(ValueError, match=r"the folder .*missing does not exist"):
        checks.check_storage(f"journal://{tmp_path / 'missing' / 'j.log'}")
    with pytest.raises(ValueError, match=r"is not a storage URL"):
        checks.check_storage("/tmp/j.log")
    # SQLite: a file in an existing folder; in memory, the trainers (other processes) could not report to it
    assert checks.check_storage(f"sqlite:///{tmp_path / 'db.sqlite3'}") == f"sqlite:///{tmp_path / 'db.sqlite3'}"
    for url in ("sqlite:///", "sqlite:///:memory:", "sqlite://"):
        with pytest.raises(ValueError, match=r"is an in-memory SQLite database, which lives and dies with one"):
            checks.check_storage(url)
    with pytest.raises(ValueError, match=r"the folder .*nowhere does not exist; give a database file"):
        checks.check_storage(f"sqlite:///{tmp_path / 'nowhere' / 'db.sqlite3'}")


def test_counts():
    assert checks.check_count("3", "--trials") == 3
    for bad in (0, -1, checks.MAX_COUNT + 1, "1e3", 2.0):
        with pytest.raises(ValueError, match=r"^--trials must be an integer from 1 to 10000"):
            checks.check_count(bad, "--trials")


# ---------------------------------------------------------------------------- every command, at the CLI

@pytest.mark.parametrize("argv, message", [
    (["list", "nnUNetTrainerBogus"], "'nnUNetTrainerBogus' is neither a trainer of nnunet-polydice nor one nnU-Net"),
    (["list", "nnUNetTrainerPolydice"], "Did you mean 'nnUNetTrainerPolyDice'?"),
    (["list", "os"], "'os' is neither a trainer"),
])
def test_list_of_an_unknown_name_is_one_sentence(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-polydice list: error: ") and message in err and err.count("\n") == 1


def test_list_describes_nnunets_own_trainers(capsys):
    assert main(["list", "--json", "nnUNetTrainer", "nnUNetTrainerDiceLoss_5ep2it"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["family"], r["formula"]) for r in rows] == [
        ("nnUNetTrainer", "(nnU-Net's)", "CE + soft Dice (nnU-Net's default)"),
        ("nnUNetTrainerDiceLoss_5ep2it", "(nnU-Net's)", "soft Dice (nnU-Net's), 5 epochs x 2 iterations")]


@pytest.mark.parametrize("name, why", [
    ("os", "names no nnU-Net trainer class"), ("torch", "names no nnU-Net trainer class"),
    ("nnUNetDataLoader", "names no nnU-Net trainer class"), ("nnUNetTrainerBogus", "is not found"),
])
def test_doctor_says_why_a_name_is_no_trainer(capsys, name, why):
    assert main(["doctor", name]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {name}: trainer {name!r} {why}" in out and "Traceback" not in out


@pytest.mark.parametrize("argv", [["list"], ["list", "--json"]])
def test_a_closed_pipe_ends_quietly(argv):
    tool = Path(sys.executable).parent / "nnunet-polydice"
    proc = subprocess.Popen([str(tool), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()   # the reader is gone before the first line is written, as with `| head` at its end
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("argv", [["list"], ["datasets"]])
def test_stdout_on_a_full_device_is_one_sentence_on_stderr(argv):
    tool = Path(sys.executable).parent / "nnunet-polydice"
    with open("/dev/full", "w") as full:
        proc = subprocess.run([str(tool), *argv], stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (f"nnunet-polydice {argv[0]}: error: cannot write to standard output (No space left on "
                           f"device).\n")


def test_with_stderr_closed_the_error_sentence_stays_out_of_stdout():
    tool = Path(sys.executable).parent / "nnunet-polydice"
    proc = subprocess.run(["sh", "-c", f"'{tool}' list nnUNetTrainerBogus 2>&-"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and proc.stdout == ""


def test_a_path_the_system_refuses_after_the_checks_is_one_sentence(monkeypatch, capsys, tmp_path):
    """The safety net behind the checks: an OSError of any command is its file, the system's words and a hint."""
    from nnunet_polydice.cli import catalogue

    def refused(args):
        raise OSError(28, "No space left on device", str(tmp_path / "table.md"))

    monkeypatch.setattr(catalogue, "run", refused)
    assert main(["list"]) == 1
    err = capsys.readouterr().err
    assert err == (f"nnunet-polydice list: error: {tmp_path / 'table.md'}: No space left on device. Free some space "
                   f"(or write elsewhere) and run the command again.\n")


@pytest.mark.parametrize("argv, option, shown", [
    (["compare", "1", "2d", "--seeds", "0", "--seeds", "1"], "--seeds", "(0, then 1)"),
    (["sweep", "1", "2d", "--seeds", "0", "1", "--seeds", "2"], "--seeds", "(0 1, then 2)"),
    (["plot-shape", "--out", "a.png", "--out", "b.png"], "--out", "(a.png, then b.png)"),
    (["add-config", "1", "--stages", "3", "--stages", "4"], "--stages", "(3, then 4)"),
])
def test_an_option_given_twice_is_refused_not_half_dropped(capsys, tmp_path, monkeypatch, argv, option, shown):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and list(tmp_path.iterdir()) == []
    assert (f"error: argument {option}: given more than once {shown}; give it once, with all its values"
            in capsys.readouterr().err)


@pytest.mark.parametrize("argv, says", [
    (["compare", "1", "2d", "--seeds", "9" * 5000], "--seeds must be an integer from 0 to 4294967295 (got a number "
                                                    "of 5000 digits)."),
    (["compare", "1", "2d", "--bootstrap", "9" * 5000], "--bootstrap must be an integer from 100 to 1000000 (got a "
                                                        "number of 5000 digits)."),
    (["tune", "1", "2d", "--trials", "9" * 5000], "--trials must be an integer from 1 to 10000 (got a number of 5000 "
                                                  "digits)."),
    (["tune", "1", "2d", "--grace", "9" * 5000], "--grace must be an integer from 6 to 86400 (got a number of 5000 "
                                                 "digits)."),
    (["demo", "--seed", "9" * 5000], "--seed must be an integer from 0 to 4294967295 (got a number of 5000 digits)."),
    (["demo", "--fold", "9" * 5000], "--fold must be an integer from 0 to 4 (got a number of 5000 digits)."),
])
def test_integers_past_pythons_conversion_limit_name_their_option(capsys, tmp_path, monkeypatch, argv, says):
    monkeypatch.chdir(tmp_path)
    for key in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(key, str(tmp_path / key))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "4300" not in err and len(err) < 500


def test_no_help_shows_a_doubled_percent_sign(capsys):
    """argparse %-formats help strings but not descriptions: a '%%' in a description is shown as it is."""
    from nnunet_polydice.cli import COMMANDS

    for command in COMMANDS:
        with pytest.raises(SystemExit):
            main([command.replace("_", "-").replace("catalogue", "list"), "--help"])
        out = capsys.readouterr().out
        assert "usage: nnunet-polydice" in out and "%%" not in out, command


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    from nnunet_polydice.cli import catalogue

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalogue, "run", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "nnunet-polydice list: interrupted.\n"  # no blank line: not a terminal


def test_ctrl_c_on_a_terminal_first_ends_the_line_of_its_echoed_caret_c(monkeypatch):
    import pty
    import select

    from nnunet_polydice.cli import catalogue

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalogue, "run", interrupted)
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as terminal, os.fdopen(leader, "rb", buffering=0) as screen:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert main(["list"]) == 130
        expected = b"\r\nnnunet-polydice list: interrupted.\r\n"
        shown = b""
        while len(shown) < len(expected) and select.select([screen], [], [], 5)[0]:  # a pty may hand it over
            shown += screen.read(200)                                                  # in pieces
        assert shown == expected


@pytest.fixture()
def planned(tmp_path, monkeypatch):
    """nnU-Net's three folders with one planned dataset (configuration '2d', 2 splits), nothing trained."""
    raw, pre, res = (tmp_path / n for n in ("raw", "pre", "res"))
    ds = pre / "Dataset991_Checks"
    for folder in (raw / ds.name, ds, res / ds.name):
        folder.mkdir(parents=True)
    (ds / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}}}))
    (ds / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "a": 1}}))
    (ds / "splits_final.json").write_text(json.dumps([{"train": [], "val": []}] * 2))
    for key, value in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(key, str(value))
    return tmp_path


@pytest.mark.parametrize("text", ["garbage\n", "\x00\x01binary", '{"a": 1}\n'])
@pytest.mark.parametrize("given", [False, True])
def test_tune_status_says_a_file_that_is_no_journal_is_none(planned, capsys, text, given):
    journal = planned / "res" / "Dataset991_Checks" / "polydice_tune.journal"
    journal.write_text(text)
    option = ["--storage", f"journal://{journal}"] if given else []
    for extra in (["--status"], ["--schedule", "1x1", "--K", "2", "--epsilon", "1", "--trials", "1"]):
        assert main(["tune", "991", "2d", *option, *extra]) == 2
        err = capsys.readouterr().err
        assert "exists and it is not an Optuna journal" in err and "has no study" not in err
        assert ("--storage 'journal:" if given else "the default storage 'journal:") in err
        assert journal.read_text() == text
    assert sorted(p.name for p in journal.parent.iterdir()) == ["polydice_tune.journal"]


@pytest.mark.parametrize("argv, env, option", [
    (["--raw", "{tmp}/missing/deep/x"], {}, "--raw"),
    (["--raw", "{tmp}/missing/x"], {}, "--raw"),
    ([], {"nnUNet_raw": "{tmp}/missing/raw"}, r"nnUNet_raw \(or --raw\)"),
    (["--splits", "--raw", "{tmp}/raw", "--preprocessed", "{tmp}/missing/pre"], {}, "--preprocessed"),
])
def test_datasets_write_makes_no_chain_of_folders(tmp_path, monkeypatch, capsys, argv, env, option):
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(tmp=tmp_path))
    (tmp_path / "raw").mkdir()
    assert main(["datasets", "write", "731", "--variant", "tiny", *(a.format(tmp=tmp_path) for a in argv)]) == 2
    assert re.search(rf"^nnunet-polydice datasets: error: {option} \S+: its parent folder {tmp_path}/missing\S* does "
                     r"not exist; give an existing folder", capsys.readouterr().err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"] and not any((tmp_path / "raw").iterdir())


@pytest.mark.parametrize("name", ["nnUNetPlans", "nnUNetResEncUNetMPlans", "my-plans.v2", "x" * 128])
def test_plain_plans_identifiers(name):
    assert checks.check_plans_name(name) == name


@pytest.mark.parametrize("command", [["sweep", "991", "2d", "--K", "2", "--epsilon", "1", "--dry-run"],
                                     ["compare", "991", "2d"], ["curves", "991", "2d"], ["add-config", "991"],
                                     ["tune", "991", "2d", "--status"]])
@pytest.mark.parametrize("plans", ["../../etc", "a__b", "/abs/plans", ""])
def test_a_plans_identifier_that_is_a_path_is_refused_by_every_command(planned, capsys, command, plans):
    before = sorted(p.relative_to(planned) for p in planned.rglob("*"))
    assert main([*command, "-p", plans]) == 2
    assert f"-p/--plans {plans!r} is not a plans identifier" in capsys.readouterr().err
    assert sorted(p.relative_to(planned) for p in planned.rglob("*")) == before


def test_numbers_and_counts_in_other_scripts_digits_are_refused():
    """Python's float() and int() read '１２' (fullwidth) and '٧' (Arabic-Indic) as 12 and 7: values nobody typed."""
    from nnunet_polydice.experiments import racing, shape
    from nnunet_polydice.loss.settings import validate_poly

    assert checks.check_number(" -1e-3 ", "--epsilon") == -0.001 and checks.check_number(2, "--at") == 2.0
    for text in ("\uff11\uff12", "\u0667", "inf", "nan", "", True):
        with pytest.raises(ValueError, match=r"--epsilon must be a finite number written in ASCII"):
            checks.check_number(text, "--epsilon")
    for text in ("\uff11\uff12", "\u0667"):
        with pytest.raises(ValueError, match=r"--seed must be an integer from 0 to 4294967295"):
            checks.check_seed(text)
        with pytest.raises(ValueError, match=r"K must be a positive integer"):
            validate_poly(text, 0.0)
    with pytest.raises(ValueError, match=r"no larger than 1000, or inf for the full series \(got a number of 5000"):
        validate_poly("9" * 5000, 0.0)
    assert racing.parse_budget("500", grid=1000, run=10) == 500
    with pytest.raises(ValueError, match=r"plot-shape draws epsilon from -1 to 1000 \(got 1e\+308\)"):
        shape.parse_setting("K=2,eps=1e308")
    assert shape.parse_setting("K=2,eps=1000").epsilon == 1000.0
    # the same rule in every other reader of a typed number: plot-shape's settings, ranges, pruner keywords
    with pytest.raises(ValueError, match=r"epsilon must be a number \(got '\uff11'\)"):
        shape.parse_setting("K=2,eps=\uff11")
    with pytest.raises(ValueError, match=r"a range is START:STOP:STEP with three numbers"):
        checks.check_range("0:\uff12:0.5", "--epsilon", Decimal("0.01"))
    from nnunet_polydice.integration import pruning
    with pytest.raises(ValueError, match=r"n_startup_trials takes a number written in ASCII"):
        pruning.parse_pruner("median:n_startup_trials=\uff11\uff12")
