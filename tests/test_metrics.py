"""Learning-curve figures: labels to a threshold, value at a count, area under the curve."""

import math

import numpy as np
import pytest

from aeep_core.bench.metrics import aulc, auroc, labels_to, spread, value_at

N = [20, 40, 60, 80, 100]
ACC = [0.50, 0.80, 0.90, 0.85, 0.95]


def test_labels_to_is_the_first_count_that_reaches_the_threshold():
    assert labels_to(N, ACC, 0.90) == 60  # reached at 60 even though it dips at 80
    assert labels_to(N, ACC, 0.95) == 100  # >= counts
    assert labels_to(N, ACC, 0.50) == 20
    assert labels_to(N, ACC, 0.96) is None


def test_labels_to_skips_missing_values():
    assert labels_to(N, [None, 0.8, None, 0.97, 0.99], 0.9) == 80


def test_value_at_interpolates_and_refuses_to_extrapolate():
    assert value_at(N, ACC, 40) == pytest.approx(0.80)
    assert value_at(N, ACC, 50) == pytest.approx(0.85)
    assert value_at(N, ACC, 10) is None
    assert value_at(N, ACC, 120) is None


def test_aulc_is_the_mean_value_under_trapezoids():
    # trapezoids: (0.5+0.8)/2, (0.8+0.9)/2, (0.9+0.85)/2, (0.85+0.95)/2, each 20 wide, over 80
    expected = (0.65 + 0.85 + 0.875 + 0.9) / 4
    assert aulc(N, ACC) == pytest.approx(expected)
    assert aulc([0, 10], [1.0, 1.0]) == pytest.approx(1.0)
    assert aulc([0, 10], [0.0, 1.0]) == pytest.approx(0.5)


def test_aulc_on_a_sub_range_and_outside_the_curve():
    assert aulc(N, ACC, 40, 60) == pytest.approx(0.85)
    assert aulc(N, ACC, 30, 50) == pytest.approx((0.725 + 0.825) / 2)  # ends interpolated: 0.65, 0.80, 0.85
    assert aulc(N, ACC, 10, 100) is None  # the curve does not cover the range
    assert aulc(N, ACC, 60, 60) == pytest.approx(0.90)
    assert aulc([], []) is None


def test_aulc_prefers_the_curve_that_gets_there_sooner():
    slow, fast = [0.5, 0.6, 0.7, 0.9, 0.95], [0.5, 0.85, 0.9, 0.93, 0.95]
    assert aulc(N, fast) > aulc(N, slow)


def test_curves_must_be_consistent():
    with pytest.raises(ValueError):
        labels_to([20, 40], [0.5], 0.4)
    with pytest.raises(ValueError):
        aulc([40, 20], [0.5, 0.6])


def test_spread_counts_missing_values():
    s = spread([0.9, None, 0.7])
    assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1)
    assert (s["n"], s["missing"], s["min"], s["max"]) == (2, 1, 0.7, 0.9)
    empty = spread([None])
    assert empty["mean"] is None and empty["missing"] == 1


def test_auroc_matches_the_pairwise_definition():
    rng = np.random.default_rng(0)
    scores = np.round(rng.random(60), 1)  # rounding makes ties
    labels = rng.random(60) < 0.4
    pos, neg = scores[labels], scores[~labels]
    expected = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert auroc(scores, labels) == pytest.approx(expected)
    assert auroc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert auroc(np.array([0.1, 0.9]), np.array([1, 1])) is None
    assert not math.isnan(auroc(np.zeros(4), np.array([0, 1, 0, 1])))
