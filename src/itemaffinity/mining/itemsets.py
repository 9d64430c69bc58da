"""Frequent itemsets of any size, and the `Itemsets` table that rules and bundles read.

`frequent_itemsets` never builds a dense transactions × items matrix. Items are ranked by
ascending count, so the first item of an itemset is its rarest one; each itemset is then
extended only inside the transactions of that first item, as bitsets of ceil(count / 64)
words (Eclat with projected bitsets; Zaki 2000, "Scalable algorithms for association mining").
The loop itself is compiled (`_eclat`).

Support is the fraction of transactions, with the same threshold as mlxtend: an itemset is
frequent when count / n_transactions ≥ min_support.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from itemaffinity.mining.transactions import binarize

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Itemsets:
    """Frequent itemsets in ragged (CSR-like) form, ordered by length, then lexicographically.

    Set i holds items `items[indptr[i]:indptr[i+1]]`, item indices in ascending order.

    Attributes:
        indptr: (n_sets + 1,) int64 offsets into `items`.
        items: (indptr[-1],) int32 item indices.
        counts: (n_sets,) int64 number of transactions holding each set.
        item_counts: (n_items,) int64 number of transactions holding each item (every item,
            frequent or not).
        n_transactions: the support denominator.
        prefix: (n_sets,) int64 id of the set without its last item, −1 for single items.
            Every prefix of a frequent set is frequent, so the sets form a prefix tree.
    """

    indptr: np.ndarray
    items: np.ndarray
    counts: np.ndarray
    item_counts: np.ndarray
    n_transactions: int
    prefix: np.ndarray = field(init=False, repr=False)
    _keys: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        lengths = np.diff(self.indptr)
        if np.any(np.diff(lengths) < 0) or (len(lengths) and lengths[0] < 1):
            raise ValueError("itemsets must be non-empty and ordered by length")
        n_items = len(self.item_counts)
        prefix = np.full(len(lengths), -1, dtype=np.int64)
        keys = np.empty(len(lengths), dtype=np.int64)
        for k, (start, stop) in self._blocks(lengths):
            rows = self.items[self.indptr[start]:self.indptr[stop]].reshape(-1, k)
            if k > 1:
                prefix[start:stop] = _find(rows[:, :-1], keys[:start], n_items)
                if np.any(prefix[start:stop] < 0):
                    raise ValueError("itemsets are not closed under prefixes")
            keys[start:stop] = (prefix[start:stop] + 1) * n_items + rows[:, -1]
        if np.any(np.diff(keys) <= 0):
            raise ValueError("itemsets must be sorted (ascending items, then lexicographically)")
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "_keys", keys)

    @staticmethod
    def _blocks(lengths: np.ndarray):
        """(k, (start, stop)) for each itemset length k present, in ascending order."""
        ks, starts = np.unique(lengths, return_index=True)
        stops = np.append(starts[1:], len(lengths))
        return [(int(k), (int(a), int(b))) for k, a, b in zip(ks, starts, stops)]

    @classmethod
    def from_levels(cls, levels: list[tuple[np.ndarray, np.ndarray]], item_counts: np.ndarray,
                    n_transactions: int) -> "Itemsets":
        """Build from per-length blocks in any order.

        Args:
            levels: (rows, counts) pairs; rows is (n_sets_k, k) item indices (any order within
                a row), counts is (n_sets_k,).
            item_counts: (n_items,) transactions holding each item.
            n_transactions: the support denominator.
        """
        blocks = []
        for rows, counts in sorted(levels, key=lambda lv: np.shape(lv[0])[1]):
            rows = np.sort(np.asarray(rows, dtype=np.int32), axis=1)
            order = np.lexsort(rows.T[::-1])
            blocks.append((rows[order], np.asarray(counts, dtype=np.int64)[order]))
        lengths = np.concatenate([np.full(len(r), r.shape[1], dtype=np.int64) for r, _ in blocks] or
                                 [np.zeros(0, np.int64)])
        indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        return cls(indptr=indptr,
                   items=np.concatenate([r.ravel() for r, _ in blocks] or [np.zeros(0, np.int32)]),
                   counts=np.concatenate([c for _, c in blocks] or [np.zeros(0, np.int64)]),
                   item_counts=np.asarray(item_counts, dtype=np.int64), n_transactions=int(n_transactions))

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def lengths(self) -> np.ndarray:
        """(n_sets,) number of items in each set."""
        return np.diff(self.indptr)

    @property
    def support(self) -> np.ndarray:
        """(n_sets,) fraction of transactions holding each set."""
        return self.counts / self.n_transactions

    def itemset(self, set_id: int) -> tuple[int, ...]:
        """Item indices of set `set_id`, ascending."""
        return tuple(self.items[self.indptr[set_id]:self.indptr[set_id + 1]].tolist())

    def members(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Items of the sets `ids`, concatenated.

        Returns:
            (items, lengths): item indices of set ids[0], then ids[1], …, and each set's size.
        """
        ids = np.asarray(ids, dtype=np.int64)
        lengths = self.lengths[ids]
        starts = np.cumsum(lengths) - lengths
        offsets = np.arange(lengths.sum()) - np.repeat(starts, lengths)
        return self.items[np.repeat(self.indptr[ids], lengths) + offsets], lengths

    def of_length(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Sets of exactly k items.

        Returns:
            (ids, rows): (m,) set ids and an (m, k) view of their item indices.
        """
        lengths = self.lengths
        start, stop = np.searchsorted(lengths, [k, k + 1])
        rows = self.items[self.indptr[start]:self.indptr[stop]].reshape(-1, k)
        return np.arange(start, stop), rows

    def find(self, rows: np.ndarray) -> np.ndarray:
        """Ids of the sets given as rows of item indices (ascending in each row); −1 when absent.

        Args:
            rows: (m, k) int item indices, each row sorted ascending.

        Returns:
            (m,) int64 set ids.
        """
        return _find(np.asarray(rows), self._keys, len(self.item_counts))

    def containing(self, item_idx: int) -> np.ndarray:
        """Ids (ascending) of the sets that hold item `item_idx`."""
        positions = np.flatnonzero(self.items == item_idx)
        return np.searchsorted(self.indptr, positions, side="right") - 1

    def as_dict(self) -> dict[tuple[int, ...], int]:
        """{item-index tuple: count}; for tests and small results."""
        return {self.itemset(i): int(c) for i, c in enumerate(self.counts)}

    def to_arrow(self) -> pa.Table:
        """Columns items (list<int32> of item indices), length, count, support."""
        items = pa.ListArray.from_arrays(pa.array(self.indptr.astype(np.int32)), pa.array(self.items))
        return pa.table({"items": items, "length": self.lengths.astype(np.int32),
                         "count": self.counts, "support": self.support})


def _find(rows: np.ndarray, keys: np.ndarray, n_items: int) -> np.ndarray:
    """Walk the prefix tree: the id of rows[:, :j+1] is found from the id of rows[:, :j]."""
    ids = np.full(len(rows), -1, dtype=np.int64)
    if not len(keys):
        return ids
    found = np.ones(len(rows), dtype=bool)
    for col in range(rows.shape[1]):
        query = (ids + 1) * n_items + rows[:, col]
        pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
        found &= keys[pos] == query
        ids = pos
    return np.where(found, ids, -1)


def min_count_for(min_support: float, n_transactions: int) -> int:
    """The smallest count c ≥ 1 with c / n_transactions ≥ min_support (float comparison, as mlxtend)."""
    if not 0.0 < min_support <= 1.0:
        raise ValueError(f"min_support must be in (0, 1], got {min_support}")
    if n_transactions == 0:
        return 1
    c = max(1, math.ceil(min_support * n_transactions))
    while c > 1 and (c - 1) / n_transactions >= min_support:
        c -= 1
    while c / n_transactions < min_support:
        c += 1
    return c


def frequent_itemsets(transactions: sp.spmatrix | sp.sparray, min_support: float, *,
                      max_len: int | None = None) -> Itemsets:
    """All itemsets held by at least `min_support` of the transactions.

    Args:
        transactions: (n_transactions, n_items) sparse matrix; an item is in a transaction when
            its entry is positive (see `transactions.transactions`).
        min_support: minimum fraction of transactions, in (0, 1].
        max_len: largest itemset size to report; None for no limit.

    Returns:
        The frequent itemsets (item indices), with counts and per-item counts.

    The compiled kernel is built on the first call on a machine (seconds) and loaded from
    numba's on-disk cache by later processes (~0.5 s once per process).
    """
    t0 = time.perf_counter()
    x = binarize(transactions)
    n, n_items = x.shape
    min_count = min_count_for(min_support, n)
    max_len = max_len if max_len is not None else n_items
    item_counts = np.bincount(x.indices, minlength=n_items).astype(np.int64)
    frequent = np.flatnonzero(item_counts >= min_count)
    rank_item = frequent[np.argsort(item_counts[frequent], kind="stable")]  # rank → item index
    levels = [(rank_item[:, None], item_counts[rank_item])]
    if max_len >= 2 and len(rank_item) >= 2:
        levels += [(rank_item[rows], counts) for rows, counts in
                   _mine_ranked(x.tocsc()[:, rank_item], min_count, max_len)]
    result = Itemsets.from_levels(levels, item_counts, n)
    log.info("frequent_itemsets: %d sets (max length %d) at min_support %g (count %d) in %.3fs",
             len(result), result.lengths.max(initial=0), min_support, min_count,
             time.perf_counter() - t0)
    return result


def _mine_ranked(xf: sp.csc_matrix, min_count: int, max_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Itemsets of 2..max_len items over columns ranked by ascending count.

    Args:
        xf: (n_transactions, n_frequent) 0/1 CSC, columns ordered by ascending count.

    Returns:
        (rows, counts) per length, rows as (m, k) column ranks.
    """
    from itemaffinity.mining._eclat import eclat  # numba: compiled or loaded on first use

    xr = xf.tocsr()
    xr.sort_indices()
    position = sp.csr_matrix((np.arange(xr.nnz, dtype=np.int64), xr.indices, xr.indptr), shape=xr.shape).tocsc()
    position.sort_indices()
    items, lengths, counts = eclat(xr.indptr.astype(np.int64), xr.indices.astype(np.int32),
                                   position.indptr.astype(np.int64), position.indices.astype(np.int32),
                                   position.data.astype(np.int64), int(min_count), int(max_len))
    starts = np.cumsum(lengths, dtype=np.int64) - lengths
    return [(items[starts[lengths == k, None] + np.arange(k)], counts[lengths == k])
            for k in np.unique(lengths)]
