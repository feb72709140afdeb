"""Per trainer and seed, the share of a fold's validation cases in which a class that none of them contains was
predicted (nnU-Net's ``n_pred`` > 0 in ``validation/summary.json``), and the voxels so painted.

    python benchmarks/absent_class_share.py RESULTS DATASET CONFIGURATION --fold 1 --label 2

On the shipped grid (``nnunet_polydice/data/grids/colin27_2d_cpu_12x40``), fold 1's 12 validation slices hold
no amygdala (label 2): any amygdala a trainer predicts there is a false positive that the Dice of the cases with
amygdala does not see.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nnunet_polydice.integration.naming import setting_and_seed


def shares(results: Path, dataset: str, configuration: str, fold: str, label: str) -> dict:
    """``{setting: {seed: (cases with a prediction, cases, predicted voxels)}}``, over the cases whose
    reference lacks the label."""
    out = {}
    for summary_path in sorted(results.glob(f"{dataset}*/*__*__{configuration}/fold_{fold}/validation/summary.json")):
        trainer = summary_path.parents[2].name.split("__")[0]
        setting, seed = setting_and_seed(trainer)
        cases = [c["metrics"][label] for c in json.loads(summary_path.read_text())["metric_per_case"]]
        absent = [m for m in cases if m.get("n_ref", 0) == 0]
        out.setdefault(setting, {})[seed] = (sum(m.get("n_pred", 0) > 0 for m in absent), len(absent),
                                             int(sum(m.get("n_pred", 0) for m in absent)))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", type=Path)
    p.add_argument("dataset")
    p.add_argument("configuration")
    p.add_argument("--fold", default="1")
    p.add_argument("--label", default="2")
    args = p.parse_args(argv)
    table = shares(args.results, args.dataset, args.configuration, args.fold, args.label)
    if not table:
        sys.exit(f"no validation/summary.json of fold {args.fold} under {args.results}")
    seeds = sorted({s for row in table.values() for s in row}, key=lambda s: -1 if s is None else s)
    print("| setting | " + " | ".join(f"seed {s}" for s in seeds) + " |")
    print("| --- |" + " --- |" * len(seeds))
    for setting, row in sorted(table.items()):
        cells = [f"{row[s][0]}/{row[s][1]} ({row[s][2]} vx)" if s in row else "" for s in seeds]
        print(f"| {setting} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
