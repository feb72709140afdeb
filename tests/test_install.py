"""Packaging: the wheel carries the trainers and the start-up hook, a fresh virtual environment that
already has nnunetv2 finds the trainers by name with no environment variable set, the hook keeps the
user's nnUNet_extTrainer and imports nothing heavy, and `pip uninstall` leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import nnunet_env, run

pytestmark = pytest.mark.e2e  # nnU-Net's real commands / pip in subprocesses

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(out)],
        nnunet_env(), timeout=300)
    return next(out.glob("nnunet_polydice-*.whl"))


def _see_the_running_environment(root: Path) -> None:
    """Let the new venv see the packages of the environment running the tests.

    ``--system-site-packages`` shows the *base* interpreter's packages only. When the suite itself runs
    in a virtual environment (``python -m venv env && . env/bin/activate``, then the README's commands),
    nnunetv2 and torch are in that venv, not in the base: a ``.pth`` file in the new venv adds the
    running environment's site-packages (with its own ``.pth`` files, as ``--system-site-packages``
    does for the base) after the new venv's own, so the wheel installed there still comes first.
    """
    if sys.prefix == sys.base_prefix:
        return
    outer = {sysconfig.get_paths()[key] for key in ("purelib", "platlib")}
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    inner = subprocess.run([str(root / "bin" / "python"), "-c", code],
                           capture_output=True, text=True, check=True).stdout.strip()
    lines = [f"import site; site.addsitedir({path!r})" for path in sorted(outer)]
    (Path(inner) / "zz_outer_environment.pth").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    """A new virtual environment that sees nnunetv2 and torch of the environment running the tests (the
    base interpreter's or the activated venv's), with the wheel installed."""
    root = tmp_path_factory.mktemp("venv") / "env"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], nnunet_env())
    _see_the_running_environment(root)
    run([str(root / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
         str(wheel)], nnunet_env())
    return root


def test_wheel_carries_trainers_hook_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "nnunet_polydice/trainers/nnunet_polydice_trainers.py" in names
    assert "nnunet_polydice.pth" in names and "_nnunet_polydice_hook.py" in names
    assert "nnunet_polydice/data/colin27_aal_coronal.npz" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[nnunetv2.trainers]" in text and "nnUNetTrainerPolyDice_K3_eps0p5" in text


FIND = """
import json, sys
from nnunetv2.run.run_training import recursive_find_trainer_class_by_name  # the lookup nnUNetv2_train uses
out = {}
for name in sys.argv[1:]:
    cls = recursive_find_trainer_class_by_name(name)
    spec = cls.polyloss_spec
    out[name] = {"file": sys.modules["nnunet_polydice"].__file__, "K": str(spec.K), "eps": spec.epsilon}
