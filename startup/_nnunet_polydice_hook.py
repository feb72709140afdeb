"""Start-up hook of nnunet-polydice: lets nnU-Net find the installed trainers by name.

Run by ``nnunet_polydice.pth`` at interpreter start. It only appends the installed trainers folder
to the environment variable ``nnUNet_extTrainer`` (nnU-Net >= 2.8 searches the folders listed there),
keeping any value the user already set, and imports nothing but ``os``.

Opt out: set ``NNUNET_POLYDICE_NO_HOOK=1`` (then add the folder by hand: ``nnunet-polydice doctor``
prints it).
"""

import os


def _register():
    if os.environ.get("NNUNET_POLYDICE_NO_HOOK", "").strip() not in ("", "0"):
        return
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nnunet_polydice", "trainers")
    if not os.path.isdir(folder):
        return
    current = os.environ.get("nnUNet_extTrainer", "")
    parts = [p for p in current.split(os.pathsep) if p]
    if folder not in parts:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*parts, folder])


_register()
