"""The link route for nnunetv2 2.5-2.7: `link` writes one module that records itself, `unlink` removes exactly
that, every bad input is one sentence with nothing of nnU-Net's touched, and the linked module hands nnU-Net's
by-name lookup our trainers (and, with the package gone, fails with a sentence for our names only).

All in a tmp folder standing in for nnU-Net's trainer folder: the tests never write into the installed nnU-Net.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_polydice.cli import doctor
from nnunet_polydice.cli import main as cli_main
from nnunet_polydice.integration import link as linking
from nnunet_polydice.integration.pruning import epoch_signal, logger_reader

OLD, NEW = "2.7.0", "2.8.1"


@pytest.fixture
def folder(tmp_path) -> Path:
    """A stand-in for nnunetv2/training/nnUNetTrainer, with one file of nnU-Net's own."""
    f = tmp_path / "nnUNetTrainer"
    f.mkdir()
    (f / "__init__.py").write_text("")
    (f / "nnUNetTrainer.py").write_text("# nnU-Net's own\n")
    return f


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def test_link_writes_one_module_that_records_its_hash(folder):
    before = _snapshot(folder)
    state, what = linking.link(folder, OLD)
    assert what == "written" and state.status == "linked" and state.path == folder / "nnunet_polydice_link.py"
    marker, record, body = state.path.read_text().split("\n", 2)
    assert record.endswith(hashlib.sha256(body.encode()).hexdigest()) and state.sha256 in record
    after = _snapshot(folder)
    assert set(after) - set(before) == {Path("nnunet_polydice_link.py")}
    assert all(after[k] == v for k, v in before.items())


def test_link_twice_writes_nothing(folder):
    linking.link(folder, OLD)
    before = _snapshot(folder)
    state, what = linking.link(folder, OLD)
    assert what == "unchanged" and state.status == "linked" and _snapshot(folder) == before


@pytest.mark.parametrize("version", ["2.8.0", "2.8.1", "2.10.0"])
def test_link_on_2_8_or_later_is_not_needed(folder, version):
    before = _snapshot(folder)
    with pytest.raises(linking.LinkError, match=r"no link needed: nnunetv2 .* reads nnUNet_extTrainer"):
        linking.link(folder, version)
    assert _snapshot(folder) == before


def test_link_refuses_a_foreign_file_of_the_same_name(folder):
    (folder / linking.LINK_FILE).write_text("class Mine: pass\n")
    before = _snapshot(folder)
    with pytest.raises(linking.LinkError, match="was not written by 'nnunet-polydice link'; nothing was written"):
        linking.link(folder, OLD)
    assert _snapshot(folder) == before


def test_link_without_write_access_is_a_sentence(folder, monkeypatch):
    monkeypatch.setattr(linking.os, "access", lambda path, mode: False)  # root ignores chmod: ask os.access
    with pytest.raises(linking.LinkError, match="no write access to nnU-Net's trainer folder .*nothing was written"):
        linking.link(folder, OLD)
    assert not (folder / linking.LINK_FILE).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_link_into_a_read_only_folder(folder):
    folder.chmod(0o555)
    try:
        with pytest.raises(linking.LinkError, match="no write access"):
            linking.link(folder, OLD)
    finally:
        folder.chmod(0o755)


def test_unlink_removes_exactly_the_link_and_its_bytecode(folder):
    linking.link(folder, OLD)
    cache = folder / "__pycache__"
    cache.mkdir()
    pyc = cache / f"nnunet_polydice_link.cpython-{sys.version_info[0]}{sys.version_info[1]}.pyc"
    pyc.write_bytes(b"x")
    (cache / "nnUNetTrainer.cpython-311.pyc").write_bytes(b"nnU-Net's")
    before = _snapshot(folder)
    state, removed = linking.unlink(folder)
    assert removed == [folder / linking.LINK_FILE, pyc]
    assert set(before) - set(_snapshot(folder)) == {Path(linking.LINK_FILE), pyc.relative_to(folder)}
    assert (cache / "nnUNetTrainer.cpython-311.pyc").read_bytes() == b"nnU-Net's"


def test_unlink_when_nothing_is_linked(folder):
    before = _snapshot(folder)
    with pytest.raises(linking.LinkError, match="nothing is linked.*nothing was removed"):
        linking.unlink(folder)
    assert _snapshot(folder) == before


def test_unlink_refuses_an_edited_link_and_a_foreign_file(folder):
    state, _ = linking.link(folder, OLD)
    state.path.write_text(state.path.read_text() + "# my own change\n")
    before = _snapshot(folder)
    with pytest.raises(linking.LinkError, match="was edited since .*nothing was removed"):
        linking.unlink(folder)
    with pytest.raises(linking.LinkError, match="edited since"):
        linking.link(folder, OLD)
    assert _snapshot(folder) == before
    state.path.write_text("print('mine')\n")
    with pytest.raises(linking.LinkError, match="was not written by 'nnunet-polydice link'; nothing was removed"):
        linking.unlink(folder)
    assert state.path.read_text() == "print('mine')\n"


def test_cli_link_and_unlink_print_what_they_did(folder, monkeypatch, capsys):
    monkeypatch.setattr(linking, "nnunet_trainer_folder", lambda: folder)
    monkeypatch.setattr(linking, "nnunet_version", lambda: OLD)
    assert cli_main(["link"]) == 0
    out = capsys.readouterr().out
    assert str(folder / linking.LINK_FILE) in out and "pip uninstall nnunet-polydice' cannot remove it" in out
    assert cli_main(["link"]) == 0 and "Already linked" in capsys.readouterr().out
    assert cli_main(["unlink"]) == 0 and "nothing else was touched" in capsys.readouterr().out
    assert cli_main(["unlink"]) == 2 and "nothing is linked" in capsys.readouterr().err
    monkeypatch.setattr(linking, "nnunet_version", lambda: NEW)
    assert cli_main(["link"]) == 2 and "no link needed" in capsys.readouterr().err
    assert not (folder / linking.LINK_FILE).exists()