print("RESULT" + json.dumps(out))
"""


def _result(proc) -> dict:
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT"):])


def test_fresh_venv_resolves_trainers_without_any_variable(venv):
    env = nnunet_env()
    assert "nnUNet_extTrainer" not in env
    proc = run([str(venv / "bin" / "python"), "-c", FIND, "nnUNetTrainerPolyDice_K3_eps0p5",
                "nnUNetTrainerPolyDiceCE_Kinf_epsm0p5", "nnUNetTrainerPolyDice_K7_eps0p25"], env, cwd=venv)
    got = _result(proc)
    for info in got.values():
        assert info["file"].startswith(str(venv))  # the installed copy, not the checkout
    assert got["nnUNetTrainerPolyDice_K7_eps0p25"] == {"file": got["nnUNetTrainerPolyDice_K7_eps0p25"]["file"],
                                                       "K": "7", "eps": 0.25}
    assert got["nnUNetTrainerPolyDiceCE_Kinf_epsm0p5"]["K"] == "inf"


def test_entry_points_load_in_the_venv(venv):
    code = ("from importlib.metadata import entry_points\n"
            "eps = entry_points(group='nnunetv2.trainers')\n"
            "names = sorted(e.name for e in eps if e.value.startswith('nnunet_polydice'))\n"
            "cls = next(e for e in eps if e.name == 'nnUNetTrainerPolyDice_K2_eps0p5').load()\n"
            "print('RESULT' + __import__('json').dumps([len(names), cls.__name__, cls.polyloss_spec.epsilon]))")
    got = _result(run([str(venv / "bin" / "python"), "-c", code], nnunet_env(), cwd=venv))
    assert got == [48, "nnUNetTrainerPolyDice_K2_eps0p5", 0.5]


HOOK = "import os, sys; print('RESULT' + __import__('json').dumps([os.environ.get('nnUNet_extTrainer'), " \
       "'torch' in sys.modules, 'nnunetv2' in sys.modules]))"


def test_hook_appends_after_the_users_value_and_imports_nothing_heavy(venv, tmp_path):
    python = str(venv / "bin" / "python")
    folder = str(venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
                 / "nnunet_polydice" / "trainers")
    ext, torch_loaded, nnunet_loaded = _result(run([python, "-c", HOOK], nnunet_env()))
    assert ext == folder and not torch_loaded and not nnunet_loaded
    mine = str(tmp_path / "my_trainers")
    ext, _, _ = _result(run([python, "-c", HOOK], nnunet_env(nnUNet_extTrainer=mine)))
    assert ext == os.pathsep.join([mine, folder])
    ext, _, _ = _result(run([python, "-c", HOOK], nnunet_env(nnUNet_extTrainer=os.pathsep.join([mine, folder]))))
    assert ext == os.pathsep.join([mine, folder])  # not added twice
    ext, _, _ = _result(run([python, "-c", HOOK], nnunet_env(NNUNET_POLYDICE_NO_HOOK="1")))
    assert ext is None


def test_cli_doctor_and_list_in_the_venv(venv):
    env = nnunet_env()
    doctor = run([str(venv / "bin" / "nnunet-polydice"), "doctor", "nnUNetTrainerPolyDice_K2_eps1",
                  "nnUNetTrainerPolyDice_K0_eps1"], env, check=False, cwd=venv)
    assert doctor.returncode == 1
    assert "ok   nnUNetTrainerPolyDice_K2_eps1" in doctor.stdout
    assert "FAIL nnUNetTrainerPolyDice_K0_eps1" in doctor.stdout and "K must be a positive integer" in doctor.stdout
    listing = run([str(venv / "bin" / "nnunet-polydice"), "list", "--json"], env, cwd=venv)
    rows = json.loads(listing.stdout)
    assert len(rows) == 48
    row = next(r for r in rows if r["name"] == "nnUNetTrainerPolyDiceCE_Kinf_epsm0p5")
    assert (row["family"], row["K"], row["epsilon"]) == ("nnUNetTrainerPolyDiceCE", "inf", -0.5)
    bad = run([str(venv / "bin" / "nnunet-polydice"), "list", "nnUNetTrainerPolyDice_K2_epsm2"], env, check=False)
    assert bad.returncode == 2 and "epsilon must be >= -1" in bad.stderr


def test_old_nnunet_gets_a_clear_message():
    from nnunet_polydice.cli.doctor import nnunet_version_problem

    assert "needs nnunetv2 >= 2.5" in nnunet_version_problem("2.4.2")
    assert all(nnunet_version_problem(v) is None for v in ("2.5.0", "2.6.4", "2.7.0", "2.8.1", "2.10.0"))
    assert "not installed" in nnunet_version_problem(None)


def test_uninstall_leaves_nothing(tmp_path, wheel):
    root = tmp_path / "env"
    run([sys.executable, "-m", "venv", "--system-site-packages", str(root)], nnunet_env())
    pip = [str(root / "bin" / "python"), "-m", "pip"]
    run([*pip, "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)], nnunet_env())
    site = next(root.glob("lib/python*/site-packages"))
    assert (site / "nnunet_polydice.pth").exists()
    run([*pip, "uninstall", "-y", "nnunet-polydice"], nnunet_env())
    left = [p.name for p in site.iterdir() if "polydice" in p.name.lower()]
    assert left == []
    assert not (root / "bin" / "nnunet-polydice").exists()
    ext, _, _ = _result(run([str(root / "bin" / "python"), "-c", HOOK], nnunet_env()))
    # the system install (if any) may still register its own folder, never the removed one
    assert ext is None or str(root) not in ext
