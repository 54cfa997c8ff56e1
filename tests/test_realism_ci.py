"""Feature C2ST with its CI: same distribution ~0.5 with a CI holding 0.5; shifted > 0.9; n is reported."""

from __future__ import annotations

import numpy as np
import pytest

from encoder.realism import c2st_auroc, c2st_with_ci


def _gauss(n: int, shift: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(loc=shift, size=(n, 8))


def test_same_distribution_is_chance_with_a_ci_holding_half() -> None:
    res = c2st_with_ci(_gauss(150, 0.0, 1), _gauss(150, 0.0, 2), folds=3, seed=0, n_boot=300)
    assert res["n"] == [150, 150]
    assert res["auroc"] == pytest.approx(0.5, abs=0.1)
    assert res["ci"][0] < 0.5 < res["ci"][1]
    assert res["ci"][1] - res["ci"][0] < 0.25  # an interval, not everything


def test_shifted_distribution_is_told_apart_with_a_permutation_p() -> None:
    a, b = _gauss(120, 0.0, 1), _gauss(80, 1.0, 2)
    res = c2st_with_ci(a, b, folds=3, seed=0, n_boot=300, n_permutations=4)
    assert res["auroc"] > 0.9 and res["ci"][0] > 0.85 and res["n"] == [120, 80]
    assert res["auroc"] == pytest.approx(c2st_auroc(a, b, folds=3, seed=0))
    assert res["permutation_p"] == pytest.approx(1 / 5)  # no shuffled refit comes close
    assert abs(res["null_mean"] - 0.5) < 0.15
