#!/usr/bin/env python3
"""Compatibility matrix: nnunet-polydice against each supported nnunetv2 release, run for real.

For each release: a fresh virtual environment with ``nnunetv2==X`` (and the torch pip picks for it, or
``--torch``) -> ``pip freeze`` -> ``pip install`` this package's wheel -> ``pip freeze`` again (nnunetv2 and torch
must be unchanged) -> ``nnunet-polydice link`` where the release needs it (before 2.8) -> ``doctor`` -> plan the
tiny embedded Colin27/AAL set -> ``nnUNetv2_train`` a Poly Dice trainer and nnUNetTrainer, one short epoch each
-> ``--c`` resumes each -> ``nnUNetv2_predict`` with each -> ``curves`` and ``compare`` on the results ->
``unlink``. Prints a markdown table (release x step: pass, or the error's last line) and writes it, the freezes
and every step's log under ``--work``.

    python scripts/compat_matrix.py --versions 2.5.2 2.6.4 2.7.0 2.8.1 --work /tmp/compat \\
        [--torch 2.13.0+cpu] [--find-links DIR] [--no-index] [--drop-envs]

Exit status 0 when every cell passes. CPU only; one release at a time.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET_ID, CONFIG = "731", "2d_cpu"
DATASET = "Dataset731_Colin27HippoAmyg"
TRAINERS = ("nnUNetTrainerPolyDice_1ep5it", "nnUNetTrainer_1ep5it")
STEPS = ("install keeps nnunetv2+torch", "link", "doctor", "plan", "train PolyDice", "train nnUNetTrainer",
         "--c PolyDice", "--c nnUNetTrainer", "predict PolyDice", "predict nnUNetTrainer", "curves", "compare",
         "unlink")

PREPARE = f"""
import sys
from nnunet_polydice.experiments.workspace import prepare_embedded
prepare_embedded({DATASET!r}, sys.argv[1], variant="tiny", configuration={CONFIG!r}, echo=lambda *a: None)
"""


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:3])


class Row:
    def __init__(self, version: str, work: Path):
        self.version, self.work, self.cells, self.torch = version, work, {}, "?"
        work.mkdir(parents=True, exist_ok=True)

    def run(self, step: str, cmd, env=None, timeout=1800) -> bool:
        """Run ``cmd``; the cell is 'pass' or the last line of its error output."""
        log = self.work / f"{len(self.cells):02d}_{step.replace(' ', '_').replace('+', '_').strip('-')}.log"
        start = time.time()
        try:
            proc = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=timeout)
            out, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as err:
            out, code = f"{err.stdout or ''}{err.stderr or ''}\ntimed out after {timeout} s", -1
        log.write_text(f"$ {' '.join(map(str, cmd))}\n(exit {code}, {time.time() - start:.0f} s)\n{out}")
        self.cells[step] = "pass" if code == 0 else _last_error(out, code)
        print(f"  {self.version} {step}: {self.cells[step]} ({time.time() - start:.0f} s)", flush=True)
        return code == 0


def _last_error(out: str, code: int) -> str:
    lines = [line.strip() for line in out.splitlines() if line.strip() and not line.startswith("WARNING")]
    text = lines[-1] if lines else f"exit {code}"
    return text.replace("|", "/")[:160]


def _freeze(python: Path) -> list[str]:
    out = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True)
    return sorted(out.stdout.splitlines())


def _pinned(freeze: list[str], name: str) -> str | None:
    return next((line for line in freeze if line.lower().startswith(name + "==")), None)


def _is_bare_setup(python: Path, version: str) -> bool:
    """``python`` is a venv with nnunetv2 ``version`` and without this package (a setup made earlier)."""
    if not python.exists():
        return False
    freeze = _freeze(python)
    return _pinned(freeze, "nnunetv2") == f"nnunetv2=={version}" and _pinned(freeze, "nnunet-polydice") is None


def build_wheel(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("nnunet_polydice-*.whl"):
        old.unlink()
    # without hatchling here (a bare CI interpreter), pip fetches it into an isolated build environment
    isolation = [] if importlib.util.find_spec("hatchling") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, str(REPO), "-w", str(out)],
                   check=True, capture_output=True)
    return next(out.glob("nnunet_polydice-*.whl"))


def run_release(version: str, args, wheel: Path) -> Row:
    row = Row(version, args.work / f"nnunetv2-{version}")
    env_dir = row.work / "env"
    python, bindir = env_dir / "bin" / "python", env_dir / "bin"
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip += [f"--find-links={d}" for d in args.find_links] + (["--no-index"] if args.no_index else [])
    if not (args.reuse and _is_bare_setup(python, version)):
        if env_dir.exists():
            shutil.rmtree(env_dir)
        subprocess.run([args.python, "-m", "venv", str(env_dir)], check=True)
        torch = [f"torch=={args.torch}"] if args.torch else []
        if not row.run("setup nnunetv2", [*pip, *torch, f"nnunetv2=={version}"]):  # the lab's existing setup
            row.cells = {s: "setup failed: " + row.cells["setup nnunetv2"] for s in STEPS}
            return row
        del row.cells["setup nnunetv2"]
    before = _freeze(python)
    row.torch = (_pinned(before, "torch") or "torch==?").split("==")[1]
    row.run("pip install", [*pip, wheel])
    after = _freeze(python)
    diff = "\n".join(difflib.unified_diff(before, after, "pip freeze before", "pip freeze after", lineterm=""))
    (row.work / "freeze-before.txt").write_text("\n".join(before) + "\n")
    (row.work / "freeze-after.txt").write_text("\n".join(after) + "\n")
    (row.work / "freeze.diff").write_text(diff + "\n")
    kept = all(_pinned(before, n) == _pinned(after, n) for n in ("nnunetv2", "torch"))
    changed = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    row.cells.pop("pip install")
    row.cells["install keeps nnunetv2+torch"] = "pass" if kept and not changed else f"changed: {', '.join(changed)}"

    env = {k: v for k, v in os.environ.items() if not (k.startswith("nnUNet_") or k == "VIRTUAL_ENV")}
    data = row.work / "nnunet"
    if data.exists():
        shutil.rmtree(data)
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", nnUNet_raw=str(data / "nnUNet_raw"),
               nnUNet_preprocessed=str(data / "nnUNet_preprocessed"), nnUNet_results=str(data / "nnUNet_results"),
               nnUNet_def_n_proc="1", nnUNet_n_proc_DA="0", PYTHONWARNINGS="ignore", OMP_NUM_THREADS="2")
    tool = bindir / "nnunet-polydice"
    if version_tuple(version) < (2, 8):
        row.run("link", [tool, "link"], env)
    else:  # the start-up hook is the route; link must say it is not needed and write nothing
        proc = subprocess.run([tool, "link"], env=env, capture_output=True, text=True)
        row.cells["link"] = "not needed (hook)" if proc.returncode == 2 and "no link needed" in proc.stderr \
            else _last_error(proc.stdout + proc.stderr, proc.returncode)
    row.run("doctor", [tool, "doctor", *TRAINERS], env)
    if row.run("plan", [python, "-c", PREPARE, data], env):
        images = row.work / "imagesTs"
        images.mkdir(exist_ok=True)
        for case in sorted((data / "nnUNet_raw" / DATASET / "imagesTr").glob("*_0000.nii.gz"))[:2]:
            shutil.copy(case, images / case.name)
        for name, label in zip(TRAINERS, ("PolyDice", "nnUNetTrainer")):
            train = [bindir / "nnUNetv2_train", DATASET_ID, CONFIG, "0", "-tr", name, "-device", "cpu"]
            if row.run(f"train {label}", train, env):
                row.run(f"--c {label}", [*train, "--c"], env)
                row.run(f"predict {label}", [bindir / "nnUNetv2_predict", "-i", images, "-o",
                                             row.work / f"pred_{label}", "-d", DATASET_ID, "-c", CONFIG, "-f", "0",
                                             "-tr", name, "-device", "cpu", "-npp", "1", "-nps", "1",
                                             "--disable_tta"], env)
        if all(row.cells.get(f"train {label}") == "pass" for label in ("PolyDice", "nnUNetTrainer")):
            row.run("curves", [tool, "curves", DATASET_ID, CONFIG, "--out", row.work / "curves"], env)
            row.run("compare", [tool, "compare", DATASET_ID, CONFIG, "--folds", "0", "--reference", TRAINERS[1],
                                "--bootstrap", "100", "--out", row.work / "compare"], env)
    if version_tuple(version) < (2, 8):
        row.run("unlink", [tool, "unlink"], env)
    else:
        row.cells["unlink"] = "n/a"
    for step in STEPS:
        row.cells.setdefault(step, "not run")
    return row


def table(rows: list[Row]) -> str:
    head = "| nnunetv2 (torch) | " + " | ".join(STEPS) + " |"
    lines = [head, "|" + "---|" * (len(STEPS) + 1)]
    for row in rows:
        lines.append(f"| {row.version} ({row.torch}) | " + " | ".join(row.cells[s] for s in STEPS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--versions", nargs="+", default=["2.5.2", "2.6.4", "2.7.0", "2.8.1"])
    p.add_argument("--work", type=Path, required=True, help="where the venvs, data, logs and table go")
    p.add_argument("--torch", help="pin this torch in every venv (default: what pip picks for the release)")
    p.add_argument("--find-links", nargs="*", default=[], help="extra folders of wheels for pip")
    p.add_argument("--no-index", action="store_true", help="install from --find-links only")
    p.add_argument("--reuse", action="store_true", help="keep a venv under --work that has nnunetv2==X and not "
                   "this package (made by an earlier run's setup step) instead of making it again")
    p.add_argument("--drop-envs", action="store_true", help="delete each release's venv after its row (the logs, "
                   "freezes and results stay)")
    p.add_argument("--python", default=sys.executable, help="the interpreter the venvs are made with")
    args = p.parse_args(argv)
    args.work = args.work.resolve()
    wheel = build_wheel(args.work / "wheel")
    rows = []
    for version in args.versions:
        print(f"nnunetv2 {version}", flush=True)
        start = time.time()
        rows.append(run_release(version, args, wheel))
        if args.drop_envs:  # 2 GB with the CPU torch, over 6 GB with a CUDA build from PyPI
            shutil.rmtree(args.work / f"nnunetv2-{version}" / "env", ignore_errors=True)
        print(f"  ({time.time() - start:.0f} s)", flush=True)
    text = table(rows)
    (args.work / "matrix.md").write_text(text + "\n")
    print(text)
    return 0 if all(c in ("pass", "n/a", "not needed (hook)") for r in rows for c in r.cells.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
