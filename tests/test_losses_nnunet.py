"""The losses inside nnU-Net's own pieces: MemoryEfficientSoftDiceLoss, DC_and_CE_loss,
DC_and_BCE_loss (regions with an ignore channel), DeepSupervisionWrapper and DDP all-gather.

The anchor is nnU-Net itself: ``PolyDiceLoss(K=1, epsilon=0)`` is the soft Dice loss ``1 - D``, so it
must equal ``1 + MemoryEfficientSoftDiceLoss`` (which returns ``-D``) with the same gradient, alone
and inside every compound nnU-Net builds.
"""

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.loss.robust_ce_loss import RobustCrossEntropyLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1

from nnunet_polydice import FocalTverskyLoss, PolyDiceLoss, PolyTverskyLoss, TverskyLoss

REPO = Path(__file__).resolve().parents[1]
SHAPES = {"2d": (2, 4, 64, 64), "3d": (2, 3, 24, 24, 24)}


def value_and_grad(fn, x, *args):
    x = x.clone().requires_grad_()
    value = fn(x, *args)
    value.backward()
    return value.detach(), x.grad


def label_case(shape, seed=0, ignore=False):
    """Logits and an int16 label map (B, 1, ...) as nnU-Net's loader gives; ignore label = C."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
    if ignore:
        labels[torch.rand(labels.shape, generator=g) < 0.2] = shape[1]
    return logits, labels.to(torch.int16)


def region_case(shape, seed=0):
    """Logits and a bool region target with nnU-Net's extra ignore channel last: (B, R + 1, ...)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g)
    regions = torch.rand(shape, generator=g) < 0.3
    ignore = torch.rand((shape[0], 1, *shape[2:]), generator=g) < 0.15
    return logits, torch.cat((regions, ignore), 1)


