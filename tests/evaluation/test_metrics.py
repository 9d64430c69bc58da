"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from itemaffinity.evaluation.metrics import (RANKING_METRICS, catalog_coverage, intra_list_diversity,
                                             popularity_bias, ratio_interval, thirds)
from itemaffinity.models.base import rank_top_n


def test_single_target_metrics() -> None:
    top = np.array([[5, 3, 9, -1], [1, 2, 3, 4], [7, 8, 9, 10]])
    targets = [np.array([3]), np.array([9]), np.array([7])]
    m = {name: fn(top, targets, 4) for name, fn in RANKING_METRICS.items()}
    assert m["HR"].tolist() == [1.0, 0.0, 1.0]
    assert m["MRR"].tolist() == pytest.approx([0.5, 0.0, 1.0])
    assert m["NDCG"].tolist() == pytest.approx([1 / np.log2(3), 0.0, 1.0])
    assert m["Precision"].tolist() == pytest.approx([0.25, 0.0, 0.25])


def test_multi_target_metrics() -> None:
    top = np.array([[1, 2, 3, 4]])
    targets = [np.array([2, 4, 8])]
    assert RANKING_METRICS["Recall"](top, targets, 4)[0] == pytest.approx(2 / 3)
    dcg = 1 / np.log2(3) + 1 / np.log2(5)
    idcg = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert RANKING_METRICS["NDCG"](top, targets, 4)[0] == pytest.approx(dcg / idcg)
    assert RANKING_METRICS["MAP"](top, targets, 4)[0] == pytest.approx((1 / 2 + 2 / 4) / 3)
    assert RANKING_METRICS["HR"](top, targets, 1)[0] == 0.0


def test_beyond_accuracy() -> None:
    top = np.array([[0, 1], [0, 2]])
    assert catalog_coverage(top, 10) == pytest.approx(0.3)
    assert popularity_bias(np.array([[2]]), np.array([1.0, 5.0, 9.0])) == pytest.approx(1.0)
    cats = np.array(["a", "a", "b"], dtype=object)
    assert intra_list_diversity(np.array([[0, 1], [0, 2]]), cats) == pytest.approx(0.5)


def test_rank_top_n_excludes_and_restricts() -> None:
    import scipy.sparse as sp

    scores = np.array([[0.1, 0.9, 0.5, 0.7]], dtype=np.float32)
    idx, val = rank_top_n(scores.copy(), 2)
    assert idx.tolist() == [[1, 3]]
    idx, _ = rank_top_n(scores.copy(), 2, exclude=sp.csr_matrix(np.array([[0, 1, 0, 0]])))
    assert idx.tolist() == [[3, 2]]
    idx, _ = rank_top_n(scores.copy(), 3, candidates=np.array([0, 2]))
    assert idx.tolist() == [[2, 0, -1]]


def test_ratio_interval_is_paired() -> None:
    rng = np.random.default_rng(1)
    b = rng.random(2000)
    ratio, lo, hi = ratio_interval(1.1 * b, b)  # a fixed ratio on every query: no resample can move it
    assert ratio == pytest.approx(1.1) and lo == pytest.approx(1.1) and hi == pytest.approx(1.1)
    noisy = b + rng.normal(0, 0.3, len(b))
    ratio, lo, hi = ratio_interval(noisy, b)
    assert lo < ratio < hi and lo < 1.0 < hi  # no real difference: the interval holds 1
    _, lo_small, hi_small = ratio_interval(noisy[:200], b[:200])
    assert hi_small - lo_small > 2 * (hi - lo)  # a tenth of the queries: an interval about √10 wider
    with pytest.raises(ValueError):
        ratio_interval(b, b[:10])


def test_ratio_interval_resamples_groups() -> None:
    rng = np.random.default_rng(2)
    b = rng.random(500)
    a = b + rng.normal(0, 0.3, len(b))
    _, lo, hi = ratio_interval(a, b)
    # each query four times over, as if every customer came back with the same basket: four times the queries
    # but no more information; resampling customers sees that, resampling queries does not
    a4, b4, customer = np.repeat(a, 4), np.repeat(b, 4), np.repeat(np.arange(len(b)), 4)
    _, lo_q, hi_q = ratio_interval(a4, b4)
    _, lo_g, hi_g = ratio_interval(a4, b4, groups=customer)
    assert hi_q - lo_q < 0.6 * (hi - lo)
    assert hi_g - lo_g == pytest.approx(hi - lo, rel=0.15)


def test_thirds_keep_ties_together_and_no_group_empty() -> None:
    plain, cuts = thirds(np.arange(90))
    assert cuts.tolist() == [29, 59] and np.bincount(plain).tolist() == [30, 30, 30]
    sold = np.array([1] * 60 + [2] * 20 + [3] * 10 + [50] * 10)  # most products sold once: tertiles are 1 and 1
    group, cuts = thirds(sold)
    assert cuts.tolist() == [1, 2] and np.bincount(group).tolist() == [60, 20, 20]
    assert group[sold == 1].max() == 0 and set(group[sold == 2]) == {1}, "a value at a cut is in the group below it"
    with pytest.raises(ValueError):
        thirds(np.array([1, 1, 2]))
