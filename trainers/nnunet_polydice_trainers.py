"""nnU-Net trainers of nnunet-polydice.

nnU-Net imports this module from the folder named in ``nnUNet_extTrainer`` (the package's start-up hook
adds it) and takes the trainer with ``getattr``. The family classes below use the documented defaults;
every other setting (``nnUNetTrainerPolyDice_K3_eps0p5``, ``..._20ep50it``, ``..._s0``) is made on first lookup by
the module-level ``__getattr__`` from the grammar in ``nnunet_polydice.integration.naming``. A malformed name of one
of these families raises ``InvalidTrainerName`` (a ValueError that says what is allowed) instead of
nnU-Net's generic "could not find". Every class reports to a ``tune`` trial when the tuner asks it to
(``integration.pruning.TrialPruningMixin``; inactive otherwise).
"""

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from nnunet_polydice.integration.lookup import exit_in_nnunet_command
from nnunet_polydice.integration.naming import InvalidTrainerName, parse_trainer_name, ready_grid
from nnunet_polydice.integration.pruning import TrialPruningMixin
from nnunet_polydice.integration.seeding import SeededRunMixin
from nnunet_polydice.integration.trainer import (
    NnunetReleaseMixin,
    PolyLossMixin,
    ShortScheduleMixin,
    nnunet_trainer_class,
)


class nnUNetTrainerPolyDice(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """Poly Dice replaces nnU-Net's CE+Dice (the paper's setting)."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerPolyDice")


class nnUNetTrainerPolyDiceCE(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """CE (BCE for regions) + Poly Dice: Poly Dice replaces only the Dice term."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerPolyDiceCE")


class nnUNetTrainerPolyTversky(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """The Poly series over u = 1 - Tversky index, alone."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerPolyTversky")


class nnUNetTrainerPolyTverskyCE(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """CE (BCE for regions) + Poly Tversky."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerPolyTverskyCE")


class nnUNetTrainerTversky(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """Baseline: Tversky loss 1 - T (alpha 0.3, beta 0.7), alone."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerTversky")


class nnUNetTrainerTverskyCE(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """Baseline: CE (BCE for regions) + Tversky loss."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerTverskyCE")


class nnUNetTrainerFocalTversky(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """Baseline: focal Tversky (1 - T)^gamma (gamma 0.75), alone."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerFocalTversky")


class nnUNetTrainerFocalTverskyCE(TrialPruningMixin, PolyLossMixin, nnUNetTrainer):
    """Baseline: CE (BCE for regions) + focal Tversky."""
    polyloss_spec = parse_trainer_name("nnUNetTrainerFocalTverskyCE")


_FAMILY_CLASSES = {cls.__name__: cls for cls in (
    nnUNetTrainerPolyDice, nnUNetTrainerPolyDiceCE, nnUNetTrainerPolyTversky, nnUNetTrainerPolyTverskyCE,
    nnUNetTrainerTversky, nnUNetTrainerTverskyCE, nnUNetTrainerFocalTversky, nnUNetTrainerFocalTverskyCE)}


def _nnunet_trainer_class(name):
    """A trainer nnU-Net ships (searched in nnU-Net's own folder only, never in nnUNet_extTrainer)."""
    return nnunet_trainer_class(name)


def _make_trainer_class(name):
    spec = parse_trainer_name(name)  # raises InvalidTrainerName for a malformed name of our families
    if spec is None:
        return None
    if spec.family is not None:
        base = _FAMILY_CLASSES[spec.family.name]
    else:
        base = _nnunet_trainer_class(spec.base)
        if base is None:
            return None
    bases = (ShortScheduleMixin, base) if spec.epochs is not None else (base,)
    if spec.seed is not None:
        bases = (SeededRunMixin, *bases)
    if not issubclass(base, TrialPruningMixin):  # nnU-Net's own trainers with a schedule suffix
        bases = (TrialPruningMixin, *bases)
    if not any(issubclass(b, NnunetReleaseMixin) for b in bases):  # nnU-Net's own trainers with only _s<N>
        bases = (NnunetReleaseMixin, *bases)
    cls = type(name, bases, {"polyloss_spec": spec, "__module__": __name__, "__qualname__": name,
                             "__doc__": f"{spec.formula()} (nnunet-polydice, made from the name)."})
    globals()[name] = cls
    return cls


def __getattr__(name):
    try:
        cls = _make_trainer_class(name)
    except InvalidTrainerName as error:  # inside nnUNetv2_train & co.: the sentence alone, exit status 2
        exit_in_nnunet_command(error)
        raise
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls


for _name in ready_grid():
    _make_trainer_class(_name)
del _name
