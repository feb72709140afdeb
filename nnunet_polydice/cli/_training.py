"""The arguments ``sweep`` and ``tune`` share, declared once so that they mean the same in both."""

from __future__ import annotations


def add_training_arguments(p, schedule_help: str) -> None:
    """DATASET CONFIGURATION [-p PLANS] [--device D] [--schedule ExI] [--allow-random-split]: what every
    ``nnUNetv2_train`` the command starts is given."""
    p.add_argument("dataset", help="dataset id or name (e.g. 1 or Dataset001_Name), as nnUNetv2_train takes it")
    p.add_argument("configuration", help="nnU-Net configuration, e.g. 2d or 3d_fullres")
    p.add_argument("-p", "--plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    p.add_argument("--device", choices=("cpu", "cuda", "mps"),
                   help="passed to nnUNetv2_train as -device (nnU-Net's default: cuda)")
    p.add_argument("--schedule", metavar="ExI", help=schedule_help)
    p.add_argument("--allow-random-split", action="store_true",
                   help="accept folds beyond splits_final.json: nnU-Net then trains them on a random 80:20 split "
                        "(with slices of one subject, neighbouring slices land in training and validation)")


def training_of(args):
    """The :class:`nnunet_polydice.experiments.sweep.Training` of parsed :func:`add_training_arguments` (and the
    command's ``--folds``)."""
    from nnunet_polydice.experiments.sweep import Training

    return Training(args.dataset, args.configuration, args.plans, args.folds, args.device, args.allow_random_split)
