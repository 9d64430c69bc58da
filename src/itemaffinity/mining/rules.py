"""Association rules A → C from frequent itemsets.

Every frequent itemset S of two or more items yields the rules A → S \\ A for every non-empty
proper subset A. Because every subset of a frequent itemset is frequent, the counts of A and
C = S \\ A are looked up in the same `Itemsets` table, so a rule is three set ids and its
metrics are the registry's measures of (count(S), count(A), count(C), n) — the definitions of
mlxtend's `association_rules`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from itemaffinity.mining.itemsets import Itemsets
from itemaffinity.mining.measures import MEASURES

log = logging.getLogger(__name__)

#: Measures reported for every rule, besides antecedent_support and consequent_support.
RULE_MEASURES = ("support", "confidence", "lift", "leverage", "conviction")


@dataclass(frozen=True, eq=False)
class Rules:
    """Association rules as ids into an `Itemsets` table (columnar).

    Attributes:
        itemsets: the table the ids point into.
        itemset: (n_rules,) int64 id of A ∪ C.
        antecedent: (n_rules,) int64 id of A.
        consequent: (n_rules,) int64 id of C.
    """

    itemsets: Itemsets
    itemset: np.ndarray
    antecedent: np.ndarray
    consequent: np.ndarray

    def __len__(self) -> int:
        return len(self.itemset)

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """(n_ac, n_a, n_c, n): transactions holding A ∪ C, A, C, and all transactions."""
        c = self.itemsets.counts
        return c[self.itemset], c[self.antecedent], c[self.consequent], self.itemsets.n_transactions

    def measure(self, name: str) -> np.ndarray:
        """(n_rules,) the registry measure `name` of each rule, oriented A → C."""
        return MEASURES[name](*self.counts())

    def metrics(self) -> dict[str, np.ndarray]:
        """The mlxtend metric columns: antecedent_support, consequent_support, support,
        confidence, lift, leverage, conviction."""
        n_ac, n_a, n_c, n = self.counts()
        out = {"antecedent_support": n_a / n, "consequent_support": n_c / n}
        out.update({name: MEASURES[name](n_ac, n_a, n_c, n) for name in RULE_MEASURES})
        return out

    def antecedent_items(self, rule: int) -> tuple[int, ...]:
        """Item indices of rule `rule`'s antecedent."""
        return self.itemsets.itemset(int(self.antecedent[rule]))

    def consequent_items(self, rule: int) -> tuple[int, ...]:
        """Item indices of rule `rule`'s consequent."""
        return self.itemsets.itemset(int(self.consequent[rule]))

    def select(self, rows: np.ndarray) -> "Rules":
        """The rules at `rows` (a boolean mask or indices), in that order."""
        return Rules(self.itemsets, self.itemset[rows], self.antecedent[rows], self.consequent[rows])

    def to_arrow(self) -> pa.Table:
        """Columns antecedent, consequent (list<int32> of item indices) and `metrics()`."""
        def lists(ids: np.ndarray) -> pa.ListArray:
            items, lengths = self.itemsets.members(ids)
            offsets = np.zeros(len(ids) + 1, dtype=np.int32)
            np.cumsum(lengths, out=offsets[1:])
            return pa.ListArray.from_arrays(pa.array(offsets), pa.array(items))

        return pa.table({"antecedent": lists(self.antecedent), "consequent": lists(self.consequent),
                         **self.metrics()})


def association_rules(itemsets: Itemsets, *, min_support: float = 0.0, min_confidence: float = 0.0,
                      min_lift: float | None = None, antecedent_contains: int | None = None,
                      consequent_contains: int | None = None) -> Rules:
    """All rules A → C from `itemsets` that pass the filters.

    Args:
        itemsets: frequent itemsets (closed under subsets, as `frequent_itemsets` returns).
        min_support: minimum support of A ∪ C.
        min_confidence: minimum confidence count(A ∪ C) / count(A).
        min_lift: minimum lift, if given.
        antecedent_contains: keep only rules whose antecedent holds this item index.
        consequent_contains: keep only rules whose consequent holds this item index.

    Returns:
        The rules, grouped by itemset (ascending id), then by antecedent.
    """
    t0 = time.perf_counter()
    n = itemsets.n_transactions
    wanted = [item for item in (antecedent_contains, consequent_contains) if item is not None]
    set_ids, antecedents, consequents = [], [], []
    for k in np.unique(itemsets.lengths[itemsets.lengths >= 2]):
        ids, rows = itemsets.of_length(int(k))
        keep = itemsets.counts[ids] / n >= min_support
        for item in wanted:  # a rule holds its items in A ∪ C: skip sets without them
            keep &= np.any(rows == item, axis=1)
        ids, rows = ids[keep], rows[keep]
        for mask in range(1, 2 ** k - 1):
            in_a = np.array([(mask >> col) & 1 for col in range(k)], dtype=bool)
            set_ids.append(ids)
            antecedents.append(itemsets.find(rows[:, in_a]))
            consequents.append(itemsets.find(rows[:, ~in_a]))
    rules = Rules(itemsets, _concat(set_ids), _concat(antecedents), _concat(consequents))
    if np.any(rules.antecedent < 0) or np.any(rules.consequent < 0):
        raise ValueError("itemsets are not closed under subsets (a rule side is missing)")
    keep = np.ones(len(rules), dtype=bool)
    if min_confidence > 0:
        keep &= rules.measure("confidence") >= min_confidence
    if min_lift is not None:
        keep &= rules.measure("lift") >= min_lift
    for item, side in ((antecedent_contains, rules.antecedent), (consequent_contains, rules.consequent)):
        if item is not None:
            holds = np.zeros(len(itemsets), dtype=bool)
            holds[itemsets.containing(item)] = True
            keep &= holds[side]
    rules = rules.select(keep) if not keep.all() else rules
    log.info("association_rules: %d rules from %d itemsets in %.3fs", len(rules), len(itemsets),
             time.perf_counter() - t0)
    return rules


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
