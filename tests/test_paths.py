"""experiments/paths.py: paths a command cannot write get a sentence (option, path, what is allowed) before any
work, never an [Errno]. Real folders in tmp_path, and /proc where Linux has one."""

from pathlib import Path

import pytest

from nnunet_polydice.cli import main
from nnunet_polydice.experiments.paths import ensure_new_file, ensure_writable_dir

PROC = Path("/proc")
needs_proc = pytest.mark.skipif(not (PROC / "self").is_dir(), reason="needs Linux's /proc")


def _tree(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


def test_writable_folders_existing_or_to_be_created_pass_and_nothing_is_left_behind(tmp_path):
    (tmp_path / "there").mkdir()
    assert ensure_writable_dir(tmp_path / "there", "--out") == tmp_path / "there"
    assert ensure_writable_dir(str(tmp_path / "new" / "deeper"), "--out") == tmp_path / "new" / "deeper"
    assert _tree(tmp_path) == [Path("there")]   # the write test removed its folder; nothing was created


def test_a_file_where_a_folder_is_wanted(tmp_path):
    (tmp_path / "f.txt").write_text("mine")
    with pytest.raises(ValueError, match=rf"^--out {tmp_path / 'f.txt'} is a file, not a folder; give a folder"):
        ensure_writable_dir(tmp_path / "f.txt", "--out")
    with pytest.raises(ValueError, match=rf"^--raw {tmp_path / 'f.txt' / 'x'} cannot be created: {tmp_path / 'f.txt'} "
                                         r"is a file, not a folder"):
        ensure_writable_dir(tmp_path / "f.txt" / "x", "--raw")


@needs_proc
def test_a_folder_nothing_can_be_created_in():
    # as root, os.access(/proc, W_OK) is true, yet nothing can be made there: the check tries
    with pytest.raises(ValueError, match=r"^--raw /proc/x cannot be written: nothing can be created in /proc, the "
                                         r"nearest existing folder above it \(.+\); give a folder you can write to\.$"):
        ensure_writable_dir("/proc/x", "--raw")


def test_new_files(tmp_path):
    assert ensure_new_file(tmp_path / "s.sh", "--slurm") == tmp_path / "s.sh"
    (tmp_path / "s.sh").write_text("mine")
    with pytest.raises(FileExistsError, match=r"exists; nnunet-polydice never overwrites a file"):
        ensure_new_file(tmp_path / "s.sh", "--slurm")
    with pytest.raises(FileExistsError, match=r"is a folder; give the name of a new file"):
        ensure_new_file(tmp_path, "--slurm")
    with pytest.raises(ValueError, match=rf"^--slurm {tmp_path / 'no' / 's.sh'}: the folder {tmp_path / 'no'} does "
                                         r"not exist; create it first or give a file in an existing folder\.$"):
        ensure_new_file(tmp_path / "no" / "s.sh", "--slurm")
    with pytest.raises(ValueError, match=r"is a file, not a folder"):
        ensure_new_file(tmp_path / "s.sh" / "t.sh", "--slurm")
    assert (tmp_path / "s.sh").read_text() == "mine" and _tree(tmp_path) == [Path("s.sh")]


@needs_proc
def test_datasets_write_into_a_folder_that_cannot_be_written_is_one_sentence(capsys):
    assert main(["datasets", "write", "colin27", "--variant", "tiny", "--raw", "/proc/x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nnunet-polydice datasets: error: --raw /proc/x cannot be written: nothing can be created "
                          "in /proc") and "[Errno" not in err and len(err.strip().splitlines()) == 1


def test_datasets_write_checks_the_preprocessed_folder_before_writing_anything(tmp_path, capsys):
    raw, pre = tmp_path / "raw", tmp_path / "pre.txt"
    pre.write_text("not a folder")
    assert main(["datasets", "write", "colin27", "--variant", "tiny", "--raw", str(raw), "--splits",
                 "--preprocessed", str(pre)]) == 2
    assert f"--preprocessed {pre} is a file, not a folder" in capsys.readouterr().err
    assert not raw.exists()   # refused before the raw data were written


def test_compare_out_naming_an_existing_file_is_refused(tmp_path, capsys, monkeypatch):
    ds = "Dataset042_Toy"
    for k in ("raw", "pre", "res"):
        (tmp_path / k / ds).mkdir(parents=True)
    monkeypatch.setenv("nnUNet_raw", str(tmp_path / "raw"))
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path / "pre"))
    monkeypatch.setenv("nnUNet_results", str(tmp_path / "res"))
    out = tmp_path / "table.md"
    out.write_text("my notes\n")
    assert main(["compare", "42", "2d", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"nnunet-polydice compare: error: --out {out} is a file, not a folder; give a folder (it "
                           f"is created if needed).")
    assert out.read_text() == "my notes\n"

