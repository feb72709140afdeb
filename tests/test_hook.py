"""NNUNET_POLYDICE_NO_HOOK: only a true value (1, true, yes; stripped, any case) switches the start-up hook off,
and the hook (which may import only os) and ``doctor`` read it the same way.

The hook file of this checkout runs as installed: copied into a folder beside a ``nnunet_polydice/trainers``
folder, imported by a fresh ``python -S`` (no site, so the installed copy of the hook does not run first)."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nnunet_polydice.cli import main
from nnunet_polydice.integration import locate

HOOK = Path(__file__).resolve().parents[1] / "startup" / "_nnunet_polydice_hook.py"
OFF = ["1", "true", "TRUE", "yes", "Yes", " 1 ", " true\n"]
ON = [None, "", " ", "0", "false", "False", "no", "NO", "off", "2", "y", "truthy"]


def _hook_constant_and_imports():
    tree = ast.parse(HOOK.read_text())
    values = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              and any(getattr(t, "id", None) == "_OPT_OUT_VALUES" for t in n.targets)]
    imports = [a.name for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in getattr(n, "names", [])]
    return values, imports


def test_the_hook_and_the_package_share_one_set_of_opt_out_values():
    values, imports = _hook_constant_and_imports()
    assert values == [locate.HOOK_OPT_OUT_VALUES] == [("1", "true", "yes")]
    assert imports == ["os"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    shutil.copy(HOOK, root / HOOK.name)
    (root / "nnunet_polydice" / "trainers").mkdir(parents=True)
    return root


def _hook_registers(site, value) -> bool:
    env = {"PATH": "/usr/bin:/bin"}
    if value is not None:
        env[locate.HOOK_OPT_OUT] = value
    code = (f"import sys; sys.path.insert(0, {str(site)!r}); import _nnunet_polydice_hook, os, json; "
            f"print(json.dumps(os.environ.get('nnUNet_extTrainer')))")
    out = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=60).stdout
    ext = json.loads(out)
    assert ext in (None, str(site / "nnunet_polydice" / "trainers"))
    return ext is not None


@pytest.mark.parametrize("value, registers", [(v, False) for v in OFF] + [(v, True) for v in ON])
def test_only_a_true_value_switches_the_hook_off(site, value, registers):
    assert _hook_registers(site, value) is registers
    assert locate.hook_opted_out({} if value is None else {locate.HOOK_OPT_OUT: value}) is not registers


@pytest.mark.parametrize("value", ["yes", "0", "false", ""])
def test_doctor_says_what_the_hook_does(value, capsys, monkeypatch):
    monkeypatch.setenv(locate.HOOK_OPT_OUT, value)
    main(["doctor", "nnUNetTrainer"])
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("start-up hook"))
    assert line.endswith(f"(switched off by {locate.HOOK_OPT_OUT})") is (value == "yes")


@pytest.mark.parametrize("value", ["on", "off", "2", "y", "truthy", "disable"])
def test_doctor_says_a_value_that_is_neither_on_nor_off_is_not_understood(value, capsys, monkeypatch):
    monkeypatch.setenv(locate.HOOK_OPT_OUT, value)
    assert main(["doctor", "nnUNetTrainer"]) == 1
    out = capsys.readouterr().out
    assert (f"{locate.HOOK_OPT_OUT}={value!r} is not understood, so the start-up hook stays on: set it to 1, true, "
            f"yes to switch the hook off, or to 0, false, no or nothing to keep it") in out


@pytest.mark.parametrize("value", [None, *OFF, "", " ", "0", "false", "No"])
def test_documented_values_are_understood(value):
    assert locate.hook_value_problem({} if value is None else {locate.HOOK_OPT_OUT: value}) is None


@pytest.mark.parametrize("value", [b"on", b"\xff\xfe", b"1\xff", "\u00e9t\u00e9".encode()])
def test_no_value_makes_the_hook_stop_python(site, value):
    env = {b"PATH": b"/usr/bin:/bin", locate.HOOK_OPT_OUT.encode(): value, b"nnUNet_extTrainer": b"\xff:/x"}
    code = f"import sys; sys.path.insert(0, {str(site)!r}); import _nnunet_polydice_hook; print('alive')"
    proc = subprocess.run([sys.executable, "-S", "-c", code], env=env, capture_output=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"alive\n", b"")
