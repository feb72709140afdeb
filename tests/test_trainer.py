"""integration/trainer.py: the Dice term swapped into nnU-Net's own compound losses, built as
``nnUNetTrainer._build_loss`` builds them (deep supervision, regions with an ignore channel, ignore label).

The pure families must compute only the Dice-type term: nnU-Net's ``DC_and_BCE_loss`` computes its BCE
even at ``weight_ce = 0`` (a wasted pass, and ``0 * NaN = NaN``); ``DC_and_CE_loss`` already skips its CE.
"""

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

from nnunet_polydice import PolyDiceLoss
from nnunet_polydice.integration.naming import parse_trainer_name
from nnunet_polydice.integration.trainer import DiceOnly_BCE_loss, replace_dice_term

WEIGHTS = [4 / 7, 2 / 7, 1 / 7]   # nnU-Net's 1, 1/2, 1/4 normalised (its last output gets 0; not needed here)
PURE, WITH_CE = "nnUNetTrainerPolyDice_K3_eps1", "nnUNetTrainerPolyDiceCE_K3_eps1"


class Forbidden(torch.nn.Module):
    """Stands in for the compound's own CE/BCE module: computing it is the failure."""

    def forward(self, *args, **kwargs):
        raise AssertionError("the CE/BCE term was computed")


def region_loss(name, ignore):
    """DeepSupervisionWrapper(DC_and_BCE_loss) as nnUNetTrainer._build_loss makes it for regions, then ours."""
    compound = DC_and_BCE_loss({}, {"batch_dice": True, "do_bg": True, "smooth": 1e-5, "ddp": False},
                               use_ignore_label=ignore, dice_class=MemoryEfficientSoftDiceLoss)
    return replace_dice_term(DeepSupervisionWrapper(compound, WEIGHTS), parse_trainer_name(name), False)


def label_loss(name, ignore_label):
    compound = DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              weight_ce=1, weight_dice=1, ignore_label=ignore_label,
                              dice_class=MemoryEfficientSoftDiceLoss)
    return replace_dice_term(DeepSupervisionWrapper(compound, WEIGHTS), parse_trainer_name(name), False)


def scales(x, y):
    """Three deep-supervision scales (nnU-Net downsamples the target by nearest neighbour)."""
    xs, ys = [x], [y]
    for _ in range(2):
        xs.append(xs[-1][..., ::2, ::2].contiguous())
        ys.append(ys[-1][..., ::2, ::2].contiguous())
    return xs, ys


def region_case(seed, ignore):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, 16, 16, generator=g)
    regions = torch.rand(2, 2, 16, 16, generator=g) < 0.4
    y = torch.cat((regions, torch.rand(2, 1, 16, 16, generator=g) < 0.2), 1) if ignore else regions
    return x, y


@pytest.mark.parametrize("ignore", [False, True])
def test_pure_family_on_regions_is_the_poly_dice_term_alone_and_never_computes_the_bce(ignore):
    x, y = region_case(seed=1, ignore=ignore)
    # an infinite logit (fp16 overflow) where the region is 1 and not ignored: BCE-with-logits gives NaN there,
    # the sigmoid gives 1 and the Dice stays finite
    x[0, 0, 0, 0], y[0, 0, 0, 0] = float("inf"), True
    if ignore:
        y[0, -1, 0, 0] = False
    xs, ys = scales(x, y)
    loss = region_loss(PURE, ignore)
    compound = loss.loss
    assert type(compound) is DiceOnly_BCE_loss and isinstance(compound, DC_and_BCE_loss)
    assert compound.weight_ce == 0 and compound.use_ignore_label is ignore
    compound.ce = Forbidden()
    inputs = [v.clone().requires_grad_() for v in xs]
    value = loss(inputs, ys)
    value.backward()

    dice = PolyDiceLoss(torch.sigmoid, batch_dice=True, do_bg=True, smooth=1e-5, ddp=False, K=3, epsilon=1.0)
    if ignore:
        alone = sum(w * dice(v, t[:, :-1], ~t[:, -1:]) for w, v, t in zip(WEIGHTS, xs, ys))
    else:
        alone = sum(w * dice(v, t) for w, v, t in zip(WEIGHTS, xs, ys))
    assert torch.isfinite(value) and torch.isfinite(alone)
    torch.testing.assert_close(value.detach(), alone, rtol=1e-6, atol=1e-7)
    assert all(torch.isfinite(v.grad).all() for v in inputs)
    if ignore:   # no gradient where the ignore channel is set, as in nnU-Net
        assert inputs[0].grad.masked_select(ys[0][:, -1:].expand_as(inputs[0])).abs().max() == 0


def test_nnunets_own_compound_at_weight_zero_is_poisoned_by_that_nan():
    # why the pure family needs its own forward: the same inputs through nnU-Net's DC_and_BCE_loss, BCE weight 0
    x, y = region_case(seed=1, ignore=False)
    x[0, 0, 0, 0], y[0, 0, 0, 0] = float("inf"), True
    compound = DC_and_BCE_loss({}, {"batch_dice": True, "do_bg": True, "smooth": 1e-5, "ddp": False},
                               weight_ce=0, dice_class=MemoryEfficientSoftDiceLoss)
    assert torch.isnan(compound(x, y))


