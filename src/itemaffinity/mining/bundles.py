"""Bundles ("frequently bought together") and basket completion from itemsets and rules."""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from itemaffinity.mining.itemsets import Itemsets
from itemaffinity.mining.rules import Rules


class Bundle(NamedTuple):
    """A frequent itemset offered as a bundle.

    Attributes:
        items: item indices, ascending.
        support: fraction of transactions holding all of them.
        lift: support / Π support(item): how much more often the items go together than
            if they were independent (1 = independence).
    """

    items: tuple[int, ...]
    support: float
    lift: float


class Suggestion(NamedTuple):
    """An item to add to a basket, with the rule that suggests it.

    Attributes:
        item: item index.
        confidence: the best confidence of a rule A → C with A in the basket and the item in C.
        lift: that rule's lift.
        rule: that rule's row in the `Rules` passed in (the evidence).
    """

    item: int
    confidence: float
    lift: float
    rule: int


def itemset_lift(itemsets: Itemsets, ids: np.ndarray) -> np.ndarray:
    """support(S) / Π_{i ∈ S} support({i}) for the sets `ids` (1 for single items)."""
    items, lengths = itemsets.members(ids)
    n = itemsets.n_transactions
    owner = np.repeat(np.arange(len(lengths)), lengths)
    log_independent = np.bincount(owner, weights=np.log(itemsets.item_counts[items] / n), minlength=len(lengths))
    return np.exp(np.log(itemsets.counts[ids] / n) - log_independent)


def bundles_for_item(itemsets: Itemsets, item_idx: int, n: int = 5,
                     sizes: Sequence[int] = (2, 3)) -> list[Bundle]:
    """The best itemsets that contain `item_idx` ("frequently bought together").

    Ranked by support (how often the whole bundle is bought), then lift (how much more than
    chance), then the smaller set id, so the order is deterministic.

    Args:
        itemsets: frequent itemsets.
        item_idx: the anchor item index.
        n: bundles returned at most.
        sizes: allowed bundle sizes (item counts, the anchor included).
    """
    ids = itemsets.containing(item_idx)
    ids = ids[np.isin(itemsets.lengths[ids], list(sizes))]
    support = itemsets.support[ids]
    lift = itemset_lift(itemsets, ids)
    top = np.lexsort((ids, -lift, -support))[:n]
    return [Bundle(itemsets.itemset(int(ids[i])), float(support[i]), float(lift[i])) for i in top]


def complete_basket(rules: Rules, basket: Sequence[int] | np.ndarray, n: int = 10) -> list[Suggestion]:
    """Items to add to `basket`, from the rules it triggers.

    A rule A → C applies when A ⊆ basket and C ∩ basket = ∅; each item of C becomes a candidate.
    A candidate scores the highest confidence among the rules suggesting it, ties broken by
    lift, then by the smaller rule row; candidates are ranked the same way, then by item index.

    Args:
        rules: association rules (item indices).
        basket: item indices already in the basket; unknown items (−1) are ignored.
        n: suggestions returned at most.
    """
    sets = rules.itemsets
    basket = np.asarray(basket, dtype=np.int64)
    in_basket = np.zeros(len(sets.item_counts), dtype=bool)
    in_basket[basket[basket >= 0]] = True
    owner = np.repeat(np.arange(len(sets)), sets.lengths)
    hits = np.bincount(owner, weights=in_basket[sets.items], minlength=len(sets))  # basket items per set
    applies = np.flatnonzero((hits == sets.lengths)[rules.antecedent] & (hits == 0)[rules.consequent])
    items, lengths = sets.members(rules.consequent[applies])
    rule = np.repeat(applies, lengths)
    evidence = rules.select(rule)
    confidence, lift = evidence.measure("confidence"), evidence.measure("lift")
    best = np.lexsort((rule, -lift, -confidence, items))  # best rule first within each item
    first = best[np.r_[True, items[best][1:] != items[best][:-1]]] if len(best) else best
    top = first[np.lexsort((items[first], -lift[first], -confidence[first]))][:n]
    return [Suggestion(int(items[i]), float(confidence[i]), float(lift[i]), int(rule[i])) for i in top]
