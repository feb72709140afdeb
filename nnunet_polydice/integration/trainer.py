"""What every trainer of this package shares, in one place.

The trainers do not rebuild nnU-Net's loss: ``PolyLossMixin._build_loss`` calls the base trainer's own
``_build_loss`` (so deep supervision weights, the DDP weight quirk, region-based BCE+Dice with sigmoid and
background, the ignore label, batch Dice from the plans and ``ddp`` all stay exactly as nnU-Net sets them),
then swaps the Dice term of the compound for ours, keeping its nnU-Net keywords, and for the pure families
sets the CE/BCE weight to zero and computes only the Dice-type term (see :class:`DiceOnly_BCE_loss`). The new
Dice term is compiled where the base trainer compiles.

Reading the base loss back relies on attributes nnU-Net has had since v2.0: ``DeepSupervisionWrapper.loss``,
``DC_and_CE_loss.dc/.weight_ce`` (``DC_and_BCE_loss`` alike) and the Dice module's ``apply_nonlin,
batch_dice, do_bg, smooth, ddp``. ``replace_dice_term`` checks them and fails with a sentence if a future
nnU-Net changes them.

Supported: nnunetv2 2.5.x-2.8.x. What differs between those releases is handled here, each where it is used
(:data:`NNUNET_RELEASE`): the base trainer's ``load_checkpoint`` and ``configure_optimizers``
(:class:`NnunetReleaseMixin`) and the signature of nnU-Net's class finder (:func:`nnunet_trainer_class`).
``nnUNetTrainer.__init__`` (its ``unpack_dataset`` argument went in 2.6; 2.7 added the ``continue_training`` key
it pops from the plans) is never overridden here.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import inspect
import os
import warnings
from os.path import join

import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper

from nnunet_polydice.integration.link import version_tuple
from nnunet_polydice.integration.naming import TrainerSpec
from nnunet_polydice.loss import modules

_DICE_KEYWORDS = ("batch_dice", "do_bg", "smooth", "ddp")

#: The installed nnunetv2 release, e.g. (2, 7, 0).
NNUNET_RELEASE = version_tuple(md.version("nnunetv2"))


def nnunet_trainer_class(name: str):
    """A trainer class nnU-Net ships, found by name in nnU-Net's own trainer folder only; None if there is none."""
    import nnunetv2
    from nnunetv2.utilities.find_class_by_name import recursive_find_python_class

    folder = join(nnunetv2.__path__[0], "training", "nnUNetTrainer")
    # nnunetv2 2.8.0 added base_folder (put on sys.path while importing); 2.5.x-2.7.x take (folder, name, module).
    if NNUNET_RELEASE >= (2, 8):
        return recursive_find_python_class(folder, name, "nnunetv2.training.nnUNetTrainer", nnunetv2.__path__[0])
    return recursive_find_python_class(folder, name, "nnunetv2.training.nnUNetTrainer")


@contextlib.contextmanager
def _torch_load_unrestricted():
    """torch.load calls that do not pass ``weights_only`` load full pickles inside the block (torch >= 2.6
    defaults to ``weights_only=True``; ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD`` is read at each call)."""
    before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Environment variable TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
            yield
    finally:
        if before is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = before


def _lr_scheduler_takes_verbose() -> bool:
    """torch's ``LRScheduler.__init__`` still has its deprecated ``verbose`` parameter (torch 2.6 has it; the
    torch 2.13 and 2.14 builds this project runs on do not)."""
    return "verbose" in inspect.signature(torch.optim.lr_scheduler.LRScheduler.__init__).parameters


@contextlib.contextmanager
def _poly_lr_without_verbose():
    """nnunetv2 2.5.x's ``PolyLRScheduler.__init__`` passes ``verbose=False`` as a third positional argument to
    torch's ``LRScheduler.__init__``; where torch no longer has that parameter every trainer fails in
    ``configure_optimizers`` with "LRScheduler.__init__() takes from 2 to 3 positional arguments but 4 were
    given" (nnUNetTrainer too). Inside the block the class gets 2.6.0's ``__init__`` (the same, without that
    argument); the class is restored after."""
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    original = PolyLRScheduler.__init__

    def __init__(self, optimizer, initial_lr: float, max_steps: int, exponent: float = 0.9, current_step=None):
        self.optimizer, self.initial_lr, self.max_steps, self.exponent, self.ctr = (
            optimizer, initial_lr, max_steps, exponent, 0)
        torch.optim.lr_scheduler.LRScheduler.__init__(self, optimizer, -1 if current_step is None else current_step)

    PolyLRScheduler.__init__ = __init__
    try:
        yield
    finally:
        PolyLRScheduler.__init__ = original


