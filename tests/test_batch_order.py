"""The global batch order: a seeded permutation per epoch, optionally grouped by length (less padding)."""

from __future__ import annotations

import numpy as np
import pytest

from encoder.engine.batches import BatchOrder
from encoder.errors import ConfigError


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    """Two populations of prompt lengths, as single-ECG (short) and comparison (long) questions."""
    rng = np.random.default_rng(seed)
    return [
        int(x) for x in np.where(rng.random(n) < 0.3, rng.integers(150, 350, n), rng.integers(60, 110, n))
    ]


def _real_over_padded(order: BatchOrder, lengths: list[int], epoch: int = 0) -> float:
    lens = np.asarray(lengths)
    batches = order.epoch(epoch)
    return sum(lens[b].sum() for b in batches) / sum(len(b) * lens[b].max() for b in batches)


@pytest.mark.parametrize("grouped", [False, True])
def test_each_epoch_is_seeded_and_covers_every_item_once_but_the_remainder(grouped: bool) -> None:
    lengths = _lengths(1003)
    order = BatchOrder(1003, 8, seed=3, lengths=lengths if grouped else None)
    again = BatchOrder(1003, 8, seed=3, lengths=lengths if grouped else None)
    for epoch in (0, 1):
        batches = order.epoch(epoch)
        flat = np.concatenate(batches)
        assert len(batches) == 125 and all(len(b) == 8 for b in batches)
        assert len(set(flat.tolist())) == 1000 and flat.min() >= 0 and flat.max() < 1003
        assert all((a == b).all() for a, b in zip(batches, again.epoch(epoch), strict=True))
    assert not all((a == b).all() for a, b in zip(order.epoch(0), order.epoch(1), strict=True))
    assert order.batch(125 + 4).tolist() == order.epoch(1)[4].tolist()  # batch i of the run = epoch, position


def test_grouping_by_length_cuts_padding_and_keeps_batch_lengths_shuffled() -> None:
    lengths = _lengths()
    plain, grouped = BatchOrder(1000, 8, 0), BatchOrder(1000, 8, 0, lengths)
    assert _real_over_padded(plain, lengths) < 0.75
    assert _real_over_padded(grouped, lengths) > 0.9
    # mega-batches come sorted by length; the batches are shuffled afterwards, so their lengths do not trend
    longest = np.array([max(lengths[i] for i in b) for b in grouped.epoch(0)])
    assert 0.3 < np.mean(longest[1:] <= longest[:-1]) < 0.7


def test_one_length_per_item_is_required() -> None:
    with pytest.raises(ConfigError, match="one length per item"):
        BatchOrder(10, 2, 0, lengths=[5] * 9)
