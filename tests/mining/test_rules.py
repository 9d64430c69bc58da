"""Association rules: identical metrics to mlxtend on real baskets; invariants on random ones."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itemaffinity.mining import association_rules, frequent_itemsets

METRICS = ("antecedent_support", "consequent_support", "support", "confidence", "lift", "leverage",
           "conviction")
MLXTEND_COLUMNS = {"antecedent_support": "antecedent support", "consequent_support": "consequent support"}


def as_table(rules) -> dict[tuple[frozenset, frozenset], np.ndarray]:
    m = rules.metrics()
    values = np.column_stack([m[c] for c in METRICS])
    return {(frozenset(rules.antecedent_items(i)), frozenset(rules.consequent_items(i))): values[i]
            for i in range(len(rules))}


@pytest.mark.parametrize("min_support", [0.02, 0.01, 0.005])
def test_identical_to_mlxtend_association_rules_on_online_retail(baskets, mlxtend_itemsets, min_support):
    from mlxtend.frequent_patterns import association_rules as mlxtend_rules

    ref = mlxtend_rules(mlxtend_itemsets(min_support), num_itemsets=baskets.shape[0], metric="support",
                        min_threshold=0.0)
    ours = as_table(association_rules(frequent_itemsets(baskets, min_support)))
    expected = {
        (frozenset(map(int, a)), frozenset(map(int, c))): np.array(v, dtype=float)
        for a, c, *v in ref[["antecedents", "consequents", *(MLXTEND_COLUMNS.get(m, m) for m in METRICS)]]
        .itertuples(index=False)}
    assert len(ours) == len(ref) > 150
    assert ours.keys() == expected.keys()
    got, want = np.array([ours[k] for k in expected]), np.array(list(expected.values()))
    assert np.array_equal(np.isinf(got), np.isinf(want))
    finite = np.isfinite(want)
    np.testing.assert_allclose(got[finite], want[finite], rtol=0, atol=1e-9)


def test_filters_select_the_matching_rules(baskets):
    sets = frequent_itemsets(baskets, 0.01)
    every = association_rules(sets)
    m = every.metrics()
    item = int(sets.itemset(int(np.flatnonzero(sets.lengths == 3)[0]))[0])
    cases = [
        (dict(min_confidence=0.5), m["confidence"] >= 0.5),
        (dict(min_lift=10.0), m["lift"] >= 10.0),
        (dict(min_support=0.015), m["support"] >= 0.015),
        (dict(antecedent_contains=item), np.array([item in every.antecedent_items(i) for i in range(len(every))])),
        (dict(consequent_contains=item, min_confidence=0.2),
         np.array([item in every.consequent_items(i) for i in range(len(every))]) & (m["confidence"] >= 0.2)),
    ]
    for kwargs, expected in cases:
        got = as_table(association_rules(sets, **kwargs))
        assert 0 < len(got) < len(every), kwargs
        assert got.keys() == as_table(every.select(expected)).keys(), kwargs


def test_to_arrow_columns(baskets):
    rules = association_rules(frequent_itemsets(baskets, 0.02))
    table = rules.to_arrow()
    assert table.column_names == ["antecedent", "consequent", *METRICS]
    assert table.num_rows == len(rules)
    assert tuple(table.column("antecedent")[0].as_py()) == rules.antecedent_items(0)
    assert tuple(table.column("consequent")[-1].as_py()) == rules.consequent_items(len(rules) - 1)


random_transactions = st.integers(2, 8).flatmap(lambda n_items: st.tuples(
    st.just(n_items),
    st.lists(st.sets(st.integers(0, n_items - 1), max_size=n_items), min_size=1, max_size=40)))


@settings(max_examples=80, deadline=None)
@given(random_transactions, st.floats(0.05, 0.5))
def test_rule_invariants(csr_from_sets, data, min_support):
    n_items, transactions = data
    sets = frequent_itemsets(csr_from_sets(transactions, n_items), min_support)
    rules = association_rules(sets)
    count = lambda items: sum(1 for t in transactions if set(items) <= t)  # noqa: E731
    n = len(transactions)
    # every split of every frequent itemset of ≥ 2 items, once
    expected = {(frozenset(a), frozenset(s) - frozenset(a)) for s in sets.as_dict() if len(s) > 1
                for k in range(1, len(s)) for a in combinations(s, k)}
    table = as_table(rules)
    assert table.keys() == expected and len(table) == len(rules)
    for (a, c), v in table.items():
        metric = dict(zip(METRICS, v))
        assert metric["support"] == pytest.approx(count(a | c) / n)
        assert metric["confidence"] == pytest.approx(count(a | c) / count(a))
        assert metric["lift"] == pytest.approx(metric["confidence"] / (count(c) / n))
        if len(a) == len(c) == 1:  # lift is symmetric for single-item rules
            assert metric["lift"] == pytest.approx(dict(zip(METRICS, table[(c, a)]))["lift"])