class NnunetReleaseMixin:
    """Differences between nnunetv2 releases in the base trainer's methods (in every class of this package)."""

    def configure_optimizers(self):
        # nnunetv2 2.5.x with a torch whose LRScheduler has no `verbose` parameter: see _poly_lr_without_verbose.
        # 2.6.0+ call LRScheduler.__init__(optimizer, last_epoch) and need nothing.
        if NNUNET_RELEASE < (2, 6) and not _lr_scheduler_takes_verbose():
            with _poly_lr_without_verbose():
                return super().configure_optimizers()
        return super().configure_optimizers()

    def load_checkpoint(self, filename_or_checkpoint) -> None:
        # nnunetv2 2.5.x calls torch.load(path) without weights_only, and cannot take a loaded dict; with torch
        # >= 2.6 (weights_only=True by default) that refuses nnU-Net's own checkpoint (numpy values in its
        # logging), so `nnUNetv2_train --c` fails. 2.6.0+ pass weights_only=False themselves; the predictor
        # does in every supported release. The checkpoint is the run's own, written by nnU-Net.
        if NNUNET_RELEASE < (2, 6) and isinstance(filename_or_checkpoint, str):
            with _torch_load_unrestricted():
                return super().load_checkpoint(filename_or_checkpoint)
        return super().load_checkpoint(filename_or_checkpoint)


class DiceOnly_BCE_loss(DC_and_BCE_loss):
    """nnU-Net's ``DC_and_BCE_loss`` (region-based training) for the pure families: the Dice-type term alone.

    nnU-Net's ``DC_and_BCE_loss.forward`` computes the BCE even at ``weight_ce = 0``: a full-size pass (and its
    backward) that adds nothing, and a NaN in it would still poison the sum (``0 * NaN = NaN``). This forward
    handles the ignore label exactly as nnU-Net's does (the last target channel is the ignore channel; the mask
    is True where it is not set; the Dice gets the other channels) and skips the BCE while ``weight_ce == 0``;
    with any other weight it is nnU-Net's forward. Everything else (``dc``, ``ce``, the weights,
    ``use_ignore_label``) is the instance nnU-Net built.

    ``DC_and_CE_loss`` (label maps) needs no such class: its forward already skips the CE at ``weight_ce = 0``.
    """

    def forward(self, net_output: torch.Tensor, target: torch.Tensor):
        if self.weight_ce != 0:
            return super().forward(net_output, target)
        mask = None
        if self.use_ignore_label:
            mask = ~target[:, -1:] if target.dtype == torch.bool else (1 - target[:, -1:]).bool()
            target = target[:, :-1]
        return self.weight_dice * self.dc(net_output, target, loss_mask=mask)


def _uncompiled(module):
    return getattr(module, "_orig_mod", module)


def replace_dice_term(loss, spec: TrainerSpec, compile_dice: bool):
    """Swap the Dice term of nnU-Net's (deep-supervised) compound loss for the loss ``spec`` names.

    ``loss`` is what ``nnUNetTrainer._build_loss`` returned. Returns it, modified in place.
    """
    compound = loss.loss if isinstance(loss, DeepSupervisionWrapper) else loss
    if not isinstance(compound, (DC_and_CE_loss, DC_and_BCE_loss)):
        raise TypeError(
            f"{spec.name} replaces the Dice term of nnU-Net's DC_and_CE_loss / DC_and_BCE_loss, but the base "
            f"trainer built {type(compound).__name__}. Use a base trainer whose _build_loss returns one of those.")
    old = _uncompiled(compound.dc)
    missing = [k for k in ("apply_nonlin", *_DICE_KEYWORDS) if not hasattr(old, k)]
    if missing:
        raise TypeError(f"nnU-Net's Dice term {type(old).__name__} lacks {missing}; this nnU-Net version is "
                        f"not supported by nnunet-polydice.")
    kwargs = {k: getattr(old, k) for k in _DICE_KEYWORDS}
    loss_class = getattr(modules, spec.family.loss.loss_class)
    dice = loss_class(apply_nonlin=old.apply_nonlin, **kwargs, **spec.loss_kwargs())
    compound.dc = torch.compile(dice) if compile_dice else dice
    if not spec.family.compound:
        compound.weight_ce = 0  # the pure family: Poly Dice replaces the whole compound
        if type(compound) is DC_and_BCE_loss:
            compound.__class__ = DiceOnly_BCE_loss  # same instance and state, a forward without the BCE
    return loss


class PolyLossMixin(NnunetReleaseMixin):
    """Mixed in before an nnU-Net trainer class; ``polyloss_spec`` (a class attribute) says which loss."""

    polyloss_spec: TrainerSpec

    def _build_loss(self):
        # _do_i_compile (nnU-Net's compile switch: nnUNet_compile, device, version checks) exists, with this name
        # and no arguments, in nnunetv2 2.5.x-2.8.x.
        return replace_dice_term(super()._build_loss(), self.polyloss_spec, self._do_i_compile())


class ShortScheduleMixin(NnunetReleaseMixin):
    """E epochs of I iterations (``_<E>ep<I>it`` names): for CPU budgets, demos and tests.

    Set in ``initialize`` (before the learning-rate schedule is built from ``num_epochs``), not in
    ``__init__``, whose signature nnU-Net has changed between releases.
    """

    polyloss_spec: TrainerSpec

    def initialize(self):
        spec = self.polyloss_spec
        self.num_epochs = spec.epochs
        self.num_iterations_per_epoch = spec.iterations
        self.num_val_iterations_per_epoch = max(1, spec.iterations // 5)
        self.save_every = max(1, min(self.save_every, spec.epochs // 10))
        super().initialize()
