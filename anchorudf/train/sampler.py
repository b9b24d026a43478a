"""Data order as a pure function of (seed, step): exact resume, identical across restarts.

Dataset protocol
----------------
A training dataset implements ``__len__`` and ``__getitem__(key)`` with
``key = (index, seed)``: ``index`` picks the item (garment view), ``seed`` (a uint32) is
the ONLY source of randomness for that draw (query points, augmentation). The same key
always gives the same item, so a run resumed at step k sees exactly the batches an
uninterrupted run sees, and DataLoader workers need no shared RNG state.

Order
-----
The global stream of indices is a concatenation of epoch permutations (epoch e is a
permutation seeded by (seed, e)). Step s consumes stream positions
[s * batch_size, (s + 1) * batch_size); with W processes, rank r takes the r-th
contiguous slice of batch_size / W of them (``train.batch_size`` is the global batch).
An item's draw seed is derived from (seed, step, position in the global batch, index).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterator

import numpy as np


def item_seed(seed: int, step: int, slot: int, index: int) -> int:
    """uint32 seed of the draw of ``index`` at ``slot`` of the global batch at ``step``."""
    return int(np.random.SeedSequence([seed, step, slot, index]).generate_state(1)[0])


class StepBatchSampler:
    """Infinite batch sampler yielding this rank's list of (index, seed) keys per step.

    Use as ``DataLoader(dataset, batch_sampler=StepBatchSampler(...))``; iteration starts
    at ``start_step``.
    """

    def __init__(self, length: int, batch_size: int, seed: int, rank: int = 0, world: int = 1,
                 start_step: int = 0) -> None:
        if length < 1:
            raise ValueError("training dataset is empty: nothing to sample")
        if batch_size % world != 0:
            raise ValueError(f"train.batch_size {batch_size} is not divisible by the {world} processes")
        self.length = length
        self.batch_size = batch_size
        self.local = batch_size // world
        self.seed = seed
        self.rank = rank
        self.start_step = start_step

        @lru_cache(maxsize=4)
        def permutation(epoch: int) -> np.ndarray:
            rng = np.random.default_rng(np.random.SeedSequence([seed, epoch, 0x5EED]))
            return rng.permutation(length)

        self._permutation = permutation

    def keys(self, step: int) -> list[tuple[int, int]]:
        """This rank's (index, seed) keys at ``step``."""
        out = []
        for j in range(self.local):
            slot = self.rank * self.local + j
            pos = step * self.batch_size + slot
            index = int(self._permutation(pos // self.length)[pos % self.length])
            out.append((index, item_seed(self.seed, step, slot, index)))
        return out

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        step = self.start_step
        while True:
            yield self.keys(step)
            step += 1
