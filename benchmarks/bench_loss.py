"""Time and peak memory of PolyDiceLoss against nnU-Net's MemoryEfficientSoftDiceLoss.

Four cases per shape and device, measured in the same run on the same inputs:

    dice      nnU-Net MemoryEfficientSoftDiceLoss            vs  PolyDiceLoss(K, epsilon)
    dc_ce     DC_and_CE_loss(dice_class=MemoryEfficient...)  vs  DC_and_CE_loss(dice_class=PolyDiceLoss)

with nnU-Net's trainer settings (softmax, do_bg=False, smooth=1e-5, ddp=False; batch Dice on for 2D,
off for 3D as nnU-Net plans them) on logits ``(B, C, *spatial)`` and a label map ``(B, 1, *spatial)``:
int16 as nnU-Net's data loader gives by default; ``--label-dtypes int16 int64 float32`` measures the dtypes
users meet (int64 is what ``torch.randint`` and most code outside nnU-Net pass), each on the same labels.
``--thread-counts 1 2`` repeats everything for each CPU thread count.

Time: forward + backward with respect to the logits; warm-up iterations first; then ``--repeats``
rounds, each running every case once in a freshly shuffled order (so a noisy neighbour on the
machine hits all cases alike); the median per case is reported (and the minimum, for reference);
the ratios use the medians. On CUDA every iteration ends with ``torch.cuda.synchronize()``. On a
CPU shared with other work, ``--threads 1`` gives steadier numbers.

Peak memory (what it means, honestly):
- CUDA: ``torch.cuda.max_memory_allocated()`` during one forward + backward, minus the memory allocated
  before it (inputs and the logits' gradient buffer from earlier runs are freed/reset first). This
  is the extra memory the loss needs on top of its inputs.
- CPU: torch has no allocator statistics on CPU and tracemalloc does not see its buffers. Each case
  runs in a fresh Python process: it builds the inputs, runs the loss once on a tiny input (lazy
  initialisation), reads its resident set size (``/proc/self/statm``), runs one forward + backward at
  full size and reads the peak resident set size (``ru_maxrss``). The difference is the peak extra
  memory of that forward + backward, at page granularity, including allocator slack. Repeated
  ``--mem-repeats`` times (fresh processes), median reported.

By default the devices are the CPU and, when present, CUDA (with nnU-Net's fp16 autocast, the logits
in fp16; ``--amp off`` for float32). Targets: time ratio <= 1.05, peak-memory ratio <= 1.02.

Examples::

    python benchmarks/bench_loss.py                                 # full shapes, CPU (+ CUDA)
    python benchmarks/bench_loss.py --quick                         # spatial /4, 3 repeats
    python benchmarks/bench_loss.py --device cpu --scale 2 --repeats 5
    python benchmarks/bench_loss.py --device cpu --shapes 2d --no-memory --label-dtypes int16 int64 float32 \
        --thread-counts 1 2                                         # the label dtypes and thread counts
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss  # noqa: E402
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss  # noqa: E402
from nnunetv2.utilities.helpers import softmax_helper_dim1  # noqa: E402

from nnunet_polydice import PolyDiceLoss  # noqa: E402

SHAPES = {"2d": (12, 4, 512, 512), "3d": (2, 4, 128, 128, 128)}
BATCH_DICE = {"2d": True, "3d": False}
CASES = ("dice:nnunet", "dice:poly", "dc_ce:nnunet", "dc_ce:poly")
TIME_TARGET, MEMORY_TARGET = 1.05, 1.02
LABEL_DTYPES = {"int16": torch.int16, "int32": torch.int32, "int64": torch.int64, "uint8": torch.uint8,
                "float32": torch.float32}
label_dtype = torch.int16   # of make_inputs' label map; set per run by main


def shape_of(name: str, scale: int):
    B, C, *spatial = SHAPES[name]
    return (B, C, *[max(1, s // scale) for s in spatial])


def make_loss(case: str, shape_name: str, K, epsilon):
    family, impl = case.split(":")
    dice_kwargs = {"batch_dice": BATCH_DICE[shape_name], "smooth": 1e-5, "do_bg": False, "ddp": False}
    if impl == "poly":
        dice_class, extra = PolyDiceLoss, {"K": K, "epsilon": epsilon}
    else:
        dice_class, extra = MemoryEfficientSoftDiceLoss, {}
    if family == "dice":
        return dice_class(apply_nonlin=softmax_helper_dim1, **dice_kwargs, **extra)
    return DC_and_CE_loss({**dice_kwargs, **extra}, {}, weight_ce=1, weight_dice=1, ignore_label=None,
                          dice_class=dice_class)


def make_inputs(shape, device, dtype, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    logits = torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_()
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g, dtype=torch.int16)
    labels = labels.to(device=device, dtype=label_dtype)   # the same labels in every dtype
    return logits, labels


def step(loss, logits, labels, device, amp):
    logits.grad = None
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
        value = loss(logits, labels)
    value.backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return value


def time_cases(shape_name, shape, device, amp, K, epsilon, warmup, repeats):
    dtype = torch.float16 if amp else torch.float32
    logits, labels = make_inputs(shape, device, dtype)
    losses = {case: make_loss(case, shape_name, K, epsilon) for case in CASES}
    for _ in range(warmup):
        for case in CASES:
            step(losses[case], logits, labels, device, amp)
    times = {case: [] for case in CASES}
    order = list(CASES)
    shuffle = random.Random(0).shuffle
    for _ in range(repeats):
        shuffle(order)   # a new order every round: no case always runs right after the same other one
        for case in order:
            start = time.perf_counter()
            step(losses[case], logits, labels, device, amp)
            times[case].append(time.perf_counter() - start)
    return {case: (statistics.median(values), min(values)) for case, values in times.items()}


def cuda_peak_memory(shape_name, shape, device, amp, K, epsilon):
    dtype = torch.float16 if amp else torch.float32
    peaks = {}
    for case in CASES:
        logits, labels = make_inputs(shape, device, dtype)
        loss = make_loss(case, shape_name, K, epsilon)
        step(loss, logits, labels, device, amp)          # allocates logits.grad once
        logits.grad = None
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(loss, logits, labels, device, amp)
        peaks[case] = torch.cuda.max_memory_allocated(device) - base
        del logits, labels, loss
    return peaks


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_memory_child(case, shape_name, shape, K, epsilon):
    """Run in a fresh process: peak RSS increase of one forward + backward, in bytes (printed)."""
    device = torch.device("cpu")
    loss = make_loss(case, shape_name, K, epsilon)
    tiny = (shape[0], shape[1], *[2] * (len(shape) - 2))
    step(loss, *make_inputs(tiny, device, torch.float32), device, False)   # lazy initialisation
    logits, labels = make_inputs(shape, device, torch.float32)
    before = _rss_bytes()
    step(loss, logits, labels, device, False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # kB on Linux
    print(json.dumps({"peak_extra": peak - before}))


def cpu_peak_memory(shape_name, shape, K, epsilon, repeats, args):
    peaks = {}
    for case in CASES:
        values = []
        for _ in range(repeats):
            cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--onehot", args.onehot,
                   "--label-dtypes", str(label_dtype).removeprefix("torch."), "--_memory-child", case,
                   "--_shape-name", shape_name,
                   "--_shape", ",".join(map(str, shape)), "--K", str(K), "--epsilon", str(epsilon)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            values.append(json.loads(out.strip().splitlines()[-1])["peak_extra"])
        peaks[case] = statistics.median(values)
    return peaks


def report(rows):
    print()
    header = f"{'device':<6} {'shape':<22} {'case':<14} {'median ms':>10} {'min ms':>9} {'peak extra MiB':>15}"
    print(header)
    print("-" * len(header))
    for row in rows:
        for case in CASES:
            mem = row["memory"].get(case)
            mem_text = f"{mem / 2 ** 20:15.1f}" if mem is not None else f"{'-':>15}"
            median, fastest = row["time"][case]
            print(f"{row['device']:<6} {str(row['shape']):<22} {case:<14} {median * 1e3:10.2f} {fastest * 1e3:9.2f} "
                  f"{mem_text}")
    print()
    print(f"Ratios PolyDiceLoss / nnU-Net (targets: time <= {TIME_TARGET}, peak memory <= {MEMORY_TARGET})")
    ok = True
    for row in rows:
        for family in ("dice", "dc_ce"):
            t = row["time"][f"{family}:poly"][0] / row["time"][f"{family}:nnunet"][0]
            verdict = "ok" if t <= TIME_TARGET else "MISS"
            text = (f"  {row['device']:<5} {row['shape_name']} {family:<6} labels {row['labels']:<7} threads "
                    f"{row['threads']:<3} time {t:.3f} {verdict}")
            ok &= t <= TIME_TARGET
            if row["memory"]:
                m = row["memory"][f"{family}:poly"] / max(row["memory"][f"{family}:nnunet"], 1)
                text += f"   memory {m:.3f} {'ok' if m <= MEMORY_TARGET else 'MISS'}"
                ok &= m <= MEMORY_TARGET
            print(text)
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CPU, and CUDA when present")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--scale", type=int, default=1, help="divide every spatial size by this (quick runs)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--mem-repeats", type=int, default=1, help="fresh processes per case for CPU memory")
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--quick", action="store_true", help="same as --scale 4 --repeats 3 --warmup 1")
    parser.add_argument("--amp", choices=["auto", "on", "off"], default="auto",
                        help="fp16 autocast as in nnU-Net training; auto: on for CUDA, off for CPU")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (CPU); default: torch's choice")
    parser.add_argument("--thread-counts", type=int, nargs="+", metavar="N",
                        help="run everything once per CPU thread count (overrides --threads)")
    parser.add_argument("--label-dtypes", nargs="+", choices=list(LABEL_DTYPES), default=["int16"],
                        help="dtypes of the label map, each measured on the same labels (default: int16)")
    parser.add_argument("--onehot", choices=["auto", "bool", "float"], default="auto",
                        help="dtype of PolyDiceLoss's one-hot target; auto: the library's choice "
                             "(the probabilities' dtype); bool re-checks that choice")
    parser.add_argument("--K", default="2")
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    parser.add_argument("--_shape-name", dest="shape_name", help=argparse.SUPPRESS)
    parser.add_argument("--_shape", dest="shape", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    K = math.inf if args.K.lower() == "inf" else int(args.K)

    global label_dtype
    label_dtype = LABEL_DTYPES[args.label_dtypes[0]]
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.onehot != "auto":
        import nnunet_polydice.loss.functional as functional

        functional._one_hot_dtype = (lambda probs: torch.bool) if args.onehot == "bool" else (lambda probs: probs.dtype)
    if args.memory_child:
        cpu_memory_child(args.memory_child, args.shape_name, tuple(int(s) for s in args.shape.split(",")), K,
                         args.epsilon)
        return 0
    if args.quick:
        args.scale, args.repeats, args.warmup = max(args.scale, 4), 3, 1

    devices = ["cpu"] if args.device in ("auto", "cpu") else []
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        devices.append("cuda")
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{torch.cuda.get_device_name() if 'cuda' in devices else 'no CUDA'}; "
          f"K={K}, epsilon={args.epsilon}, one-hot={args.onehot}, scale={args.scale}, repeats={args.repeats}, "
          f"warmup={args.warmup}")
    rows = []
    runs = [(device_name, threads, labels) for device_name in devices
            for threads in (args.thread_counts if args.thread_counts and device_name == "cpu" else [None])
            for labels in args.label_dtypes]
    for device_name, threads, labels in runs:
        device = torch.device(device_name)
        amp = args.amp == "on" or (args.amp == "auto" and device.type == "cuda")
        if threads:
            torch.set_num_threads(threads)
        label_dtype = LABEL_DTYPES[labels]
        for shape_name in args.shapes:
            shape = shape_of(shape_name, args.scale)
            started = time.perf_counter()
            times = time_cases(shape_name, shape, device, amp, K, args.epsilon, args.warmup, args.repeats)
            memory = {}
            if not args.no_memory:
                if device.type == "cuda":
                    memory = cuda_peak_memory(shape_name, shape, device, amp, K, args.epsilon)
                else:
                    memory = cpu_peak_memory(shape_name, shape, K, args.epsilon, args.mem_repeats, args)
            rows.append({"device": device_name, "shape_name": shape_name, "shape": shape, "amp": amp,
                         "labels": labels, "threads": torch.get_num_threads(), "time": times, "memory": memory})
            print(f"  {device_name} {shape_name} {shape} amp={amp} labels {labels} threads "
                  f"{torch.get_num_threads()}: {time.perf_counter() - started:.0f} s", flush=True)
    ok = report(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
