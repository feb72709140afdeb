"""Evidence for the racing tune: what ``tune --seeds`` picks, against the seeded grid as the truth, for several
tuner seeds, and at what cost.

    python benchmarks/tune_vs_grid.py WORK 731 2d_cpu --folds 1 3 --seeds 0 1 2 --schedule 30x40 \\
        --families nnUNetTrainerPolyDice --K 1 2 3 inf --epsilon 0 1 --tuner-seeds 0 1 2 --budget 33% \\
        --device cpu [--parallel N]

``WORK`` holds ``nnUNet_raw`` and ``nnUNet_preprocessed`` with the data set planned for the configuration (a demo
folder does: ``nnunet-polydice demo`` makes ``polydice_demo`` with data set 731 and ``2d_cpu``). Then:

1. **the grid**: every setting x fold x seed, seeded nnU-Net trainings in ``WORK/grid_results`` (the commands of
   ``nnunet-polydice sweep --print``, ``--parallel`` at a time; finished runs are kept and reused on a rerun);
2. **the truth**: the racing rule over every setting on all of the grid's (fold, seed) runs
   (:func:`nnunet_polydice.experiments.racing.race_step`): the grid's best setting and the settings its paired
   95 % interval cannot tell from it;
3. **the tunes**: for each tuner seed, ``nnunet-polydice tune ... --seeds ... --seed S --budget B`` (search, then
   racing) in a results folder of its own, ``WORK/tune_S`` (empty at the start: nothing is reused from the grid or
   from the other tunes, so each tune pays for every run it trains; seeded runs are the same trainings as the
   grid's);
4. a markdown table (also ``WORK/tune_vs_grid.md``): per tuner seed, the winner (or the leader and the set it could
   not separate), whether it is *right* (its winner is the grid's best or a setting the grid cannot tell from
   it), and the iterations it spent as a share of the grid's.

CPU cost on 2 cores at 30 x 40 with the 2d_cpu configuration: about 26 min per run, so 8 settings x 2 folds x 3
seeds (48 runs) is about 21 hours for the grid alone; run it where the runs can go in parallel.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def nnunet_env(work: Path, results: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_") or k == "nnUNet_n_proc_DA"}
    env.update(nnUNet_raw=str(work / "nnUNet_raw"), nnUNet_preprocessed=str(work / "nnUNet_preprocessed"),
               nnUNet_results=str(results))
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def run(argv, env, log: Path) -> int:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(map(str, argv))}\n")
        fh.flush()
        return subprocess.run([str(a) for a in argv], env=env, stdout=fh, stderr=subprocess.STDOUT).returncode


def space_args(args) -> list[str]:
    return ["--families", *args.families, "--K", *args.K, "--epsilon", *args.epsilon]


def train_grid(args, work: Path, tool: str) -> Path:
    results = work / "grid_results"
    results.mkdir(exist_ok=True)
    env = nnunet_env(work, results)
    printed = subprocess.run([tool, "sweep", args.dataset, args.configuration, *space_args(args), "--baselines",
                              "--folds", *args.folds, "--seeds", *args.seeds, "--schedule", args.schedule,
                              "--device", args.device, "--print"], env=env, capture_output=True, text=True)
    if printed.returncode != 0:
        sys.exit(f"sweep --print failed:\n{printed.stderr}")
    commands = [shlex.split(line) for line in printed.stdout.splitlines() if line.startswith("nnUNetv2_train")]
    print(f"grid: {len(commands)} runs to train in {results} ({args.parallel} at a time)", flush=True)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    start = time.monotonic()

    def one(command):
        rc = run(command, env, logs / f"grid_{command[command.index('-tr') + 1]}_fold{command[3]}.log")
        print(f"  {'done' if rc == 0 else f'FAILED ({rc})'}: {command[command.index('-tr') + 1]} fold {command[3]} "
              f"({(time.monotonic() - start) / 60:.1f} min)", flush=True)
        return rc

    with ThreadPoolExecutor(max(1, args.parallel)) as pool:
        failed = sum(rc != 0 for rc in pool.map(one, commands))
    if failed:
        sys.exit(f"{failed} grid runs failed; see {logs}")
    return results


def prepare(args, work: Path, results: Path, seed: int = 0):
    """The tune setup over ``results`` (library call in this process: nnU-Net's folders come from the
    environment this script was started with, so they are set before nnunetv2 is imported, in main())."""
    from nnunet_polydice.experiments import tune

    env = nnunet_env(work, results)
    return tune.prepare(args.dataset, args.configuration, families=args.families, K_values=args.K,
                        epsilons=args.epsilon, folds=args.folds, schedule=args.schedule, seeds=args.seeds,
                        budget=args.budget, study=f"vs_grid_{seed}", device=args.device, lookup=False, environ=env,
                        storage=f"journal://{results}/tune_vs_grid_{seed}.journal")


def truth(args, work: Path, results: Path):
    from nnunet_polydice.experiments import racing, tune

    setup = prepare(args, work, results)
    values, cases = tune.finished_values(setup, setup.space.settings)
    missing = [s.trainer for s in setup.space.settings if len(values[s.trainer]) < len(setup.instances)]
    if missing:
        sys.exit(f"the grid lacks runs of {', '.join(missing)}")
    step = racing.race_step({s.trainer: values[s.trainer] for s in setup.space.settings}, setup.instances,
                            cases=cases)
    return setup, step


def run_tune(args, work: Path, tool: str, seed: int):
    results = work / f"tune_{seed}"
    results.mkdir(exist_ok=True)
    env = nnunet_env(work, results)
    argv = [tool, "tune", args.dataset, args.configuration, *space_args(args), "--folds", *args.folds, "--seeds",
            *args.seeds, "--schedule", args.schedule, "--budget", args.budget, "--seed", str(seed), "--trials",
            str(args.trials), "--device", args.device, "--study", f"vs_grid_{seed}",
            "--storage", f"journal://{results}/tune_vs_grid_{seed}.journal"]
    start = time.monotonic()
    rc = run(argv, env, work / "logs" / f"tune_{seed}.log")
    print(f"tune seed {seed}: exit {rc} after {(time.monotonic() - start) / 60:.1f} min", flush=True)
    return results


def tune_outcome(args, work: Path, results: Path, seed: int):
    from nnunet_polydice.experiments import tune

    setup = prepare(args, work, results, seed)
    study = tune.load_study(setup.storage, setup.study)
    return tune.summarize(study, setup)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("dataset")
    p.add_argument("configuration")
    p.add_argument("--folds", nargs="+", required=True)
    p.add_argument("--seeds", nargs="+", default=["0", "1", "2"])
    p.add_argument("--schedule", required=True, help="ExI, e.g. 30x40")
    p.add_argument("--families", nargs="+", default=["nnUNetTrainerPolyDice"])
    p.add_argument("--K", nargs="+", default=["1", "2", "3", "inf"])
    p.add_argument("--epsilon", nargs="+", default=["0", "1"])
    p.add_argument("--tuner-seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--budget", default="33%")
    p.add_argument("--trials", type=int, default=100, help="search trials of each tune (default: every setting)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--parallel", type=int, default=1, help="grid runs and tunes at a time (default 1)")
    args = p.parse_args(argv)
    work = args.work.resolve()
    for folder in ("nnUNet_raw", "nnUNet_preprocessed"):
        if not (work / folder).is_dir():
            sys.exit(f"{work / folder} does not exist: WORK must hold the planned data set (e.g. a demo folder).")
    # nnunetv2 reads its folders when first imported: the grid's, for this process
    os.environ.update({k: v for k, v in nnunet_env(work, work / "grid_results").items() if k.startswith("nnUNet_")})
    tool = str(Path(sys.executable).parent / "nnunet-polydice")

    grid = train_grid(args, work, tool)
    setup, step = truth(args, work, grid)
    best, same = step.leader, step.remaining
    print(f"grid: best {best} (mean {step.means[best]:.4f} over {step.n} runs); not separable from it: "
          f"{', '.join(s for s in same if s != best) or 'none'}", flush=True)
    with ThreadPoolExecutor(max(1, min(args.parallel, len(args.tuner_seeds)))) as pool:
        folders = list(pool.map(lambda s: run_tune(args, work, tool, s), args.tuner_seeds))

    lines = [f"Seeded grid ({setup.space.size} settings x {len(setup.folds)} folds x {len(setup.seeds)} seeds, "
             f"{args.schedule}, {setup.grid_iterations} training iterations): best {best}, mean validation Dice "
             f"{step.means[best]:.4f}; not separable from it ({step.n} paired runs, 95 % CI): "
             f"{', '.join(s for s in same if s != best) or 'none'}.", "",
             "| tuner seed | winner (leader) | could not separate | right | spent | % of grid |",
             "| --- | --- | --- | --- | --- | --- |"]
    right = 0
    for seed, folder in zip(args.tuner_seeds, folders):
        summary = tune_outcome(args, work, folder, seed)
        look = summary.look
        winner = summary.winner or "-"
        others = [s for s in (look.remaining if look else []) if s != winner]
        ok = winner in same
        right += ok
        share = summary.iterations_spent / setup.grid_iterations
        lines.append(f"| {seed} | {winner}{'' if look is None or len(look.remaining) == 1 else ' (leader)'} | "
                     f"{', '.join(others) or '-'} | {'yes' if ok else 'no'} | {summary.iterations_spent} | "
                     f"{share:.0%} |")
    lines += ["", f"Right in {right} of {len(folders)}."]
    text = "\n".join(lines)
    print(text)
    (work / "tune_vs_grid.md").write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
