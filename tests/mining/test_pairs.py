"""Pair statistics: hand-computed counts, agreement with itemsets, top-k against brute force."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itemaffinity.mining import MEASURES, frequent_itemsets, min_count_for, pair_stats, top_k_per_item

TINY = [{0, 1}, {0, 1, 2}, {1, 2}, {0}, {3}, {0, 1, 3}]


def test_counts_and_measures_on_a_tiny_example(csr_from_sets):
    pairs = pair_stats(csr_from_sets(TINY, 5))
    rows = {(a, b): (ab, na, nb) for a, b, ab, na, nb in
            zip(pairs.item_a.tolist(), pairs.item_b.tolist(), pairs.n_ab, pairs.n_a, pairs.n_b)}
    # item counts: 0 → 4, 1 → 4, 2 → 2, 3 → 2, 4 → 0
    assert rows == {(0, 1): (3, 4, 4), (0, 2): (1, 4, 2), (1, 2): (2, 4, 2), (0, 3): (1, 4, 2), (1, 3): (1, 4, 2)}
    assert pairs.n_transactions == 6
    i = list(rows).index((1, 2))
    assert pairs.measure("support")[i] == pytest.approx(2 / 6)
    assert pairs.measure("confidence")[i] == pytest.approx(2 / 4)          # 1 → 2
    assert pairs.measure("confidence_reverse")[i] == pytest.approx(2 / 2)  # 2 → 1
    assert pairs.measure("lift")[i] == pytest.approx((2 / 6) / ((4 / 6) * (2 / 6)))
    assert pairs.measure("jaccard")[i] == pytest.approx(2 / 4)
    assert pairs.measure("conviction")[i] == pytest.approx((1 - 2 / 6) / (1 - 2 / 4))
    assert len(pair_stats(csr_from_sets(TINY, 5), min_count=2)) == 2
    table = pairs.to_arrow()
    assert table.column_names == ["item_a", "item_b", "n_ab", "n_a", "n_b", *MEASURES]
    assert table.column("lift").to_pylist() == pytest.approx(pairs.measure("lift").tolist())


def test_a_measure_undefined_for_a_never_bought_item_is_null(recwarn):
    """The analysis stores each item's text neighbours beside its co-purchase partners, never-bought products'
    too: their lift is 0 / 0, stored as null (NaN would sort above every lift in SQL), with no warning."""
    from itemaffinity.mining import PairStats

    pairs = PairStats(np.array([0, 0]), np.array([1, 2]), np.array([2, 0]), np.array([4, 4]), np.array([3, 0]), 10)
    table = pairs.to_arrow()
    assert table.column("lift").to_pylist() == [pytest.approx(20 / 12), None]
    assert table.column("support").to_pylist() == [0.2, 0.0]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_weights_and_duplicates_are_binarised(csr_from_sets):
    import scipy.sparse as sp

    weighted = sp.csr_matrix((np.array([3.0, 0.5, -1.0, 2.0]), (np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1]))),
                             shape=(2, 2))
    pairs = pair_stats(weighted)  # row 1 holds item 0 with a negative weight: not in the transaction
    assert (pairs.n_ab.tolist(), pairs.n_a.tolist(), pairs.n_b.tolist()) == ([1], [1], [2])


def test_pairs_agree_with_itemsets_of_size_two(baskets):
    min_count = min_count_for(0.005, baskets.shape[0])
    pairs = pair_stats(baskets, min_count=min_count)
    expected = {s: c for s, c in frequent_itemsets(baskets, 0.005, max_len=2).as_dict().items() if len(s) == 2}
    got = dict(zip(zip(pairs.item_a.tolist(), pairs.item_b.tolist()), pairs.n_ab.tolist()))
    assert len(got) > 1000 and got == expected
    all_pairs = pair_stats(baskets, min_count=2)
    assert len(all_pairs) > 1_000_000 and np.all(all_pairs.n_ab >= 2)
    assert np.all(all_pairs.item_a < all_pairs.item_b)
    assert np.all(np.diff(all_pairs.item_a.astype(np.int64) * baskets.shape[1] + all_pairs.item_b) > 0)


random_transactions = st.integers(2, 10).flatmap(lambda n_items: st.tuples(
    st.just(n_items),
    st.lists(st.sets(st.integers(0, n_items - 1), max_size=n_items), min_size=1, max_size=30)))


@settings(max_examples=100, deadline=None)
@given(random_transactions, st.integers(1, 4), st.sampled_from(["lift", "confidence", "fisher_p", "jaccard"]))
def test_top_k_matches_brute_force(csr_from_sets, data, k, by):
    n_items, transactions = data
    pairs = pair_stats(csr_from_sets(transactions, n_items))
    top = top_k_per_item(pairs, k, by=by)
    n = len(transactions)
    item = Counter(j for t in transactions for j in t)
    both = Counter(p for t in transactions for p in combinations(sorted(t), 2))
    expected = []
    for a in range(n_items):
        partners = [(b, both[tuple(sorted((a, b)))]) for b in range(n_items) if b != a and both[tuple(sorted((a, b)))]]
        scored = [(float(MEASURES[by](ab, item[a], item[b], n)), b) for b, ab in partners]
        scored.sort(key=lambda sb: (sb[0] if by == "fisher_p" else -sb[0], sb[1]))
        expected += [(a, b) for _, b in scored[:k]]
    assert list(zip(top.item_a.tolist(), top.item_b.tolist())) == expected
    assert top.directed
    assert np.allclose(top.measure("confidence"), top.n_ab / top.n_a)  # oriented from the item
    again = top_k_per_item(top, 1, by=by)
    assert list(zip(again.item_a.tolist(), again.item_b.tolist())) == [
        ab for i, ab in enumerate(expected) if i == 0 or expected[i - 1][0] != ab[0]]
