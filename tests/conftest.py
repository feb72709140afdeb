"""Shared fixtures of the integration tests: nnU-Net's real commands in subprocesses, in tmp folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def nnunet_env(work=None, **extra) -> dict:
    """os.environ without the user's nnU-Net folders and trainer path, with small process counts, and,
    with ``work``, the three nnU-Net folders under it."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("nnUNet_") or k == "NNUNET_POLYDICE_NO_HOOK")}
    env.update(nnUNet_def_n_proc="1", nnUNet_n_proc_DA="0", PYTHONWARNINGS="ignore")
    if work is not None:
        env.update(nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
                   nnUNet_results=str(work / "nnUNet_results"))
    env.update(extra)
    return env


def planned_folders(tmp_path: Path, monkeypatch, dataset: str) -> tuple[Path, Path, Path]:
    """nnU-Net's three folders (raw, pre, res) under ``tmp_path``, set in the environment (the user's trainer path
    removed), with ``dataset`` planned (plans with a configuration '2d') and nothing trained."""
    raw, pre, res = tmp_path / "raw", tmp_path / "pre", tmp_path / "res"
    (raw / dataset).mkdir(parents=True)
    (pre / dataset).mkdir(parents=True)
    (pre / dataset / "nnUNetPlans.json").write_text(json.dumps({"configurations": {"2d": {}}}))
    for k, v in (("nnUNet_raw", raw), ("nnUNet_preprocessed", pre), ("nnUNet_results", res)):
        monkeypatch.setenv(k, str(v))
    monkeypatch.delenv("nnUNet_extTrainer", raising=False)
    return raw, pre, res


def replacing(argv: list[str], extra: list[str]) -> list[str]:
    """``argv + extra``, without the options of ``argv`` (and their values) that ``extra`` gives again: an option may
    be given once."""
    given = {a for a in extra if a.startswith("--")}
    kept, skipping = [], False
    for a in argv:
        if a.startswith("-"):
            skipping = a in given
        if not skipping:
            kept.append(a)
    return kept + extra


def run(cmd, env, timeout=600, check=True, **kw) -> subprocess.CompletedProcess:
    """Run a command, capture its output; on an unexpected exit code fail with the output's tail."""
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-3000:]}")
    return proc


def wait_for(condition, what: str, bound: float = 120.0) -> None:
    """Wait until ``condition()`` holds; the bound is a hang guard only, never what a test asserts."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


#: A stand-in nnU-Net command that writes its pid to PID_FILE (atomically) and sleeps: ``.format(pid_file=...)``.
SLEEPING_STAND_IN = "#!/bin/sh\necho $$ > '{pid_file}.tmp' && mv '{pid_file}.tmp' '{pid_file}'\nexec sleep 600\n"


def sigterm_while_child_runs(argv, pid_file: Path, env=None) -> tuple[subprocess.CompletedProcess, bool]:
    """Run ``nnunet-polydice <argv>`` until the stand-in (:data:`SLEEPING_STAND_IN`) writes ``pid_file``, send it
    SIGTERM and wait for it; returns the finished command and whether the stand-in's process is still there
    (killed afterwards either way). The waits are hang guards only."""
    proc = subprocess.Popen([sys.executable, "-m", "nnunet_polydice.cli", *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    child = None
    try:
        wait_for(pid_file.is_file, f"the stand-in command of {argv[0]} to start")
        child = int(pid_file.read_text())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
        try:
            os.kill(child, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        return subprocess.CompletedProcess(argv, proc.returncode, out, err), alive
    finally:
        if proc.poll() is None:
            proc.kill()
        if child is not None:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
