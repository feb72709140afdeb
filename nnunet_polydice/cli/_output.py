"""What the commands that write an output folder (``compare``, ``curves``) share: the folder, checked before any
work, and the list of files written."""

from __future__ import annotations

from pathlib import Path

from nnunet_polydice.experiments import checks, nnunet_env, outputs, sweep


def output_folder(out, default) -> Path:
    """``--out`` when given (a folder whose parent exists: :func:`checks.check_output_folder`), else ``default``
    (made inside nnUNet_results); checked before any work.

    Raises:
        ValueError: when the folder cannot be used; the sentence names --out (or "the output folder").
    """
    if out:
        return checks.check_output_folder(out, "--out")
    return outputs.check_out_dir(Path(default), "the output folder")


def check_owned_files(out_dir, tool: str, names, out) -> None:
    """Refuse, before any work, an output folder where one of ``names`` is a file ``tool`` did not write
    (:func:`checks.check_files_free`)."""
    owned = outputs.OwnedFolder(out_dir, tool).owned()
    checks.check_files_free(out_dir, names, owned, tool, "--out" if out else "the output folder")


def print_written(out_dir, written) -> None:
    """``Wrote N files to DIR:`` and one indented file name per line."""
    print(f"\nWrote {len(written)} files to {out_dir}:")
    for path in written:
        print(f"  {Path(path).name}")


def add_results_arguments(p, verb: str, tool: str) -> None:
    """The arguments of a command that reads trainings from nnUNet_results and writes a folder of its own:
    DATASET CONFIGURATION [-p PLANS] [--trainers ...] [--folds ...] [--out DIR]."""
    p.add_argument("dataset", help="dataset id or name (e.g. 1 or Dataset001_Name)")
    p.add_argument("configuration", help="nnU-Net configuration, e.g. 2d or 3d_fullres")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    p.add_argument("--trainers", nargs="+", metavar="NAME",
                   help=f"trainers to {verb} (default: every <trainer>__<plans>__<configuration> folder found)")
    p.add_argument("--folds", nargs="+", metavar="FOLD", help=f"folds to {verb} (default: union of the folds found)")
    p.add_argument("--out", metavar="DIR",
                   help=f"output folder (default: $nnUNet_results/<Dataset>/polydice_{tool}_<configuration>, "
                        f"polydice_{tool}_<plans>_<configuration> for other plans)")


def check_results_arguments(args, default_out_dir) -> tuple:
    """Check the arguments of :func:`add_results_arguments` before any work; return ``(nnUNet_results, dataset
    name, folds or None, output folder)``. ``default_out_dir(results, dataset, configuration, plans)``.

    Raises:
        ValueError: on a bad fold or trainer name, an unset nnUNet_results, an unknown dataset or an output
            folder that cannot be used; one sentence each.
    """
    checks.check_plans_name(args.plans)
    folds = sweep.parse_folds(args.folds) if args.folds else None
    for name in args.trainers or ():
        nnunet_env.validate_trainer_name(name)
    root = nnunet_env.results_root()
    dataset = nnunet_env.resolve_dataset_name(args.dataset)
    out_dir = output_folder(args.out, default_out_dir(root, dataset, args.configuration, args.plans))
    return root, dataset, folds, out_dir
