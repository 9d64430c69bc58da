"""Association measures: hand-computed values, Fisher p-values against scipy, registry contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import hypergeom

from itemaffinity.mining.measures import LOWER_IS_STRONGER, MEASURES, SHRINK_PRIOR, measure

# a and b share 2 of 10 transactions; a is in 4, b in 5.
N_AB, N_A, N_B, N = 2, 4, 5, 10


@pytest.mark.parametrize("name, expected", [
    ("support", 2 / 10),
    ("confidence", 2 / 4),
    ("confidence_reverse", 2 / 5),
    ("lift", (2 / 10) / ((4 / 10) * (5 / 10))),
    ("leverage", 2 / 10 - (4 / 10) * (5 / 10)),
    ("conviction", (1 - 5 / 10) / (1 - 2 / 4)),
    ("jaccard", 2 / (4 + 5 - 2)),
    ("cosine", 2 / math.sqrt(4 * 5)),
    ("pmi", math.log(1.0)),
    ("npmi", 0.0),
    ("fisher_p", sum(math.comb(4, k) * math.comb(6, 5 - k) for k in range(2, 5)) / math.comb(10, 5)),
    ("shrunk_lift", (2 + SHRINK_PRIOR) / (4 * 5 / 10 + SHRINK_PRIOR)),
])
def test_measures_match_hand_computed_values(name, expected):
    got = MEASURES[name](np.array([N_AB]), np.array([N_A]), np.array([N_B]), N)
    assert got.shape == (1,)
    assert got[0] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_edge_values():
    # always together: confidence 1 → conviction inf, npmi 1; never together: npmi −1, pmi −inf
    assert MEASURES["conviction"](3, 3, 5, 10) == np.inf
    assert MEASURES["npmi"](3, 3, 3, 10) == pytest.approx(1.0)
    assert MEASURES["npmi"](10, 10, 10, 10) == 1.0
    assert MEASURES["npmi"](0, 3, 3, 10) == -1.0
    assert MEASURES["pmi"](0, 3, 3, 10) == -np.inf
    # lift above 1 means over-represented: significance grows, p falls
    assert MEASURES["fisher_p"](5, 5, 5, 100) < MEASURES["fisher_p"](1, 5, 5, 100) < 1.0
    assert MEASURES["fisher_p"](0, 5, 5, 100) == 1.0
    assert MEASURES["shrunk_lift"](20, 20, 20, 1000) < MEASURES["lift"](20, 20, 20, 1000)


def test_fisher_p_matches_scipy_exhaustively_on_small_tables():
    rows = [(k, a, b, n) for n in range(1, 16) for a in range(n + 1) for b in range(n + 1)
            for k in range(max(0, a + b - n), min(a, b) + 1)]
    k, a, b, n = (np.array(c) for c in zip(*rows))
    expected = hypergeom.sf(k - 1, n, a, b)
    np.testing.assert_allclose(MEASURES["fisher_p"](k, a, b, n), expected, rtol=1e-9, atol=1e-15)


@settings(max_examples=80, deadline=None)
@given(st.integers(2, 200_000), st.data())
def test_fisher_p_and_significance_match_scipy_on_large_tables(n, data):
    a = data.draw(st.integers(1, n))
    b = data.draw(st.integers(1, n))
    k = data.draw(st.integers(max(0, a + b - n), min(a, b)))
    p = MEASURES["fisher_p"](k, a, b, n)
    assert p == pytest.approx(hypergeom.sf(k - 1, n, a, b), rel=1e-8, abs=1e-300)
    log_p = hypergeom.logsf(k - 1, n, a, b)
    if np.isfinite(log_p):  # −log10 p: near p = 1 an absolute error is what is meaningful
        assert MEASURES["significance"](k, a, b, n) == pytest.approx(-log_p / math.log(10), rel=1e-8, abs=1e-8)


def test_significance_does_not_underflow_where_the_p_value_does():
    # 500 of 500 draws hit a 500-item class among 100,000: p ≈ 1e-2000, far below float range
    assert MEASURES["fisher_p"](500, 500, 500, 100_000) == 0.0
    assert MEASURES["significance"](500, 500, 500, 100_000) > 1000


def test_registry_contract():
    counts = (np.array([1, 2, 3]), np.array([3, 4, 5]), np.array([4, 4, 6]), 20)
    for name, fn in MEASURES.items():
        assert measure(name) is fn
        out = fn(*counts)
        assert out.shape == (3,) and out.dtype == np.float64, name
        assert fn(2, 4, 4, 20).shape == ()  # scalars broadcast too
    assert LOWER_IS_STRONGER <= MEASURES.keys()
    with pytest.raises(KeyError, match="known: support"):
        measure("nope")


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 1000), st.data())
def test_symmetric_measures_are_symmetric(n, data):
    a, b = data.draw(st.integers(1, n)), data.draw(st.integers(1, n))
    k = data.draw(st.integers(max(1, a + b - n), min(a, b)))
    for name in ("support", "lift", "leverage", "jaccard", "cosine", "pmi", "npmi", "fisher_p", "shrunk_lift"):
        assert MEASURES[name](k, a, b, n) == pytest.approx(MEASURES[name](k, b, a, n), rel=1e-9), name
    assert MEASURES["confidence"](k, a, b, n) == pytest.approx(MEASURES["confidence_reverse"](k, b, a, n))
