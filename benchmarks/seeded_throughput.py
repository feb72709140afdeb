"""Throughput of a seeded run (``_s<N>``) against the same trainer unseeded, measured in one session.

Runs ``nnUNetv2_train`` for ``<trainer>_<E>ep<I>it`` and ``<trainer>_<E>ep<I>it_s0`` alternately (``--pairs``
times each, fresh results folders), reads nnU-Net's own "Epoch time: X s" lines from the training logs (epoch 0
left out: it includes the start of the augmentation workers) and prints the median epoch time of each and their
ratio. The issue's target: seeded within 5 % of unseeded on a CPU.

    python benchmarks/seeded_throughput.py WORK 731 2d_cpu --fold 3 --schedule 5x20 --pairs 3

``WORK`` holds nnUNet_raw and nnUNet_preprocessed (for example a demo's work folder); results go to
``WORK/throughput_results`` (removed first if this script made it before). ``nnUNet_n_proc_DA`` is taken from the
environment (nnU-Net's default when unset).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

EPOCH_TIME = re.compile(r"Epoch time: ([0-9.]+) s")


def epoch_times(results: Path, trainer: str) -> list[float]:
    logs = sorted(results.glob(f"*/{trainer}__*/fold_*/training_log_*.txt"))
    return [float(m.group(1)) for log in logs for m in EPOCH_TIME.finditer(log.read_text())][1:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("dataset")
    p.add_argument("configuration")
    p.add_argument("--fold", default="0")
    p.add_argument("--trainer", default="nnUNetTrainer")
    p.add_argument("--schedule", default="5x20", help="ExI (default 5x20)")
    p.add_argument("--pairs", type=int, default=3)
    args = p.parse_args(argv)
    epochs, iterations = (int(x) for x in args.schedule.split("x"))
    names = {"unseeded": f"{args.trainer}_{epochs}ep{iterations}it"}
    names["seeded"] = names["unseeded"] + "_s0"
    results = args.work / "throughput_results"
    marker = results / ".seeded_throughput"
    if results.exists():
        if not marker.exists():
            sys.exit(f"{results} exists and was not made by this script; move it away first.")
        shutil.rmtree(results)
    times = {k: [] for k in names}
    bin_dir = Path(sys.executable).parent
    for pair in range(args.pairs):
        for kind, name in names.items():
            run_dir = results / f"{kind}{pair}"
            run_dir.mkdir(parents=True)
            marker.touch()
            env = dict(os.environ, nnUNet_raw=str(args.work / "nnUNet_raw"),
                       nnUNet_preprocessed=str(args.work / "nnUNet_preprocessed"), nnUNet_results=str(run_dir))
            subprocess.run([str(bin_dir / "nnUNetv2_train"), args.dataset, args.configuration, args.fold, "-tr", name,
                            "-device", "cpu", "--disable_checkpointing"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[kind] += epoch_times(run_dir, name)
            print(f"pair {pair} {kind:9s} median epoch {statistics.median(epoch_times(run_dir, name)):.2f} s",
                  flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"nnUNet_n_proc_DA={os.environ.get('nnUNet_n_proc_DA', '(nnU-Net default)')}, {args.schedule}, "
          f"{args.pairs} pairs, epochs 1..{epochs - 1} of each run")
    for k, v in med.items():
        print(f"{k:9s} median epoch time {v:.3f} s over {len(times[k])} epochs")
    print(f"seeded / unseeded = {med['seeded'] / med['unseeded']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
