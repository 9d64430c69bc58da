"""Frequent itemsets: identical to mlxtend on real baskets, to brute force on random ones."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itemaffinity.mining import Itemsets, frequent_itemsets, min_count_for


@pytest.mark.parametrize("min_support", [0.02, 0.01, 0.005])
def test_identical_to_mlxtend_fpgrowth_on_online_retail(baskets, mlxtend_itemsets, min_support):
    ours = frequent_itemsets(baskets, min_support)
    ref = mlxtend_itemsets(min_support)
    expected = {tuple(sorted(int(i) for i in s)): sup for s, sup in zip(ref["itemsets"], ref["support"])}
    got = dict(zip((ours.itemset(i) for i in range(len(ours))), ours.support))
    assert len(got) == len(ours) == len(ref) > 300
    assert got.keys() == expected.keys()
    assert all(got[s] == pytest.approx(expected[s], rel=0, abs=1e-12) for s in expected)
    assert ours.lengths.max() >= 3


def test_max_len_truncates_and_keeps_the_rest(baskets):
    full = frequent_itemsets(baskets, 0.005)
    short = frequent_itemsets(baskets, 0.005, max_len=3)
    assert short.lengths.max() == 3
    assert short.as_dict() == {s: c for s, c in full.as_dict().items() if len(s) <= 3}
    assert frequent_itemsets(baskets, 0.005, max_len=1).as_dict() == {
        s: c for s, c in full.as_dict().items() if len(s) == 1}


def brute_force(transactions: list[set[int]], n_items: int, min_count: int, max_len: int) -> dict:
    found = {}
    for k in range(1, max_len + 1):
        for items in combinations(range(n_items), k):
            c = sum(1 for t in transactions if set(items) <= t)
            if c >= min_count:
                found[items] = c
    return found


random_transactions = st.integers(1, 9).flatmap(lambda n_items: st.tuples(
    st.just(n_items),
    st.lists(st.sets(st.integers(0, n_items - 1), max_size=n_items), min_size=1, max_size=40)))


@settings(max_examples=150, deadline=None)
@given(random_transactions, st.floats(0.01, 1.0), st.integers(1, 9))
def test_equals_brute_force_enumeration(csr_from_sets, data, min_support, max_len):
    n_items, transactions = data
    result = frequent_itemsets(csr_from_sets(transactions, n_items), min_support, max_len=max_len)
    min_count = min_count_for(min_support, len(transactions))
    assert result.as_dict() == brute_force(transactions, n_items, min_count, max_len)
    assert np.array_equal(result.item_counts, [sum(j in t for t in transactions) for j in range(n_items)])


@settings(max_examples=100, deadline=None)
@given(random_transactions, st.floats(0.01, 0.6))
def test_support_is_anti_monotone(csr_from_sets, data, min_support):
    n_items, transactions = data
    result = frequent_itemsets(csr_from_sets(transactions, n_items), min_support).as_dict()
    for items, count in result.items():
        for sub in combinations(items, len(items) - 1):
            if sub:
                assert sub in result and result[sub] >= count


def test_min_count_matches_the_float_threshold():
    for n in (1, 7, 19773, 10**6):
        for s in (1e-6, 0.002, 0.005, 0.01, 0.02, 1 / 3, 0.5, 1.0):
            c = min_count_for(s, n)
            assert c / n >= s and (c == 1 or (c - 1) / n < s)
    with pytest.raises(ValueError):
        min_count_for(0.0, 10)


def test_itemsets_table_lookups(csr_from_sets):
    transactions = [{0, 1, 2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}, {3}]
    sets = frequent_itemsets(csr_from_sets(transactions, 5), 2 / 6)
    assert sets.as_dict() == {(0,): 4, (1,): 4, (2,): 4, (0, 1): 3, (0, 2): 3, (1, 2): 3, (0, 1, 2): 2}
    assert sets.n_transactions == 6 and sets.item_counts.tolist() == [4, 4, 4, 1, 0]
    ids = sets.find(np.array([[0, 2], [1, 2], [2, 3], [0, 4]]))
    assert [sets.itemset(i) for i in ids[:2]] == [(0, 2), (1, 2)] and ids[2:].tolist() == [-1, -1]
    assert [sets.itemset(i) for i in sets.containing(2)] == [(2,), (0, 2), (1, 2), (0, 1, 2)]
    ids3, rows3 = sets.of_length(3)
    assert rows3.tolist() == [[0, 1, 2]] and sets.counts[ids3].tolist() == [2]
    items, lengths = sets.members(np.array([6, 3]))
    assert items.tolist() == [0, 1, 2, 0, 1] and lengths.tolist() == [3, 2]
    assert sets.itemset(int(sets.prefix[6])) == (0, 1)
    table = sets.to_arrow()
    assert table.column("items").to_pylist()[-1] == [0, 1, 2]
    assert table.column("support").to_pylist()[-1] == pytest.approx(2 / 6)


def test_degenerate_inputs(csr_from_sets):
    import scipy.sparse as sp

    assert len(frequent_itemsets(sp.csr_matrix((0, 4)), 0.5)) == 0
    assert len(frequent_itemsets(csr_from_sets([{0}, {1}, {2}], 3), 0.5)) == 0
    one = frequent_itemsets(csr_from_sets([{0, 1}] * 3, 2), 1.0)
    assert one.as_dict() == {(0,): 3, (1,): 3, (0, 1): 3}


def test_itemsets_must_be_closed_under_prefixes():
    with pytest.raises(ValueError, match="closed"):
        Itemsets.from_levels([(np.array([[1], [2]]), np.array([3, 3])), (np.array([[0, 2]]), np.array([2]))],
                             np.array([3, 3, 3]), 5)


def test_users_as_transactions(retail):
    from itemaffinity.mining import transactions

    users = transactions(retail, "users")
    assert users.shape == (retail.n_users, retail.n_items)
    assert (users != (retail.user_items > 0).astype(np.int32)).nnz == 0
    sets = frequent_itemsets(users, 0.05, max_len=2)
    assert sets.n_transactions == retail.n_users and (sets.lengths == 2).any()
    with pytest.raises(KeyError, match="known: baskets, users"):
        transactions(retail, "sessions")