# --------------------------------------------------------------------------------------------------
# K=1, epsilon=0 is nnU-Net's soft Dice (plus 1)


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("do_bg", [False, True])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("kind", ["labels", "regions"])
def test_k1_eps0_is_one_plus_memory_efficient_soft_dice(batch_dice, do_bg, masked, kind):
    shape = (2, 3, 12, 10)
    if kind == "labels":
        x, y = label_case(shape, seed=1)
        nonlin = softmax_helper_dim1
    else:
        x, y = region_case(shape, seed=1)
        y = y[:, :-1]
        nonlin = torch.sigmoid
    mask = (torch.rand((2, 1, 12, 10), generator=torch.Generator().manual_seed(2)) > 0.3) if masked else None
    kwargs = dict(apply_nonlin=nonlin, batch_dice=batch_dice, do_bg=do_bg, smooth=1e-5, ddp=False)
    ours, ours_grad = value_and_grad(PolyDiceLoss(**kwargs, K=1, epsilon=0.0), x, y, mask)
    theirs, theirs_grad = value_and_grad(MemoryEfficientSoftDiceLoss(**kwargs), x, y, mask)
    torch.testing.assert_close(ours, theirs + 1, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# DC_and_CE_loss (label maps, ignore label)


def dc_and_ce(dice_class, num_classes, **dice_kwargs):
    soft_dice_kwargs = {"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False, **dice_kwargs}
    return DC_and_CE_loss(soft_dice_kwargs, {}, weight_ce=1, weight_dice=1, ignore_label=num_classes,
                          dice_class=dice_class)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_dc_and_ce_with_poly_dice_k1_is_nnunet_default_plus_one(dim):
    x, y = label_case(SHAPES[dim], seed=3, ignore=True)
    C = SHAPES[dim][1]
    ours, ours_grad = value_and_grad(dc_and_ce(PolyDiceLoss, C, K=1, epsilon=0.0), x, y)
    theirs, theirs_grad = value_and_grad(dc_and_ce(MemoryEfficientSoftDiceLoss, C), x, y)
    torch.testing.assert_close(ours, theirs + 1, rtol=0, atol=2e-6)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("dice_class, kwargs", [
    (PolyDiceLoss, dict(K=3, epsilon=1.0)),
    (PolyDiceLoss, dict(K=math.inf, epsilon=0.5)),
    (PolyTverskyLoss, dict(K=2, epsilon=0.0, alpha=0.3, beta=0.7)),
    (TverskyLoss, {}),
    (FocalTverskyLoss, dict(gamma=0.75)),
])
def test_dc_and_ce_with_our_dice_classes(dim, dice_class, kwargs):
    x, y = label_case(SHAPES[dim], seed=4, ignore=True)
    C = SHAPES[dim][1]
    value, grad = value_and_grad(dc_and_ce(dice_class, C, **kwargs), x, y)
    # the same sum, wired by hand: CE ignoring label C + our loss with the ignore label masked out
    mask = y != C
    ce = RobustCrossEntropyLoss(ignore_index=C)(x, y[:, 0])
    dice = dice_class(softmax_helper_dim1, batch_dice=True, do_bg=False, smooth=1e-5, ddp=False, **kwargs)
    torch.testing.assert_close(value, ce + dice(x, torch.where(mask, y, 0), mask), rtol=1e-6, atol=1e-6)
    assert torch.isfinite(grad).all()
    # the Dice part gives no gradient where the ignore label is, and neither does the CE
    assert grad.masked_select(~mask.expand_as(grad)).abs().max() == 0
    assert grad.masked_select(mask.expand_as(grad)).abs().max() > 0


# --------------------------------------------------------------------------------------------------
# DC_and_BCE_loss (regions, ignore channel last)


def dc_and_bce(dice_class, **dice_kwargs):
    soft_dice_kwargs = {"batch_dice": True, "do_bg": True, "smooth": 1e-5, "ddp": False, **dice_kwargs}
    return DC_and_BCE_loss({}, soft_dice_kwargs, use_ignore_label=True, dice_class=dice_class)


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_dc_and_bce_regions_with_poly_dice_k1_is_nnunet_default_plus_one(dim):
    x, y = region_case(SHAPES[dim], seed=5)
    ours, ours_grad = value_and_grad(dc_and_bce(PolyDiceLoss, K=1, epsilon=0.0), x, y)
    theirs, theirs_grad = value_and_grad(dc_and_bce(MemoryEfficientSoftDiceLoss), x, y)
    torch.testing.assert_close(ours, theirs + 1, rtol=0, atol=2e-6)
    torch.testing.assert_close(ours_grad, theirs_grad, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("dim", ["2d", "3d"])
@pytest.mark.parametrize("kwargs", [dict(K=3, epsilon=1.0), dict(K=math.inf, epsilon=0.0)])
def test_dc_and_bce_regions_with_poly_dice(dim, kwargs):
    x, y = region_case(SHAPES[dim], seed=6)
    value, grad = value_and_grad(dc_and_bce(PolyDiceLoss, **kwargs), x, y)
    mask = ~y[:, -1:]
    regions = y[:, :-1]
    bce = (torch.nn.BCEWithLogitsLoss(reduction="none")(x, regions.float()) * mask).sum() / mask.sum()
    dice = PolyDiceLoss(torch.sigmoid, batch_dice=True, do_bg=True, smooth=1e-5, ddp=False, **kwargs)
    torch.testing.assert_close(value, bce + dice(x, regions, mask), rtol=1e-6, atol=1e-6)
    assert grad.masked_select(~mask.expand_as(grad)).abs().max() == 0


# --------------------------------------------------------------------------------------------------
# deep supervision


def deep_supervision_inputs(dim, seed):
    x, y = label_case(SHAPES[dim], seed=seed, ignore=True)
    spatial = (slice(None), slice(None)) + (slice(None, None, 2),) * (x.ndim - 2)
    xs, ys = [x], [y]
    for _ in range(3):   # nnU-Net downsamples the target by nearest neighbour; the network outputs per scale
        xs.append(xs[-1][spatial].contiguous())
        ys.append(ys[-1][spatial].contiguous())
    return xs, ys


def nnunet_weights(n):
    weights = torch.tensor([1 / 2 ** i for i in range(n)])
    weights[-1] = 0   # as nnUNetTrainer._build_loss without DDP
    return (weights / weights.sum()).tolist()


@pytest.mark.parametrize("dim", ["2d", "3d"])
def test_deep_supervision_wrapper(dim):
    xs, ys = deep_supervision_inputs(dim, seed=7)
    C = SHAPES[dim][1]
    weights = nnunet_weights(len(xs))
    results = []
    for dice_class, kwargs in ((PolyDiceLoss, dict(K=1, epsilon=0.0)), (MemoryEfficientSoftDiceLoss, {}),
                               (PolyDiceLoss, dict(K=3, epsilon=1.0))):
        loss = DeepSupervisionWrapper(dc_and_ce(dice_class, C, **kwargs), weights)
        inputs = [x.clone().requires_grad_() for x in xs]
        value = loss(inputs, ys)
        value.backward()
        results.append((value.detach(), [x.grad for x in inputs], loss))
    (k1, k1_grads, _), (nn_value, nn_grads, _), (k3, k3_grads, k3_loss) = results
    # the +1 of each scale, weighted, adds up to sum(weights) = 1
    torch.testing.assert_close(k1, nn_value + 1, rtol=0, atol=5e-6)
    for a, b in zip(k1_grads[:-1], nn_grads[:-1]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)
    assert k1_grads[-1] is None and nn_grads[-1] is None     # weight 0: that output is never used
    manual = sum(w * k3_loss.loss(x, y) for w, x, y in zip(weights, xs, ys) if w != 0)
    torch.testing.assert_close(k3, manual.detach(), rtol=1e-6, atol=1e-6)
    assert all(torch.isfinite(g).all() for g in k3_grads[:-1])


# --------------------------------------------------------------------------------------------------
# DDP: batch Dice gathered over ranks with nnU-Net's AllGatherGrad (two gloo processes on CPU)

DDP_WORKER = textwrap.dedent("""
    import sys
    import torch
    import torch.distributed as dist
    rank, store, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo", init_method="file://" + store, rank=rank, world_size=2)
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
    from nnunetv2.utilities.helpers import softmax_helper_dim1
    from nnunet_polydice import PolyDiceLoss
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 8, 8, generator=g)
    labels = torch.randint(0, 3, (4, 1, 8, 8), generator=g)
    mine = slice(2 * rank, 2 * rank + 2)
    common = dict(apply_nonlin=softmax_helper_dim1, batch_dice=True, do_bg=False, smooth=1e-5, ddp=True)
    results = {}
    for name, loss in (("poly", PolyDiceLoss(**common, K=3, epsilon=1.0)),
                       ("k1", PolyDiceLoss(**common, K=1, epsilon=0.0)),
                       ("nnunet", MemoryEfficientSoftDiceLoss(**common))):
        x = logits[mine].clone().requires_grad_()
        value = loss(x, labels[mine])
        value.backward()
        results[name] = (value.detach(), x.grad)
    torch.save(results, out)
    dist.destroy_process_group()
""")


@pytest.mark.e2e
def test_ddp_batch_dice_over_two_ranks_equals_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "NNUNET_POLYDICE_NO_HOOK": "1",
           "nnUNet_raw": str(tmp_path), "nnUNet_preprocessed": str(tmp_path), "nnUNet_results": str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, str(script), str(rank), str(tmp_path / "store"),
                               str(tmp_path / f"{rank}.pt")],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank in range(2)]
    for proc in procs:
        output, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, output
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in range(2)]

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 8, 8, generator=g)
    labels = torch.randint(0, 3, (4, 1, 8, 8), generator=g)
    single = PolyDiceLoss(softmax_helper_dim1, batch_dice=True, do_bg=False, ddp=False, K=3, epsilon=1.0)
    value, grad = value_and_grad(single, logits, labels)
    for rank, results in enumerate(ranks):
        ddp_value, ddp_grad = results["poly"]
        torch.testing.assert_close(ddp_value, value)
        # AllGatherGrad sums the gradient over the 2 ranks; DDP then averages parameter gradients
        torch.testing.assert_close(ddp_grad / 2, grad[2 * rank: 2 * rank + 2], rtol=1e-5, atol=1e-9)
        torch.testing.assert_close(results["k1"][0], results["nnunet"][0] + 1, rtol=0, atol=1e-6)
        torch.testing.assert_close(results["k1"][1], results["nnunet"][1], rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# CUDA (skipped where there is none): same values as on the CPU, nnU-Net's fp16 autocast, compile

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
@pytest.mark.parametrize("kind", ["labels", "regions"])
@pytest.mark.parametrize("batch_dice", [False, True])
def test_cuda_matches_cpu_and_nnunet_under_fp16_autocast(kind, batch_dice):
    if kind == "labels":
        x, y = label_case(SHAPES["3d"], seed=8, ignore=True)
        mask = y != SHAPES["3d"][1]
        y = torch.where(mask, y, 0)
        common = dict(apply_nonlin=softmax_helper_dim1, batch_dice=batch_dice, do_bg=False, smooth=1e-5, ddp=False)
    else:
        x, y = region_case(SHAPES["3d"], seed=8)
        mask, y = ~y[:, -1:], y[:, :-1]
        common = dict(apply_nonlin=torch.sigmoid, batch_dice=batch_dice, do_bg=True, smooth=1e-5, ddp=False)
    cpu_value, cpu_grad = value_and_grad(PolyDiceLoss(**common, K=3, epsilon=1.0), x, y, mask)
    x, y, mask = x.cuda(), y.cuda(), mask.cuda()
    cuda_value, cuda_grad = value_and_grad(PolyDiceLoss(**common, K=3, epsilon=1.0), x, y, mask)
    torch.testing.assert_close(cuda_value.cpu(), cpu_value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cuda_grad.cpu(), cpu_grad, rtol=1e-4, atol=1e-8)

    def under_autocast(loss):
        def run(v, *args):
            with torch.autocast("cuda", dtype=torch.float16):
                return loss(v, *args)
        return run

    x16 = x.half()
    ours, ours_grad = value_and_grad(under_autocast(PolyDiceLoss(**common, K=1, epsilon=0.0)), x16, y, mask)
    theirs, theirs_grad = value_and_grad(under_autocast(MemoryEfficientSoftDiceLoss(**common)), x16, y, mask)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs + 1, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_grad.float(), theirs_grad.float(), rtol=1e-3, atol=1e-7)


@cuda
def test_cuda_compiled_dc_and_ce_matches_eager():
    x, y = label_case(SHAPES["2d"], seed=9, ignore=True)
    x, y = x.cuda(), y.cuda()
    loss = dc_and_ce(PolyDiceLoss, SHAPES["2d"][1], K=3, epsilon=1.0)
    eager = value_and_grad(loss, x, y)
    compiled = value_and_grad(torch.compile(loss), x, y)
    torch.testing.assert_close(compiled, eager, rtol=1e-5, atol=1e-6)
