"""``nnunet-polydice datasets``: list the embedded data sets, or write one into an nnUNet_raw folder."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from nnunet_polydice.experiments import checks, datasets


def _folder(value: str | None, variable: str, option: str) -> Path:
    """The folder given with ``option``, else ``$variable``; checked before any work: writable, and it or its
    parent exists (one folder is made, never a chain of them from the root: :func:`checks.check_output_folder`)."""
    if value:
        return checks.check_output_folder(value, option)
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"{variable} is not set; give the folder with {option} DIR or export {variable}.")
    return checks.check_output_folder(value, f"{variable} (or {option})")


def run(args) -> int:
    if args.action is None:
        print(datasets.format_datasets())
        print("\nWrite one into your nnUNet_raw with: nnunet-polydice datasets write KEY [--variant tiny] "
              "(KEY: " + ", ".join(f"{d.name.split('_')[0][7:]}/{d.aliases[0]}" for d in datasets.REGISTRY.values())
              + ")")
        return 0
    try:
        ds = datasets.get_dataset(args.key)
    except KeyError as err:
        raise ValueError(err.args[0]) from None
    raw = _folder(args.raw, "nnUNet_raw", "--raw")
    pre = _folder(args.preprocessed, "nnUNet_preprocessed", "--preprocessed") if args.splits else None
    if pre is not None and not (pre / ds.name).is_dir():
        raise FileNotFoundError(
            f"{pre / ds.name} does not exist: plan and preprocess first (nnUNetv2_plan_and_preprocess -d "
            f"{ds.dataset_id}), then run this command again with --splits.")
    try:
        folder = datasets.write_nnunet_raw(ds, raw, variant=args.variant)
    except FileExistsError as err:  # the library's sentence names overwrite=True, which this command does not offer
        raise FileExistsError(str(err).replace(", or pass overwrite=True to replace it", "")) from None
    print(f"{ds.name} ({args.variant}) is in {folder}")
    if pre is not None:
        try:
            path = datasets.write_splits(ds, pre, variant=args.variant)
        except FileExistsError as err:
            raise FileExistsError(str(err).replace(", or pass overwrite=True to replace it", "")) from None
        print(f"contiguous-block splits ({ds.fold_description}) in {path}")
    else:
        print(f"Next: nnUNetv2_plan_and_preprocess -d {ds.dataset_id} -c {'2d' if ds.dim == 2 else '3d_fullres'}, "
              f"then nnunet-polydice datasets write {args.key} --variant {args.variant} --splits before training "
              f"(folds: {ds.fold_description}; nnU-Net's own split would be a random 5-fold one).")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the embedded data sets, or write one into nnUNet_raw (and its splits into nnUNet_preprocessed)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Without arguments: list the embedded data sets (cases, shapes, foreground fractions, folds, licence).\n"
            "  nnunet-polydice datasets write KEY [--raw DIR] [--variant full|tiny]\n"
            "writes one in the nnU-Net v2 raw layout into DIR (default: $nnUNet_raw). A folder of the same name\n"
            "that differs is never overwritten, nor is a data set with the same id under another name.\n"
            "Then plan and preprocess it as usual (nnUNetv2_plan_and_preprocess -d ID) and run\n"
            "  nnunet-polydice datasets write KEY --splits\n"
            "to also write splits_final.json into $nnUNet_preprocessed/<Dataset>/ (before training): the folds\n"
            "are contiguous blocks of slices, since neighbouring slices of one subject are alike and nnU-Net's\n"
            "random split would put near-copies of validation slices into training."))
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    w = actions.add_parser("write", help="write one embedded data set into nnUNet_raw (and --splits)",
                           description="Write one embedded data set into an nnUNet_raw folder; with --splits also "
                                       "its contiguous-block splits_final.json into nnUNet_preprocessed (do that "
                                       "after nnUNetv2_plan_and_preprocess, before training).")
    w.add_argument("key", metavar="KEY", help="dataset name, id or alias: 731/colin27, 732/dsb2018, 733/colin27_3d")
    w.add_argument("--raw", metavar="DIR", help="nnUNet_raw folder (default: $nnUNet_raw)")
    w.add_argument("--variant", choices=datasets.VARIANTS, default="full", help="full (default) or tiny")
    w.add_argument("--splits", action="store_true",
                   help="also write splits_final.json into $nnUNet_preprocessed/<Dataset>/ (after planning)")
    w.add_argument("--preprocessed", metavar="DIR", help="nnUNet_preprocessed folder (default: $nnUNet_preprocessed)")
    p.set_defaults(func=run, action=None)
