"""Seeded nnU-Net runs (``_s<N>`` names): every random draw of a training a function of the seed alone.

nnU-Net keeps training non-deterministic on purpose. A seeded trainer fixes, from its seed ``N``:

- the weights: ``random``, numpy and torch are seeded from ``(N, "weights")`` just before nnU-Net's
  ``initialize()`` builds the network (so every trainer with the same architecture and seed starts from the
  same weights, whatever its loss);
- every batch: batch ``b`` of the training stream (cases, patches, every augmentation draw) and of the
  validation stream (the patches behind the pseudo Dice) is drawn with ``random``, numpy and torch seeded
  from ``(N, stream, b)`` alone (:func:`batch_seeds`), in whichever process draws it. Batches therefore do not
  depend on the number of augmentation workers or on their timing, two trainers with the same seed see the
  same batches (common random numbers: their difference is the loss's), and a run resumed with ``--c`` at
  epoch E draws exactly the batches the uninterrupted run drew from epoch E on (the batch index is known from
  E, the iterations per epoch and the one batch nnU-Net draws when it starts its loaders).

How, without copying nnU-Net's ``get_dataloaders``: for the duration of that call, the two augmenter classes
it looks up in its module (``NonDetMultiThreadedAugmenter``, whose batch order is a race, and
``SingleThreadedAugmenter`` for ``nnUNet_n_proc_DA=0``) are replaced by factories that wrap nnU-Net's own
data loader in :class:`SeededBatches` and return batchgenerators' ``MultiThreadedAugmenter`` (one queue per
worker, read round-robin: worker ``w`` of ``n`` draws batches ``w, w + n, ...``) or the single-threaded one.
Each worker limits torch to one thread (with more, forked workers can deadlock). nnU-Net 2.5-2.8 build the
training augmenter first, then the validation one, in ``nnUNetTrainer.get_dataloaders``; a base trainer that
builds its loaders elsewhere is refused with a sentence rather than run unseeded.

On CUDA a seeded run also sets ``cudnn.benchmark = False`` and ``cudnn.deterministic = True`` (after
``nnUNetv2_train`` has switched benchmarking on), ``torch.use_deterministic_algorithms(True, warn_only=True)``
and, where the user has not set it, ``CUBLAS_WORKSPACE_CONFIG=:4096:8``. ``torch.compile`` stays as nnU-Net
decides (``nnUNet_compile``); compiled kernels are not guaranteed to be bit-identical between runs.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["STREAMS", "SeededBatches", "SeededRunMixin", "batch_seeds", "seeded_draw", "seed_everything"]

# Stream identifiers mixed into the seed sequence, fixed forever: changing one changes every seeded result.
STREAMS = {"weights": 0, "train": 1, "val": 2}


def batch_seeds(seed: int, stream: str, index: int) -> tuple[int, int, int]:
    """``(numpy_seed, torch_seed, python_seed)`` of batch ``index`` of ``stream`` in the run seeded ``seed``.

    numpy's ``SeedSequence([seed, STREAMS[stream], index])`` spreads the three integers over independent
    words (numpy: 32-bit legacy seed; torch and ``random``: 64-bit), so nearby seeds and batches do not give
    correlated streams.
    """
    words = np.random.SeedSequence([int(seed), STREAMS[stream], int(index)]).generate_state(5, dtype=np.uint32)
    return int(words[0]), int(words[1]) << 32 | int(words[2]), int(words[3]) << 32 | int(words[4])


def seed_everything(seeds: tuple[int, int, int]) -> None:
    """Seed numpy's and torch's global generators and ``random`` (the ones nnU-Net and its transforms use)."""
    np.random.seed(seeds[0])
    torch.manual_seed(seeds[1])
    random.seed(seeds[2])


@contextlib.contextmanager
def seeded_draw(seeds: tuple[int, int, int]):
    """Inside the block the global generators are seeded with ``seeds``; after it they are as before."""
    saved = np.random.get_state(), torch.get_rng_state(), random.getstate()
    seed_everything(seeds)
    try:
        yield
    finally:
        np.random.set_state(saved[0])
        torch.set_rng_state(saved[1])
        random.setstate(saved[2])


class SeededBatches:
    """nnU-Net's data loader, each batch drawn under :func:`seeded_draw` of its global index.

    ``start`` is the index of the first batch; with ``workers`` > 0 the wrapper is copied into each worker of
    a ``MultiThreadedAugmenter``, which calls ``set_thread_id(w)`` there: worker ``w`` then draws indices
    ``start + w, start + w + workers, ...``, the order in which the augmenter hands batches out.
    """

    def __init__(self, loader, seed: int, stream: str, start: int, workers: int = 0):
        self.loader, self.seed, self.stream = loader, int(seed), stream
        self.next_index, self.step = int(start), max(1, int(workers))

    def set_thread_id(self, thread_id: int) -> None:
        torch.set_num_threads(1)
        self.next_index += int(thread_id)
        self.loader.set_thread_id(thread_id)

    def __iter__(self):
        return self

    def __next__(self):
        index = self.next_index
        self.next_index += self.step
        with seeded_draw(batch_seeds(self.seed, self.stream, index)):
            return next(self.loader)

    def __getattr__(self, name):  # anything else nnU-Net or batchgenerators asks of the loader
        if name == "loader":  # not set yet (unpickling in a spawned worker)
            raise AttributeError(name)
        return getattr(self.loader, name)


@contextlib.contextmanager
def _replaced(module, replacements: dict):
    before = {name: getattr(module, name) for name in replacements}
    for name, value in replacements.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            setattr(module, name, value)


def _augmenter_factories(seed: int, starts: dict, made: list) -> dict:
    """Stand-ins for the two augmenter classes nnU-Net's ``get_dataloaders`` builds: the first call is the
    training stream, the second the validation stream."""
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

    def next_stream() -> str:
        stream = ("train", "val")[len(made)] if len(made) < 2 else "extra"
        if stream == "extra":
            raise RuntimeError("nnU-Net built more than two augmenters in get_dataloaders; a seeded run cannot "
                               "tell which stream each one is.")
        return stream

    def multi(data_loader, transform, num_processes, num_cached=2, seeds=None, pin_memory=False, wait_time=0.02,
              **_ignored):
        stream = next_stream()
        batches = SeededBatches(data_loader, seed, stream, starts[stream], workers=num_processes)
        aug = MultiThreadedAugmenter(batches, transform, num_processes,
                                     num_cached_per_queue=max(2, -(-num_cached // num_processes)),
                                     seeds=None, pin_memory=pin_memory, wait_time=wait_time)
        made.append(aug)
        return aug

    def single(data_loader, transform=None, *args, **kwargs):
        stream = next_stream()
        aug = SingleThreadedAugmenter(SeededBatches(data_loader, seed, stream, starts[stream]), transform)
        made.append(aug)
        return aug

    return {"NonDetMultiThreadedAugmenter": multi, "SingleThreadedAugmenter": single}


def _make_deterministic_on_cuda() -> None:
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


class SeededRunMixin:
    """Mixed in before an nnU-Net trainer class when its name ends in ``_s<N>`` (``polyloss_spec.seed``)."""

    polyloss_spec = None
    print_to_log_file: Callable

    @property
    def run_seed(self) -> int | None:
        return getattr(self.polyloss_spec, "seed", None)

    def initialize(self):
        if self.run_seed is not None and not self.was_initialized:
            if self.device.type == "cuda":
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            seed_everything(batch_seeds(self.run_seed, "weights", 0))
        super().initialize()

    def on_train_start(self):
        if self.run_seed is not None and self.device.type == "cuda":
            _make_deterministic_on_cuda()  # nnUNetv2_train turned cudnn.benchmark on after building us
        super().on_train_start()

    def get_dataloaders(self):
        if self.run_seed is None:
            return super().get_dataloaders()
        from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as trainer_module

        epoch = int(self.current_epoch)
        # nnU-Net draws one batch of each stream when it starts them, then num_iterations per epoch: a run started
        # at epoch E draws, as that first batch, the last batch the uninterrupted run drew in epoch E - 1.
        starts = {"train": epoch * self.num_iterations_per_epoch, "val": epoch * self.num_val_iterations_per_epoch}
        made = []
        with _replaced(trainer_module, _augmenter_factories(self.run_seed, starts, made)):
            loaders = super().get_dataloaders()
        if len(made) != 2 or any(not isinstance(getattr(a, "generator", getattr(a, "data_loader", None)),
                                                SeededBatches) for a in loaders):
            raise RuntimeError(f"{type(self).__name__}: its base trainer builds its data loaders without "
                               f"nnUNetTrainer.get_dataloaders' augmenters, so its seed cannot fix them; train the "
                               f"name without _s{self.run_seed}.")
        self.print_to_log_file(
            f"Seeded run (seed {self.run_seed}): weights and every training and validation batch are functions of "
            f"the seed; batches from index {starts['train']} (training) and {starts['val']} (validation), "
            f"epoch {epoch}." + (" Resumed: the batches continue the uninterrupted run's stream." if epoch else ""))
        return loaders
