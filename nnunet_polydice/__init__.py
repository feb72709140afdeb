"""nnunet-polydice: the Polynomial Dice loss as a plug-in for nnU-Net v2.

Importing the package is cheap on purpose (no torch, no nnunetv2): the start-up hook and the command
line need it before torch is loaded. The loss classes are loaded on first access (PEP 562).
"""

__version__ = "0.1.0"

_LAZY = {
    "PolyDiceLoss": "nnunet_polydice.loss.modules",
    "PolyTverskyLoss": "nnunet_polydice.loss.modules",
    "TverskyLoss": "nnunet_polydice.loss.modules",
    "FocalTverskyLoss": "nnunet_polydice.loss.modules",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nnunet_polydice' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