@pytest.mark.parametrize("ignore", [False, True])
def test_compound_family_on_regions_keeps_nnunets_forward_with_the_bce(ignore):
    x, y = region_case(seed=2, ignore=ignore)
    loss = region_loss(WITH_CE, ignore)
    assert type(loss.loss) is DC_and_BCE_loss and loss.loss.weight_ce == 1
    value = loss.loss(x, y)
    dice = PolyDiceLoss(torch.sigmoid, batch_dice=True, do_bg=True, smooth=1e-5, ddp=False, K=3, epsilon=1.0)
    if ignore:   # nnU-Net: the masked BCE summed over channels, divided by the number of unmasked voxels
        mask, regions = ~y[:, -1:], y[:, :-1]
        bce = (torch.nn.BCEWithLogitsLoss(reduction="none")(x, regions.float()) * mask).sum() / mask.sum()
        expected = bce + dice(x, regions, mask)
    else:
        expected = torch.nn.BCEWithLogitsLoss()(x, y.float()) + dice(x, y)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-6)
    loss.loss.ce = Forbidden()
    with pytest.raises(AssertionError, match="the CE/BCE term was computed"):
        loss.loss(x, y)


@pytest.mark.parametrize("ignore_label", [None, 3])
def test_pure_family_on_label_maps_never_computes_the_ce(ignore_label):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 16, 16, generator=g)
    y = torch.randint(0, 3, (2, 1, 16, 16), generator=g, dtype=torch.int16)
    if ignore_label is not None:
        y[:, :, :4] = ignore_label
    xs, ys = scales(x, y)
    loss = label_loss(PURE, ignore_label)
    assert type(loss.loss) is DC_and_CE_loss and loss.loss.weight_ce == 0   # nnU-Net's forward skips CE at 0
    loss.loss.ce = Forbidden()
    value = loss(xs, ys)
    dice = PolyDiceLoss(lambda t: torch.softmax(t, 1), batch_dice=False, do_bg=False, smooth=1e-5, ddp=False, K=3,
                        epsilon=1.0)
    expected = 0.0
    for w, v, t in zip(WEIGHTS, xs, ys):
        mask = None if ignore_label is None else t != ignore_label
        expected += w * dice(v, t if mask is None else torch.where(mask, t, 0), mask)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)


def test_a_subclass_of_nnunets_bce_compound_keeps_its_own_forward():
    class MyCompound(DC_and_BCE_loss):
        pass

    compound = MyCompound({}, {"batch_dice": True, "do_bg": True, "smooth": 1e-5, "ddp": False},
                          dice_class=MemoryEfficientSoftDiceLoss)
    replace_dice_term(compound, parse_trainer_name(PURE), False)
    assert type(compound) is MyCompound and compound.weight_ce == 0 and isinstance(compound.dc, PolyDiceLoss)


def _poly_lr_init_2_5(self, optimizer, initial_lr, max_steps, exponent=0.9, current_step=None):
    """nnunetv2 2.5.2's PolyLRScheduler.__init__, verbatim but for the super() call's spelling."""
    self.optimizer = optimizer
    self.initial_lr = initial_lr
    self.max_steps = max_steps
    self.exponent = exponent
    self.ctr = 0
    torch.optim.lr_scheduler.LRScheduler.__init__(self, optimizer, current_step if current_step is not None else -1,
                                                  False)


def test_nnunet_2_5s_poly_lr_scheduler_is_built_on_a_torch_without_verbose(monkeypatch):
    from nnunetv2.training.lr_scheduler import polylr

    from nnunet_polydice.integration import trainer

    monkeypatch.setattr(polylr.PolyLRScheduler, "__init__", _poly_lr_init_2_5)
    monkeypatch.setattr(trainer, "NNUNET_RELEASE", (2, 5, 2))
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    if not trainer._lr_scheduler_takes_verbose():   # torch 2.13/2.14: nnU-Net 2.5's own call fails
        with pytest.raises(TypeError, match="positional arguments"):
            polylr.PolyLRScheduler(optimizer, 0.01, 10)

    class Base:  # configure_optimizers as nnunetv2 2.5.2's nnUNetTrainer writes it
        def configure_optimizers(self):
            return optimizer, polylr.PolyLRScheduler(optimizer, 0.01, 10)

    class Trainer(trainer.NnunetReleaseMixin, Base):
        pass

    _, scheduler = Trainer().configure_optimizers()
    assert polylr.PolyLRScheduler.__init__ is _poly_lr_init_2_5   # restored after the call
    assert (scheduler.initial_lr, scheduler.max_steps, scheduler.exponent) == (0.01, 10, 0.9)
    assert scheduler.ctr == 1 and optimizer.param_groups[0]["lr"] == pytest.approx(0.01)  # torch's initial step
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * (1 - 1 / 10) ** 0.9)
