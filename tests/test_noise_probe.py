"""The noise probe: paired renders from real label rows, record scores at the tuned thresholds, the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoder.configuration import EcgEncoderConfig
from encoder.ecgqa.attributes import LEADS, NOISE_TYPES
from encoder.errors import ConfigError
from encoder.modeling import EcgEncoder
from encoder.noise_probe import (
    NoiseProbeConfig,
    main,
    real_masks,
    record_flags,
    record_scores,
    render_pair,
    run_noise_probe,
)


def test_real_masks_are_the_shipped_rows_lead_lists() -> None:
    electrodes = real_masks("electrodes problems")
    assert len(electrodes) == 6 and all(any(m) and len(m) == len(LEADS) for m in electrodes)
    assert len(real_masks("baseline drift")) > 100


def test_a_pair_is_reproducible_and_differs_only_by_its_noise_draws() -> None:
    masks = real_masks("static noise")
    a = render_pair("static noise", masks, seed=3, index=1, noise_scale=1.0)
    b = render_pair("static noise", masks, seed=3, index=1, noise_scale=1.0)
    np.testing.assert_array_equal(a.with_noise, b.with_noise)
    assert a.with_noise.shape == a.without.shape == (12, 1000) and a.leads in masks
    assert not np.allclose(a.with_noise, a.without)
    # without any background noise the twins differ by the annotated noise: more on its leads than elsewhere
    quiet = render_pair("static noise", masks, seed=3, index=1, noise_scale=0.0)
    diff = np.abs(quiet.with_noise - quiet.without).mean(axis=1)  # (12,)
    on = np.asarray(quiet.leads)
    assert diff[on].mean() > diff[~on].mean()


def test_record_scores_and_flags_read_one_noise_types_block() -> None:
    probs = np.zeros((2, len(NOISE_TYPES) + 1, 12))
    probs[0, NOISE_TYPES.index("burst noise"), 4] = 0.7  # record 0: burst noise on aVL
    probs[1, NOISE_TYPES.index("static noise"), 4] = 0.9  # record 1: another type only
    flat = probs.reshape(2, -1)
    np.testing.assert_allclose(record_scores(flat, "burst noise"), [0.7, 0.0])
    thresholds = [0.5] * flat.shape[1]
    np.testing.assert_array_equal(record_flags(flat, thresholds, "burst noise"), [True, False])
    thresholds[NOISE_TYPES.index("burst noise") * 12 + 4] = 0.8
    np.testing.assert_array_equal(record_flags(flat, thresholds, "burst noise"), [False, False])


def _encoder(tmp_path: Path, tasks: list[str]) -> Path:
    cfg = EcgEncoderConfig(widths=[8, 8, 8, 8], embed_dim=16, label_names=["SR", "AFIB"], aux_tasks=tasks)
    cfg.aux_thresholds = {"noise": [0.5] * 60} if "noise" in tasks else {}
    EcgEncoder(cfg).save_pretrained(tmp_path / "enc")
    return tmp_path / "enc"


def test_probe_writes_every_noise_type_with_its_auroc_and_flag_rates(tmp_path: Path) -> None:
    res = run_noise_probe(
        NoiseProbeConfig(encoder=str(_encoder(tmp_path, ["noise"])), out_dir=str(tmp_path / "out"), pairs=3,
                         n_boot=10)
    )  # fmt: skip
    saved = json.loads((tmp_path / "out" / "noise_probe.json").read_text())
    assert saved == res and list(res["types"]) == list(NOISE_TYPES)
    for r in res["types"].values():
        assert r["pairs"] == 3 and 0.0 <= r["auroc"] <= 1.0 and r["ci"][0] <= r["ci"][1]
        assert 0.0 <= r["sensitivity"] <= 1.0 and 0.0 <= r["false_positive_rate"] <= 1.0
    md = (tmp_path / "out" / "noise_probe.md").read_text()
    assert md.count("\n| ") == 1 + len(NOISE_TYPES) and "| electrodes problems | 6 |" in md


def test_probe_refuses_an_encoder_without_a_noise_head(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no noise head"):
        run_noise_probe(NoiseProbeConfig(encoder=str(_encoder(tmp_path, ["pacemaker"])), pairs=2))
    with pytest.raises(ConfigError, match="pairs"):
        NoiseProbeConfig(pairs=1)


def test_command_line_reports_a_missing_encoder_in_one_line(tmp_path: Path, capsys) -> None:
    assert main(["--encoder", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "No encoder in" in err and "Traceback" not in err
