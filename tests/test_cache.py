"""Memory-mapped signal cache: lossless int16, keying, atomic reuse, data safety, crops."""

import json
import os
import pickle

import numpy as np
import pytest
import torch

from encoder.datasets.cache import (
    SUM_BLOCK,
    BuildCacheConfig,
    CachedEcgDataset,
    EcgCache,
    batch_loader,
    block_prefix_sums,
    build_cache,
    run_build_cache,
)
from encoder.datasets.ptbxl import PtbXl
from encoder.datasets.testing import write_tiny_ptbxl
from encoder.errors import ConfigError, DatasetError
from encoder.preprocess import center_per_lead, normalize_per_lead


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_tiny_ptbxl(tmp_path_factory.mktemp("ptbxl"), num_records=12, seed=1)


def test_lossless_int16_round_trip_and_index(root, tmp_path):
    ds = PtbXl(root)
    cache = build_cache(ds, tmp_path / "c", progress=False)
    assert cache.signals.dtype == np.int16 and cache.meta["lossless"] and cache.scale == pytest.approx(1e-3)
    assert isinstance(cache.signals, np.memmap)
    assert cache.signals.shape == (len(ds), 12, 1000)
    for i in (0, 5, len(ds) - 1):
        np.testing.assert_array_equal(np.rint(cache.signal_mv(i) * 1000), np.rint(ds.read(i).signal * 1000))
    np.testing.assert_array_equal(cache.labels, ds.multi_hot())
    assert cache.label_names == ds.label_names and cache.sampling_rate == 100
    assert cache.table["labels"].tolist() == ds.table["labels"].tolist()
    assert cache.table["text"].tolist() == ds.table["text"].tolist()
    np.testing.assert_array_equal(cache.split_indices("test"), ds.split_indices("test"))
    ids = cache.table["ecg_id"].to_numpy()
    np.testing.assert_array_equal(cache.rows_for_ecg_ids([ids[4], ids[1]]), [4, 1])
    with pytest.raises(DatasetError, match="1 ecg_id.*999"):
        cache.rows_for_ecg_ids([ids[0], 999])


