"""The order of the global batches, pure in (seed, epoch), and each process's share of every global batch.

A run's batch ``i`` is batch ``i % per_epoch`` of epoch ``i // per_epoch``, so a run resumed at any step replays
the batches an uninterrupted run would have seen, and N processes together see exactly the global batches one
process sees: process ``r`` takes the ``r``-th contiguous block of each (rank order = batch order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from encoder.errors import ConfigError


class BatchOrder:
    """Global batches over ``n`` items: each epoch is a permutation of 0..n-1 seeded by (seed, epoch), cut into
    ``n // batch_size`` full batches (the remainder is left out of that epoch).

    ``lengths`` given (one per item, e.g. tokens): items of similar length share a batch, so little of a padded
    batch is padding. The permutation is grouped with transformers' ``get_length_grouped_indices`` (mega-batches
    sorted by length), and the batches are then shuffled, so batch length does not trend over the epoch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None) -> None:
        if n < batch_size:
            raise ConfigError(
                f"batch_size={batch_size} is larger than the {n} training items; lower batch_size or add data."
            )
        if lengths is not None and len(lengths) != n:
            raise ConfigError(
                f"BatchOrder got {len(lengths)} lengths for {n} items; give one length per item."
            )
        self.n, self.batch_size, self.seed, self.lengths = n, batch_size, seed, lengths
        self.per_epoch = n // batch_size
        self._epoch: tuple[int, list[np.ndarray]] | None = None

    def _permutation(self, epoch: int) -> np.ndarray:
        if self.lengths is None:
            return np.random.default_rng((self.seed, 7919, epoch)).permutation(self.n)
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(
            int(np.random.default_rng((self.seed, 7919, epoch)).integers(2**62))
        )
        grouped = np.asarray(
            get_length_grouped_indices(list(self.lengths), self.batch_size, generator=generator)
        )
        batches = grouped[: self.per_epoch * self.batch_size].reshape(self.per_epoch, self.batch_size)
        return batches[np.random.default_rng((self.seed, 7919, epoch, 1)).permutation(self.per_epoch)].ravel()

    def epoch(self, epoch: int) -> list[np.ndarray]:
        """The full batches of ``epoch`` (positions 0..n-1), in order."""
        if self._epoch is None or self._epoch[0] != epoch:
            perm = self._permutation(epoch)
            cut = [perm[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.per_epoch)]
            self._epoch = (epoch, cut)
        return self._epoch[1]

    def batch(self, index: int) -> np.ndarray:
        """Global batch ``index`` of the run (epochs follow each other)."""
        epoch, k = divmod(index, self.per_epoch)
        return self.epoch(epoch)[k]


def shard(positions: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Process ``rank``'s contiguous block of a global batch (``world`` equal blocks)."""
    if len(positions) % world:
        raise ConfigError(
            f"A global batch of {len(positions)} does not split evenly over {world} processes; "
            "choose a batch_size that is a multiple of the process count."
        )
    size = len(positions) // world
    return positions[rank * size : (rank + 1) * size]


def batch_loader(
    dataset: Any, batches: Sequence[np.ndarray], num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """A DataLoader yielding ``dataset[positions]`` (one whole-batch fetch, e.g. ``CachedEcgDataset.batch``) for
    each entry of ``batches``, in that order, read ahead by ``num_workers`` worker processes (0 = in this one)."""
    return torch.utils.data.DataLoader(
        dataset,
        sampler=[list(map(int, b)) for b in batches],
        batch_size=None,
        num_workers=num_workers,
        generator=torch.Generator(),  # its own: starting an iterator must not draw from the global RNG (dropout)
    )
