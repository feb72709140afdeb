"""``nnunet-polydice add-config``: add a smaller configuration, inheriting one of nnU-Net's, to a user's plans."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from nnunet_polydice.experiments import checks, nnunet_env
from nnunet_polydice.experiments.demo import CPU_SCHEDULE
from nnunet_polydice.experiments.workspace import CPU_ARCHITECTURE
from nnunet_polydice.integration import plans as plans_lib
from nnunet_polydice.integration.naming import schedule_suffix

#: Bounds of the sizes add-config takes: well above nnU-Net's own plans (at most 320-512 features, batch sizes of
#: 2-50, patch edges of a few hundred), far below what would make a plans file no GPU could train.
MAX_STAGES = 16
MAX_FEATURES = 4096
MAX_BATCH = 1024
MAX_EDGE = 4096


def _count(option: str, maximum: int, keep: bool = False):
    """argparse type: an integer from 1 to ``maximum`` (or, with ``keep``, the word 'keep' -> None)."""
    def parse(text: str):
        if keep and text == "keep":
            return None
        try:
            return checks.check_int(text, option, 1, maximum)
        except ValueError as err:
            text = str(err).replace("must be an integer", "must be keep or an integer") if keep else str(err)
            raise argparse.ArgumentTypeError(text) from None
    return parse


def _plans_file(dataset: str, plans: str) -> Path:
    checks.check_plans_name(plans)
    root = os.environ.get("nnUNet_preprocessed")
    if not root:
        raise ValueError("nnUNet_preprocessed is not set; export it to the folder where nnU-Net keeps its plans and "
                         "preprocessed data (see nnU-Net's documentation/setting_up_paths.md).")
    return Path(root) / dataset / f"{plans}.json"


def run(args) -> int:
    if args.max_features < args.features:
        raise ValueError(f"--max-features {args.max_features} is below --features {args.features}; the features "
                         f"double from --features up to --max-features.")
    plans_lib.check_configuration_name(args.name)
    dataset = nnunet_env.resolve_dataset_name(args.dataset)
    try:
        added = plans_lib.add_smaller_configuration(
            _plans_file(dataset, args.plans), name=args.name, base=args.base, n_stages=args.stages,
            base_features=args.features, max_features=args.max_features, batch_size=args.batch_size,
            max_patch=args.patch_size)
    except PermissionError as err:
        print(f"nnunet-polydice add-config: error: {err}", file=sys.stderr)
        return 2
    new, base = added.resolved, added.base_resolved
    kw = new["architecture"]["arch_kwargs"]
    if added.changed:
        print(f"Added configuration {added.name!r} to {added.plans_file}, inheriting {added.base!r}:")
    else:
        print(f"{added.plans_file} already has this configuration {added.name!r}; nothing was changed:")
    print(f"  U-Net: {kw['n_stages']} stages (base {base['architecture']['arch_kwargs']['n_stages']}), features "
          f"{' '.join(map(str, kw['features_per_stage']))}")
    print(f"  batch size {new['batch_size']} (base {base['batch_size']}), patch size {new['patch_size']} "
          f"(base {base['patch_size']})")
    if args.patch_size is not None and args.patch_size not in new["patch_size"] and \
            any(p > args.patch_size for p in base["patch_size"]):
        print(f"  --patch-size {args.patch_size} was rounded down to a multiple of the pooling of each axis: the "
              f"U-Net halves a patch {kw['n_stages'] - 1} times, so each patch axis is a multiple of its pooling.")
    if added.changed and not added.layout_kept:
        print("  The file was not in nnU-Net's own layout (indent 4); it was written in that layout, with the same "
              "content apart from the new configuration.")
    data = added.plans_file.parent / new["data_identifier"]
    print(f"  data: no data_identifier of its own, so it uses {base['data_identifier']!r} of {added.base!r}: nnU-Net "
          f"trains it from {data} without preprocessing again.")
    plans_opt = "" if args.plans == "nnUNetPlans" else f" -p {args.plans}"
    if not data.is_dir():
        print(f"  {data} does not exist yet: preprocess the base first, e.g. nnUNetv2_preprocess -d {dataset} "
              f"-c {added.base}" + ("" if args.plans == "nnUNetPlans" else f" -plans_name {args.plans}"))
    epochs, iterations = CPU_SCHEDULE
    print(f"Train with it (a CPU-sized schedule of {epochs} epochs x {iterations} iterations, the suffix "
          f"{schedule_suffix(epochs, iterations)} of the trainer names; nnU-Net's own 1000 x 250 takes days on a CPU):")
    print(f"  nnunet-polydice sweep {dataset} {added.name} --K 2 3 --epsilon 0 1 --schedule {epochs}x{iterations} "
          f"--device cpu{plans_opt}")
    print("    (a Poly Dice grid and the baselines over folds 0-4)")
    print(f"  nnUNetv2_train {dataset} {added.name} 0 -tr nnUNetTrainerPolyDice{schedule_suffix(epochs, iterations)} "
          f"-device cpu{plans_opt}")
    return 0


def register(sub) -> None:
    cpu = CPU_ARCHITECTURE
    p = sub.add_parser(
        "add-config",
        help=f"add a smaller U-Net configuration (default: the demo's {plans_lib.CPU_CONFIGURATION}) that inherits "
             "one of nnU-Net's, to your plans",
        description=(
            "Add a configuration to $nnUNet_preprocessed/<Dataset>/<plans>.json that inherits --base (nnU-Net's "
            "'inherits_from') with a smaller U-Net: --stages stages whose features double from --features up to "
            "--max-features, --batch-size, and each axis of the base's patch capped at --patch-size (rounded "
            "down to a multiple of the pooling). nnU-Net's own names (2d, 3d_lowres, 3d_fullres, 3d_cascade_fullres) "
            "are refused for --name. It shares the base's preprocessed data (same data_identifier), "
            "so nnU-Net trains it without preprocessing again. The defaults are the demo's "
            f"{plans_lib.CPU_CONFIGURATION}. Existing configurations are never replaced (an identical one is left "
            "as it is); the file is written atomically, in nnU-Net's layout, otherwise unchanged."))
    p.add_argument("dataset", help="dataset id or name (e.g. 1 or Dataset001_Name), as nnUNetv2_train takes it")
    p.add_argument("--base", default="2d", help="configuration to inherit from (default: 2d)")
    p.add_argument("--name", default=plans_lib.CPU_CONFIGURATION,
                   help=f"name of the new configuration (default: {plans_lib.CPU_CONFIGURATION})")
    p.add_argument("--stages", type=_count("--stages", MAX_STAGES), default=cpu["n_stages"],
                   help=f"U-Net stages, 2 up to the base's (default: {cpu['n_stages']})")
    p.add_argument("--features", type=_count("--features", MAX_FEATURES), default=cpu["base_features"],
                   help=f"features of the first stage, doubled at each stage (default: {cpu['base_features']})")
    p.add_argument("--max-features", type=_count("--max-features", MAX_FEATURES), default=cpu["max_features"],
                   help=f"most features of a stage (default: {cpu['max_features']})")
    p.add_argument("--batch-size", type=_count("--batch-size", MAX_BATCH, keep=True), default=cpu["batch_size"],
                   help=f"batch size, or keep (the base's) (default: {cpu['batch_size']})")
    p.add_argument("--patch-size", type=_count("--patch-size", MAX_EDGE, keep=True), default=cpu["max_patch"],
                   metavar="EDGE",
                   help="largest patch edge: each axis of the base's patch size is capped at EDGE, rounded down to a "
                        "multiple of the pooling (said when it is); an EDGE below the pooling of an axis it would "
                        f"shrink is refused; or keep (the base's) (default: {cpu['max_patch']})")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    p.set_defaults(func=run)
