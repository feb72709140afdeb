"""nnunet-polydice: the Polynomial Dice loss as a plug-in for nnU-Net v2.

Importing the package is cheap on purpose (no torch, no nnunetv2): the start-up hook and the command
line need it before torch is loaded. The loss classes are loaded on first access (PEP 562).
"""

_LAZY = {
    "PolyDiceLoss": "nnunet_polydice.loss.modules",
    "PolyTverskyLoss": "nnunet_polydice.loss.modules",
    "TverskyLoss": "nnunet_polydice.loss.modules",
    "FocalTverskyLoss": "nnunet_polydice.loss.modules",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name == "__version__":  # the installed distribution's version (pyproject.toml), read on first use
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("nnunet-polydice")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            return "unknown (not installed)"
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nnunet_polydice' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
