"""Seeded runs (nnunet_polydice.integration.seeding): the per-batch streams, without nnU-Net's trainer.

The end-to-end facts (two runs of one seeded name bit-identical with 2 augmentation workers, a killed run resumed
with --c identical to the uninterrupted one) are in tests/test_nnunet_integration.py."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from nnunet_polydice.integration.seeding import SeededBatches, batch_seeds, seeded_draw


class Draws:
    """A loader whose batch is one draw from each global generator (what nnU-Net's loader and transforms use)."""

    def __init__(self):
        self.thread_id = None

    def set_thread_id(self, thread_id):
        self.thread_id = thread_id

    def __next__(self):
        return (int(np.random.randint(1 << 30)), float(torch.rand(1)), random.random())


def test_batch_seeds_are_a_function_of_seed_stream_and_index_alone():
    assert batch_seeds(0, "train", 5) == batch_seeds(0, "train", 5)
    seen = {batch_seeds(s, st, i) for s in (0, 1) for st in ("train", "val", "weights") for i in range(50)}
    assert len(seen) == 2 * 3 * 50  # no two batches of these runs share seeds
    np_seed, torch_seed, py_seed = batch_seeds(2**32 - 1, "val", 10**9)
    assert 0 <= np_seed < 2**32 and 0 <= torch_seed < 2**64 and 0 <= py_seed < 2**64


def test_a_seeded_draw_leaves_the_global_generators_as_they_were():
    np.random.seed(123)
    torch.manual_seed(123)
    random.seed(123)
    expected = (np.random.rand(), float(torch.rand(1)), random.random())
    np.random.seed(123)
    torch.manual_seed(123)
    random.seed(123)
    with seeded_draw(batch_seeds(0, "train", 0)):
        inside = (np.random.rand(), float(torch.rand(1)), random.random())
    assert (np.random.rand(), float(torch.rand(1)), random.random()) == expected
    assert inside != expected


def test_workers_draw_the_single_threaded_stream_between_them():
    """Worker w of n draws batches start+w, start+w+n, ...: read round-robin, they are the one-process stream."""
    single = SeededBatches(Draws(), seed=4, stream="train", start=7)
    reference = [next(single) for _ in range(9)]
    workers, threads = [], torch.get_num_threads()
    for w in range(3):
        batches = SeededBatches(Draws(), seed=4, stream="train", start=7, workers=3)
        batches.set_thread_id(w)
        assert batches.loader.thread_id == w
        workers.append([next(batches) for _ in range(3)])
    torch.set_num_threads(threads)  # set_thread_id limits torch to one thread (in a worker, where it runs)
    round_robin = [workers[k % 3][k // 3] for k in range(9)]
    assert round_robin == reference


def test_a_stream_started_later_continues_the_earlier_one():
    """What a resumed run relies on: the stream started at index 5 is the first stream from its sixth batch on."""
    first = SeededBatches(Draws(), seed=1, stream="val", start=0)
    drawn = [next(first) for _ in range(8)]
    later = SeededBatches(Draws(), seed=1, stream="val", start=5)
    assert [next(later) for _ in range(3)] == drawn[5:]


@pytest.mark.parametrize("other", [dict(seed=2, stream="train"), dict(seed=1, stream="val")])
def test_other_seeds_and_streams_draw_other_batches(other):
    one = SeededBatches(Draws(), seed=1, stream="train", start=0)
    two = SeededBatches(Draws(), start=0, **other)
    assert [next(one) for _ in range(4)] != [next(two) for _ in range(4)]


def test_the_wrapper_passes_other_attributes_through_to_nnunets_loader():
    loader = Draws()
    loader.batch_size = 3
    assert SeededBatches(loader, 0, "train", 0).batch_size == 3
