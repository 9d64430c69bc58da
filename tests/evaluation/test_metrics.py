"""Ranking metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from itemaffinity.evaluation.metrics import (RANKING_METRICS, catalog_coverage, intra_list_diversity,
                                             popularity_bias)
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
