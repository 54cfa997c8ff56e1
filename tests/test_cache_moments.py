"""A crop's per-lead mean and std from the cache's block prefix sums equal a direct pass over the crop, and the
cached dataset's normalised crops equal today's per-crop ``normalize_leads`` of the mV signal (within 1e-5)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoder.datasets.cache import SUM_BLOCK, CachedEcgDataset, EcgCache, block_prefix_sums, crop_moments
from encoder.preprocess import normalize_leads

N, T, SHORT = 7, 1000, 700  # records, stored samples, real samples of the zero-padded record 2


def _memory_cache(dtype: str) -> EcgCache:
    """An in-memory cache: DC offsets up to 8 V (int16) or 8 mV (float16), a flat lead, a masked lead and a
    zero-padded short record."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, 12, T)) * rng.uniform(0.05, 2.0, (N, 12, 1)) + rng.uniform(-8, 8, (N, 12, 1))
    if dtype == "int16":
        signals, scale = np.rint(x * 1000).astype(np.int16), 1e-3  # stored units of 1 uV
    else:
        signals, scale = x.astype(np.float16), 1.0  # mV
    signals[1, 5] = signals[1, 5, 0]  # a flat (constant, non-zero) lead
    signals[2, :, SHORT:] = 0
    valid = np.full(N, T)
    valid[2] = SHORT
    mask = np.ones((N, 12), dtype=bool)
    mask[3, 4] = False
    sums = np.stack([block_prefix_sums(r) for r in signals])  # (N, 2, 12, J + 1)
    table = pd.DataFrame({"valid_length": valid})
    meta = {"scale": scale, "label_names": ["A", "B"], "sampling_rate": 100}
    labels = rng.integers(0, 2, (N, 2)).astype(np.uint8)
    return EcgCache(Path("in-memory"), meta, signals, labels, mask, table, sums)


def test_block_prefix_sums_are_the_cumulative_sums_at_block_boundaries() -> None:
    x = np.random.default_rng(1).integers(-30000, 30000, (12, 3 * SUM_BLOCK + 5)).astype(np.int16)
    got = block_prefix_sums(x)  # (2, 12, 4)
    full = np.concatenate([np.zeros((12, 1)), np.cumsum(x.astype(np.float64), axis=-1)], axis=-1)
    squares = np.concatenate([np.zeros((12, 1)), np.cumsum(x.astype(np.float64) ** 2, axis=-1)], axis=-1)
    at = np.arange(4) * SUM_BLOCK
    np.testing.assert_array_equal(got[0], full[:, at])
    np.testing.assert_array_equal(got[1], squares[:, at])


@pytest.mark.parametrize("dtype", ["int16", "float16"])
def test_crop_moments_equal_a_direct_pass(dtype: str) -> None:
    cache = _memory_cache(dtype)
    # (row, start, length): from 0, on and next to block boundaries, ending on one, inside one block, whole
    cases = [
        (0, 0, 250),
        (4, SUM_BLOCK, 2 * SUM_BLOCK),
        (5, SUM_BLOCK - 1, 130),
        (6, 70, 30),
        (0, 3, SUM_BLOCK),
    ]
    cases += [(6, 1, 2), (1, 0, T), (2, 0, SHORT), (3, 999, 1), (4, 17, 983)]
    rows, starts, lengths = (np.asarray(c) for c in zip(*cases, strict=True))
    c = int(lengths.max())
    crops = np.zeros((len(rows), 12, c), dtype=cache.signals.dtype)
    for b, (r, s, n) in enumerate(cases):
        crops[b, :, :n] = cache.signals[r, :, s : s + n]
    mean, std = crop_moments(cache.lead_sums, rows, crops, starts, lengths)
    assert mean.shape == std.shape == (len(rows), 12, 1)
    for b, (r, s, n) in enumerate(cases):
        x = cache.signals[r, :, s : s + n].astype(np.float64)
        np.testing.assert_allclose(mean[b, :, 0], x.mean(-1), rtol=1e-10, atol=1e-9)
        np.testing.assert_allclose(std[b, :, 0], x.std(-1), rtol=1e-7, atol=1e-6)


@pytest.mark.parametrize("crop", [T, 250, SUM_BLOCK - 24])
@pytest.mark.parametrize("mode", ["zscore", "center"])
@pytest.mark.parametrize("dtype", ["int16", "float16"])
def test_normalised_crops_equal_the_per_crop_normalisation(dtype: str, mode: str, crop: int) -> None:
    cache = _memory_cache(dtype)
    ds = CachedEcgDataset(cache, crop_samples=crop, random_crop=True, seed=3, normalization=mode)
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        got = ds.batch(np.arange(N))["ecg"].numpy()  # (N, 12, crop)
        for k in range(N):
            s, n = int(ds._starts[k]), min(int(cache.table["valid_length"][k]), crop)
            mv = cache.signals[k, :, s : s + n].astype(np.float32) * np.float32(cache.scale)
            expected = np.zeros((12, crop), dtype=np.float32)
            expected[:, :n] = normalize_leads(mv, cache.lead_mask[k], mode)
            np.testing.assert_allclose(got[k], expected, rtol=0, atol=1e-5, err_msg=f"record {k}")
    assert not got[1, 5].any() and not got[3, 4].any()  # the flat and the masked lead
    assert np.abs(got[0]).max() > 1.0  # not all zeros
