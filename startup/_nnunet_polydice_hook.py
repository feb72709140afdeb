"""Start-up hook of nnunet-polydice: lets nnU-Net find the installed trainers by name.

Run by ``nnunet_polydice.pth`` at interpreter start. It only appends the installed trainers folder
to the environment variable ``nnUNet_extTrainer`` (nnU-Net >= 2.8 searches the folders listed there),
keeping any value the user already set, and imports nothing but ``os``.

Opt out: set ``NNUNET_POLYDICE_NO_HOOK`` to 1, true or yes (any case; 0, false, no or an empty value keep
the hook, and so does any other value, which ``nnunet-polydice doctor`` reports as not understood), then add
the folder by hand: ``nnunet-polydice doctor`` prints it. Nothing in the environment makes the hook stop the
interpreter: whatever goes wrong, it leaves the environment as it was.
"""

import os

# The same values as nnunet_polydice.integration.locate.HOOK_OPT_OUT_VALUES (this file may import only os).
_OPT_OUT_VALUES = ("1", "true", "yes")


def _register():
    if os.environ.get("NNUNET_POLYDICE_NO_HOOK", "").strip().lower() in _OPT_OUT_VALUES:
        return
    folder = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nnunet_polydice", "trainers")
    if not os.path.isdir(folder):
        return
    current = os.environ.get("nnUNet_extTrainer", "")
    parts = [p for p in current.split(os.pathsep) if p]
    if folder not in parts:
        os.environ["nnUNet_extTrainer"] = os.pathsep.join([*parts, folder])


try:
    _register()
except Exception:  # a start-up hook runs before every Python program: it must never stop one
    pass