def test_doctor_names_the_route_and_what_to_run(folder, monkeypatch, capsys):
    monkeypatch.setattr(linking, "nnunet_trainer_folder", lambda: folder)
    problems = doctor.route_problems(OLD, hook=True, opted_out=False)
    assert "route         none" in capsys.readouterr().out and "nnunet-polydice link" in problems[0]
    linking.link(folder, OLD)
    assert doctor.route_problems(OLD, hook=True, opted_out=False) == []
    assert "route         link" in capsys.readouterr().out
    problems = doctor.route_problems(NEW, hook=True, opted_out=False)
    assert any("nnunet-polydice unlink" in p for p in problems)  # left over from before an upgrade
    assert doctor.nnunet_version_problem("2.5.0") is None and "too old" in doctor.nnunet_version_problem("2.4.2")
    # an edited (or foreign) file of the link's name on 2.8: nnU-Net imports it first at every lookup
    path = folder / linking.LINK_FILE
    path.write_text(path.read_text() + "# my own change\n")
    for text, what in ((path.read_text(), "edited since 'nnunet-polydice link' wrote it"),
                       ("print('mine')\n", "not written by nnunet-polydice")):
        path.write_text(text)
        problems = doctor.route_problems(NEW, hook=True, opted_out=False)
        assert [p for p in problems if str(path) in p] == [
            f"{path} is {what}; nnunetv2 {NEW} does not need a link, and imports this file at every trainer lookup, "
            f"before nnUNet_extTrainer: look at it and delete it by hand (nnunet-polydice unlink removes only an "
            f"unedited link)."]


def test_nothing_writes_into_nnunet_without_the_command(monkeypatch, capsys):
    real = linking.nnunet_trainer_folder()
    before = sorted(p.name for p in real.iterdir())
    cli_main(["doctor", "nnUNetTrainerPolyDice"])
    capsys.readouterr()
    assert sorted(p.name for p in real.iterdir()) == before and not (real / linking.LINK_FILE).exists()


LOOKUP = """
import sys
from nnunetv2.utilities.find_class_by_name import recursive_find_python_class
sys.path.insert(0, sys.argv[1])
if sys.argv[2] == 'gone':
    for name in [m for m in sys.modules if m.startswith('nnunet_polydice')]:
        del sys.modules[name]
    sys.modules['nnunet_polydice'] = None  # the package uninstalled, the link left behind
for name in sys.argv[3:]:
    cls = recursive_find_python_class(sys.argv[1] + '/fakenn/trainers', name, 'fakenn.trainers')
    print(name, '->', getattr(cls, '__name__', None), getattr(getattr(cls, 'polyloss_spec', None), 'K', None))
"""


@pytest.fixture
def fake_nnunet(tmp_path) -> Path:
    """A package ``fakenn.trainers`` laid out as nnU-Net's trainer folder, with a trainer of its own that sorts
    after the link (so the lookup imports the link first) and the link written into it."""
    trainers = tmp_path / "fakenn" / "trainers"
    trainers.mkdir(parents=True)
    (tmp_path / "fakenn" / "__init__.py").write_text("")
    (trainers / "__init__.py").write_text("")
    (trainers / "zz_own.py").write_text("class nnUNetTrainerOwn:\n    pass\n")
    linking.link(trainers, OLD)
    return tmp_path


def _lookup(root: Path, mode: str, *names: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LOOKUP, str(root), mode, *names], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_the_linked_module_hands_nnunet_every_name_of_the_grammar(fake_nnunet):
    proc = _lookup(fake_nnunet, "installed", "nnUNetTrainerPolyDice_K3_eps0p5", "nnUNetTrainerPolyDiceCE_20ep50it",
                   "nnUNetTrainerOwn", "nnUNetTrainerNoSuchThing")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split("\n")[:4] == [
        "nnUNetTrainerPolyDice_K3_eps0p5 -> nnUNetTrainerPolyDice_K3_eps0p5 3",
        "nnUNetTrainerPolyDiceCE_20ep50it -> nnUNetTrainerPolyDiceCE_20ep50it 2",
        "nnUNetTrainerOwn -> nnUNetTrainerOwn None",
        "nnUNetTrainerNoSuchThing -> None None"]


def test_a_dangling_link_fails_with_a_sentence_and_spares_nnunets_own_trainers(fake_nnunet):
    proc = _lookup(fake_nnunet, "gone", "nnUNetTrainerOwn", "nnUNetTrainerNoSuchThing")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "nnUNetTrainerOwn -> nnUNetTrainerOwn None" in proc.stdout
    proc = _lookup(fake_nnunet, "gone", "nnUNetTrainerPolyDice_K3_eps0p5")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("nnU-Net trainer 'nnUNetTrainerPolyDice_K3_eps0p5' would come from nnunet-polydice")
    assert "delete the link" in proc.stderr and "nnunet_polydice_link.py" in proc.stderr


class _OldLogger:  # nnunetv2 2.5.x-2.6.x: nnUNetLogger has the dict, no get_value
    my_fantastic_logging = {"ema_fg_dice": [0.1, 0.25], "dice_per_class_or_region": [[0.2, 0.4], [0.6, 0.8]]}


def test_the_pruner_reads_the_logger_of_every_release():
    get_value = logger_reader(_OldLogger())
    assert get_value("ema_fg_dice", step=-1) == 0.25
    assert epoch_signal(get_value, None) == 0.25
    assert epoch_signal(get_value, 1) == pytest.approx(0.9 * 0.4 + 0.1 * 0.8)