def test_reused_and_keyed_by_settings(root, tmp_path):
    ds = PtbXl(root)
    a = build_cache(ds, tmp_path, progress=False)
    stamp = os.stat(a.path / "signals.npy").st_mtime_ns
    b = build_cache(PtbXl(root), tmp_path, progress=False)
    assert b.path == a.path and os.stat(b.path / "signals.npy").st_mtime_ns == stamp  # reused, not rebuilt
    c = build_cache(PtbXl(root, task="rhythm"), tmp_path, progress=False)
    d = build_cache(ds, tmp_path, seconds=5.0, progress=False)
    e = build_cache(ds, tmp_path, bandpass_hz=(0.5, 40.0), progress=False)
    assert len({a.path, c.path, d.path, e.path}) == 4
    assert d.signals.shape[-1] == 500
    assert e.signals.dtype == np.float16 and not e.meta["lossless"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")) == []  # no temp leftovers


def test_float16_option_and_int16_refusal(root, tmp_path):
    ds = PtbXl(root)
    f = build_cache(ds, tmp_path, dtype="float16", progress=False)
    assert f.signals.dtype == np.float16
    np.testing.assert_allclose(f.signal_mv(0), ds.read(0).signal, atol=2e-3)
    with pytest.raises(ConfigError, match="lossless"):
        build_cache(ds, tmp_path, dtype="int16", bandpass_hz=(0.5, 40.0), progress=False)


def test_never_writes_inside_the_dataset(root):
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(DatasetError, match="inside the dataset"):
        build_cache(PtbXl(root), root / "cache", progress=False)
    with pytest.raises(DatasetError, match="inside the dataset"):
        build_cache(PtbXl(root), root, progress=False)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_failed_build_leaves_nothing_and_skips_bad_records(root, tmp_path):
    ds = PtbXl(root)
    bad = tmp_path / "data"
    import shutil

    shutil.copytree(root, bad)
    (bad / ds.table["filename"].iloc[2]).with_suffix(".dat").write_bytes(b"\x00\x01")  # truncated .dat
    ds_bad = PtbXl(bad)
    with pytest.raises(DatasetError, match="cannot be read"):
        build_cache(ds_bad, tmp_path / "c1", on_error="raise", progress=False)
    assert list((tmp_path / "c1").iterdir()) == []  # no half cache, no temp dir
    cache = build_cache(ds_bad, tmp_path / "c2", progress=False)
    assert len(cache) == len(ds) - 1
    assert [s["ecg_id"] for s in cache.meta["skipped"]] == [int(ds.table["ecg_id"].iloc[2])]
    assert int(ds.table["ecg_id"].iloc[2]) not in set(cache.table["ecg_id"])
    assert cache.lead_sums.shape == (len(ds) - 1, 2, 12, 1000 // SUM_BLOCK + 1)
    for row in (1, 2, len(cache) - 1):  # the compacted prefix sums stay aligned with the compacted signals
        np.testing.assert_array_equal(cache.lead_sums[row], block_prefix_sums(cache.signals[row]))


def test_cached_dataset_crops_match_inference_normalisation(root, tmp_path):
    cache = build_cache(PtbXl(root), tmp_path, progress=False)
    centre = CachedEcgDataset(cache, crop_samples=250, random_crop=False)
    item = centre[1]
    assert item["ecg"].shape == (12, 250) and item["ecg"].dtype == torch.float32
    assert item["labels"].dtype == torch.float32 and item["index"] == 1
    expected = normalize_per_lead(cache.signal_mv(1)[:, 375:625])
    np.testing.assert_allclose(item["ecg"].numpy(), expected, atol=1e-5)

    rnd = CachedEcgDataset(
        cache, indices=cache.split_indices("train"), crop_samples=250, random_crop=True, seed=7
    )
    again = CachedEcgDataset(
        cache, indices=cache.split_indices("train"), crop_samples=250, random_crop=True, seed=7
    )
    a = [rnd[k]["ecg"] for k in range(len(rnd))]
    assert all(torch.equal(x, again[k]["ecg"]) for k, x in enumerate(a))  # seeded
    rnd.set_epoch(1)
    assert not all(torch.equal(x, rnd[k]["ecg"]) for k, x in enumerate(a))  # new crops next epoch
    loader = torch.utils.data.DataLoader(rnd, batch_size=4, shuffle=True)
    batch = next(iter(loader))
    assert batch["ecg"].shape == (4, 12, 250) and batch["labels"].shape == (4, len(cache.label_names))
    with pytest.raises(ConfigError):
        CachedEcgDataset(cache, crop_samples=5000)
    amplitude = CachedEcgDataset(cache, crop_samples=250, normalization="center")[1]["ecg"].numpy()
    np.testing.assert_allclose(amplitude, center_per_lead(cache.signal_mv(1)[:, 375:625]), atol=1e-5)
    with pytest.raises(ConfigError, match="input_normalization"):
        CachedEcgDataset(cache, normalization="minmax")


def test_batch_loader_equals_per_item_access(root, tmp_path):
    cache = build_cache(PtbXl(root), tmp_path, progress=False)
    ds = CachedEcgDataset(
        cache, indices=cache.split_indices("train"), crop_samples=300, random_crop=True, seed=3
    )
    batches = list(batch_loader(ds, batch_size=4, shuffle=True, seed=5))
    assert sum(len(b["index"]) for b in batches) == len(ds)
    seen = torch.cat([b["index"] for b in batches]).tolist()
    assert sorted(seen) == sorted(ds.indices.tolist())  # every row once
    position = {int(r): k for k, r in enumerate(ds.indices)}
    for b in batches:
        for j, row in enumerate(b["index"].tolist()):
            item = ds[position[row]]
            torch.testing.assert_close(b["ecg"][j], item["ecg"])
            torch.testing.assert_close(b["labels"][j], item["labels"])
    again = torch.cat([b["index"] for b in batch_loader(ds, batch_size=4, shuffle=True, seed=5)]).tolist()
    assert again == seen  # seeded order
    clone = pickle.loads(pickle.dumps(ds))  # what a spawned DataLoader worker receives
    assert len(pickle.dumps(ds)) < cache.signals.nbytes  # the memmap is re-opened, not copied
    torch.testing.assert_close(clone[2]["ecg"], ds[2]["ecg"])


def test_padded_short_records_and_open_errors(root, tmp_path):
    cache = build_cache(PtbXl(root), tmp_path, seconds=12.0, progress=False)
    assert cache.signals.shape[-1] == 1200 and (cache.table["valid_length"] == 1000).all()
    assert not np.asarray(cache.signals[0, :, 1000:]).any()
    item = CachedEcgDataset(cache, crop_samples=1100)[0]["ecg"]
    assert not item[:, 1000:].any() and abs(float(item[:, :1000].std()) - 1.0) < 0.01
    with pytest.raises(DatasetError, match="not a signal cache"):
        EcgCache.open(tmp_path / "nothing")
    meta = json.loads((cache.path / "meta.json").read_text())
    meta["format_version"] = 0
    (cache.path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="format version"):
        EcgCache.open(cache.path)


def test_run_build_cache_cli_runner(root, tmp_path, capsys):
    path = run_build_cache(BuildCacheConfig(ptbxl=str(root), cache_dir=str(tmp_path), task="form"))
    assert (path / "config.yaml").is_file() and (path / "signals.npy").is_file()
    assert len(EcgCache.open(path)) == 4  # only 4 of the 12 records carry a form statement
    kept = run_build_cache(
        BuildCacheConfig(ptbxl=str(root), cache_dir=str(tmp_path), task="form", drop_unlabeled=False)
    )
    assert kept != path and len(EcgCache.open(kept)) == 12
    assert "int16" in capsys.readouterr().out
    with pytest.raises(ConfigError):
        run_build_cache(BuildCacheConfig())
