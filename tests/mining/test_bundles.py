"""Bundles and basket completion on a small example with a known answer."""

from __future__ import annotations

import pytest

from itemaffinity.mining import association_rules, bundles_for_item, complete_basket, frequent_itemsets

# Items: 0 tent, 1 sleeping bag, 2 stove, 3 mug, 4 socks (everyone buys socks, unrelated).
# 6× tent+bag+stove, 2× tent+bag, 2× tent+mug, 4× stove+mug, 6× socks alone — 20 baskets.
BASKETS = [{0, 1, 2}] * 6 + [{0, 1}] * 2 + [{0, 3}] * 2 + [{2, 3}] * 4 + [{4}] * 6


@pytest.fixture
def mined(csr_from_sets):
    sets = frequent_itemsets(csr_from_sets(BASKETS, 5), 0.1)
    return sets, association_rules(sets)


def test_bundles_rank_by_support_then_lift(mined):
    sets, _ = mined
    bundles = bundles_for_item(sets, 0, n=4)
    # supports: {0,1} 8/20, {0,2} 6/20, {0,1,2} 6/20, {0,3} 2/20; {0,1,2} has the higher lift of the ties
    assert [b.items for b in bundles] == [(0, 1), (0, 1, 2), (0, 2), (0, 3)]
    assert bundles[0].support == pytest.approx(8 / 20)
    assert bundles[0].lift == pytest.approx((8 / 20) / ((10 / 20) * (8 / 20)))
    assert bundles[1].lift == pytest.approx((6 / 20) / ((10 / 20) * (8 / 20) * (10 / 20)))
    assert [b.items for b in bundles_for_item(sets, 0, n=2, sizes=(3,))] == [(0, 1, 2)]
    assert bundles_for_item(sets, 4) == []


def test_basket_completion_suggests_the_known_items(mined):
    _, rules = mined
    tent = complete_basket(rules, [0])
    # tent → bag 8/10, tent → stove 6/10, tent → mug 2/10
    assert [(s.item, s.confidence) for s in tent] == [(1, pytest.approx(0.8)), (2, pytest.approx(0.6)),
                                                      (3, pytest.approx(0.2))]
    best = tent[0]
    assert rules.antecedent_items(best.rule) == (0,) and rules.consequent_items(best.rule) == (1,)
    # stove: bag → stove and tent + bag → stove both have confidence 6/8 (and lift 1.5)
    both = complete_basket(rules, [0, 1], n=1)
    assert both[0].item == 2 and both[0].confidence == pytest.approx(6 / 8)
    assert set(rules.antecedent_items(both[0].rule)) <= {0, 1}
    # nothing already in the basket is suggested; socks trigger nothing
    assert all(s.item not in (0, 1) for s in complete_basket(rules, [0, 1]))
    assert complete_basket(rules, [4]) == []
    assert complete_basket(rules, [0, -1]) == tent  # unknown items (vocabulary index −1) are ignored
    assert complete_basket(rules, [0, 1, 2, 3]) == []
