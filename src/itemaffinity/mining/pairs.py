"""Pair statistics: counts and association measures for every co-occurring item pair.

Co-occurrence counts come from one sparse product XᵀX over the binary transactions matrix
(items with fewer than `min_count` transactions are left out first: they cannot be in a pair
that reaches it). Measures are computed on demand from the counts by name (`measures.MEASURES`),
so a caller pays only for the measures it reads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from itemaffinity.mining.measures import LOWER_IS_STRONGER, MEASURES, measure
from itemaffinity.mining.transactions import binarize

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PairStats:
    """Item pairs with their co-occurrence counts (columnar; item indices).

    Rows of `pair_stats` are unordered pairs, item_a < item_b, once each; rows of
    `top_k_per_item` are directed, item_a → item_b. Either way every measure is oriented
    a → b (confidence = n_ab / n_a).

    Attributes:
        item_a, item_b: (n_pairs,) int32 item indices.
        n_ab: (n_pairs,) int64 transactions holding both.
        n_a, n_b: (n_pairs,) int64 transactions holding each.
        n_transactions: all transactions.
        directed: whether rows are directed (both orientations may appear).
    """

    item_a: np.ndarray
    item_b: np.ndarray
    n_ab: np.ndarray
    n_a: np.ndarray
    n_b: np.ndarray
    n_transactions: int
    directed: bool = False

    def __len__(self) -> int:
        return len(self.n_ab)

    def measure(self, name: str) -> np.ndarray:
        """(n_pairs,) float64 values of the registry measure `name` (see `measures`)."""
        return measure(name)(self.n_ab, self.n_a, self.n_b, self.n_transactions)

    def to_arrow(self, measures: tuple[str, ...] = tuple(MEASURES)) -> pa.Table:
        """Columns item_a, item_b, n_ab, n_a, n_b, then one column per measure; a measure undefined for a pair
        (the lift of an item never bought: 0 / 0) is null, which SQL leaves out, where NaN sorts above every
        number."""
        values = {m: pa.array(self.measure(m), pa.float64(), from_pandas=True) for m in measures}
        return pa.table({"item_a": self.item_a, "item_b": self.item_b, "n_ab": self.n_ab,
                         "n_a": self.n_a, "n_b": self.n_b, **values})


def pair_stats(transactions: sp.spmatrix | sp.sparray, *, min_count: int = 1) -> PairStats:
    """Counts of every item pair that shares at least `min_count` transactions.

    Args:
        transactions: (n_transactions, n_items) sparse matrix; an item is in a transaction when
            its entry is positive (baskets, or users: see `transactions.transactions`).
        min_count: minimum co-occurrence count n_ab (≥ 1).

    Returns:
        Unordered pairs item_a < item_b, sorted by (item_a, item_b).
    """
    t0 = time.perf_counter()
    x = binarize(transactions)
    n, n_items = x.shape
    item_counts = np.bincount(x.indices, minlength=n_items).astype(np.int64)
    kept = np.flatnonzero(item_counts >= max(min_count, 1))
    xk = x.tocsc()[:, kept]
    co = sp.csr_matrix(xk.T @ xk)
    co.sort_indices()
    rows = np.repeat(np.arange(len(kept)), np.diff(co.indptr))
    upper = (co.indices > rows) & (co.data >= min_count)
    a, b = kept[rows[upper]], kept[co.indices[upper]]
    pairs = PairStats(item_a=a.astype(np.int32), item_b=b.astype(np.int32),
                      n_ab=co.data[upper].astype(np.int64), n_a=item_counts[a], n_b=item_counts[b],
                      n_transactions=n)
    log.info("pair_stats: %d pairs (min count %d) over %d transactions in %.3fs", len(pairs), min_count,
             n, time.perf_counter() - t0)
    return pairs


def top_k_per_item(pairs: PairStats, k: int, by: str = "lift") -> PairStats:
    """The k strongest partners of every item by measure `by`, as directed rows item → partner.

    Unordered pairs are first taken in both orientations, so asymmetric measures (confidence)
    are read from the item's side. Ties go to the smaller partner index.

    Args:
        pairs: output of `pair_stats` (or already directed rows).
        k: partners kept per item.
        by: a registry measure name; larger is stronger, except for `LOWER_IS_STRONGER`.

    Returns:
        Directed rows sorted by item_a, then strongest first.
    """
    if pairs.directed:
        src, dst, n_src, n_dst, n_ab = pairs.item_a, pairs.item_b, pairs.n_a, pairs.n_b, pairs.n_ab
        order = np.lexsort((dst, src))
        src, dst, n_src, n_dst, n_ab = src[order], dst[order], n_src[order], n_dst[order], n_ab[order]
    else:
        # b → a rows first: with pairs sorted by (a, b), each source's partners then ascend.
        cat = np.concatenate
        src, dst = cat([pairs.item_b, pairs.item_a]), cat([pairs.item_a, pairs.item_b])
        n_src, n_dst, n_ab = cat([pairs.n_b, pairs.n_a]), cat([pairs.n_a, pairs.n_b]), cat([pairs.n_ab] * 2)
    score = measure(by)(n_ab, n_src, n_dst, pairs.n_transactions)
    strength = score if by in LOWER_IS_STRONGER else -score
    order = np.argsort(strength, kind="stable")  # stable sorts: ties keep the smaller partner first
    group = src[order]
    group = group.astype(np.uint16) if len(group) and group.max() < 1 << 16 else group  # radix sort
    order = order[np.argsort(group, kind="stable")]
    per_source = np.bincount(src)
    group_start = np.cumsum(per_source) - per_source
    order = order[np.arange(len(order)) - group_start[src[order]] < k]  # rank within the source < k
    return PairStats(item_a=src[order], item_b=dst[order], n_ab=n_ab[order], n_a=n_src[order],
                     n_b=n_dst[order], n_transactions=pairs.n_transactions, directed=True)
