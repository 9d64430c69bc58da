"""Online updates: posted events folded into pair statistics and user histories between rebuilds.

A purchase adds its item to its basket: the co-count of the item with every item already in that
basket goes up by one (and the basket count of the item, and the number of baskets when the
basket is new). In a store without orders a transaction is a customer's items instead (what the
analysis mined), and any event of positive weight adds its item to its customer's. Counts are exact:
an item touched online gets its partner list recomputed, on its next read, from the snapshot's
transactions plus the online co-counts, with the same measure,
minimum count and list length as the analysis (`mining.pair_stats` + `top_k_per_item` by shrunk
lift). Lists of items not touched since the snapshot stay as the analysis wrote them; a rebuild
makes every list exact again. A product the snapshot does not hold (posted to the catalog since) gets
its own list the same way, from the transactions posted with it; the other products' lists take it in
with the rebuild. Bundles, rules and models change only with a rebuild.

All methods run on the server's event-loop thread (the write path hands its accepted rows back to
the loop), so the state needs no locks.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import numpy as np

from itemaffinity.data.schema import BASKET_EVENTS
from itemaffinity.mining.measures import MEASURES
from itemaffinity.service.snapshot import Snapshot

log = logging.getLogger(__name__)


class PostedEvent(NamedTuple):
    """An accepted posted event, as folded online (external ids)."""

    run_id: int
    user_id: str | None
    item_id: str
    event: str
    basket_id: str | None


@dataclass(frozen=True, eq=False)
class PairRows:
    """One item's partners, strongest first (arrays aligned; counts out of `n_transactions`)."""

    partner: np.ndarray
    n_ab: np.ndarray
    n_a: np.ndarray
    n_b: np.ndarray
    lift: np.ndarray
    confidence: np.ndarray
    shrunk_lift: np.ndarray
    n_transactions: int

    def __len__(self) -> int:
        return len(self.partner)


def snapshot_pairs(snap: Snapshot, item_idx: int) -> PairRows:
    """The item's partner list as the analysis wrote it (views into the snapshot)."""
    p, s = snap.pairs, snap.pairs.rows(item_idx)
    return PairRows(p.partner[s], p.n_ab[s], p.n_a[s], p.n_b[s], p.lift[s], p.confidence[s], p.shrunk_lift[s],
                    p.n_transactions)


def co_counts(snap: Snapshot, item_idx: int) -> np.ndarray:
    """(n_items,) int64 number of snapshot transactions (baskets, or customers) holding both `item_idx` and each
    item."""
    x, csc = snap.transactions, snap.transactions_csc
    rows = csc.indices[csc.indptr[item_idx]:csc.indptr[item_idx + 1]]
    if not len(rows):
        return np.zeros(snap.n_items, np.int64)
    starts, ends = x.indptr[rows], x.indptr[rows + 1]
    lens = ends - starts
    # Positions of every entry of those rows: the concatenated ranges starts[j]..ends[j].
    pos = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
    return np.bincount(x.indices[pos], minlength=snap.n_items).astype(np.int64)


def rank_pairs(co: np.ndarray, n_a: int, counts: np.ndarray, n_transactions: int, k: int,
               min_count: int) -> PairRows:
    """The k strongest partners by shrunk lift, from an item's co-count row (0 at the item itself), its own
    transaction count `n_a` and per-item transaction counts.

    Ties go to the smaller partner index, as in `mining.top_k_per_item`.
    """
    cand = np.flatnonzero(co >= min_count)
    n_ab, n_a, n_b = co[cand], np.full(len(cand), n_a, np.int64), counts[cand]
    shrunk = MEASURES["shrunk_lift"](n_ab, n_a, n_b, n_transactions)
    top = np.argsort(-shrunk, kind="stable")[:k]
    n_ab, n_a, n_b, cand = n_ab[top], n_a[top], n_b[top], cand[top]
    return PairRows(cand.astype(np.int64), n_ab, n_a, n_b, MEASURES["lift"](n_ab, n_a, n_b, n_transactions),
                    MEASURES["confidence"](n_ab, n_a, n_b, n_transactions), shrunk[top], n_transactions)


class OnlineState:
    """Events posted since the snapshot, folded into co-counts and user histories.

    Args:
        snap: the snapshot the counts are relative to.
        k: partners kept per recomputed item.
        min_count: minimum co-occurrence count of a partner.
    """

    def __init__(self, snap: Snapshot, *, k: int = 50, min_count: int = 2) -> None:
        self.snap = snap
        self.k, self.min_count = k, min_count
        self.base_counts = snap.item_transactions
        self.count_delta = np.zeros(snap.n_items, np.int64)
        self.new_transactions = 0
        self.co: dict[int, Counter] = {}
        self.touched: dict[str, set[int]] = {}  # transaction key → its items, for those posted to
        self.generation: dict[int, int] = {}
        self.user_delta: dict[str, dict[int, float]] = {}
        self.folded = 0
        self.unknown_items = 0
        # Products the snapshot does not hold (posted to the catalog since): the transactions each joined, and
        # the transactions any of them joined.
        self.new_item_keys: dict[str, set[str]] = {}
        self.joined_by_new: set[str] = set()
        self.log: list[PostedEvent] = []
        self._pairs: dict[int, tuple[int, PairRows]] = {}
        weights = snap.data.event_weights
        self._weights = {**weights, "return": -float(weights.get("purchase", 4.0))}

    # -- writes ---------------------------------------------------------------------------------
    def fold(self, events: Iterable[PostedEvent]) -> int:
        """Fold accepted events in; returns how many touched an item of the snapshot (the others count only
        towards their own partner lists, `new_item_pairs`, until a rebuild)."""
        items = self.snap.data.items
        n = 0
        for ev in events:
            self.log.append(ev)
            idx = items.index(ev.item_id)
            if idx < 0:
                self.unknown_items += 1
                key = self._transaction_key(ev)
                if key is not None:
                    self._add_new_item(key, ev.item_id)
                continue
            n += 1
            key = self._transaction_key(ev)
            if key is not None:
                self._add_to_transaction(key, idx)
            if ev.user_id is not None:
                hist = self.user_delta.setdefault(ev.user_id, {})
                hist[idx] = hist.get(idx, 0.0) + self._weights.get(ev.event, 0.0)
        self.folded += n
        return n

    def _transaction_key(self, ev: PostedEvent) -> str | None:
        """The transaction a posted event joins: a purchase its basket; in a store without orders, an event of
        positive weight its customer's items, as `mining.transactions` makes them; None for none."""
        if self.snap.unit == "basket":
            return ev.basket_id if ev.event in BASKET_EVENTS else None
        return ev.user_id if self._weights.get(ev.event, 0.0) > 0 else None

    def _members(self, key: str) -> set[int]:
        """The snapshot's items of transaction `key` (a basket id, or a customer id in a store without orders),
        with those posted since."""
        members = self.touched.get(key)
        if members is None:
            row = self.snap.transaction_index(key)
            x = self.snap.transactions
            members = set(x.indices[x.indptr[row]:x.indptr[row + 1]].tolist()) if row >= 0 else set()
            self.touched[key] = members
        return members

    def _add_to_transaction(self, key: str, idx: int) -> None:
        """Item `idx` joins the transaction `key`."""
        members = self._members(key)
        if idx in members:
            return
        if not members and key not in self.joined_by_new:
            self.new_transactions += 1
        co = self.co.setdefault(idx, Counter())
        for other in members:
            co[other] += 1
            self.co.setdefault(other, Counter())[idx] += 1
            self.generation[other] = self.generation.get(other, 0) + 1
        members.add(idx)
        self.count_delta[idx] += 1
        self.generation[idx] = self.generation.get(idx, 0) + 1

    def _add_new_item(self, key: str, item_id: str) -> None:
        """A product the snapshot does not hold joins the transaction `key`; its partners are counted on reading."""
        if key not in self.joined_by_new and not self._members(key):
            self.new_transactions += 1
        self.joined_by_new.add(key)
        self.new_item_keys.setdefault(item_id, set()).add(key)

    # -- reads ----------------------------------------------------------------------------------
    @property
    def n_transactions(self) -> int:
        return self.snap.n_transactions + self.new_transactions

    def item_generation(self, item_idx: int) -> int:
        """How many online changes touched the item's pair list (0: the snapshot's list holds)."""
        return self.generation.get(item_idx, 0)

    def item_transactions(self, item_idx: int) -> int:
        return int(self.base_counts[item_idx] + self.count_delta[item_idx])

    def transaction_counts(self) -> np.ndarray:
        """(n_items,) transactions (baskets, or customers) holding each item, snapshot + online."""
        return self.base_counts + self.count_delta

    def co_row(self, item_idx: int) -> np.ndarray:
        """(n_items,) transactions holding both `item_idx` and each item, snapshot + online."""
        co = co_counts(self.snap, item_idx)
        extra = self.co.get(item_idx)
        if extra:
            keys = np.fromiter(extra.keys(), np.int64, len(extra))
            np.add.at(co, keys, np.fromiter(extra.values(), np.int64, len(extra)))
        return co

    def pairs(self, item_idx: int) -> PairRows:
        """The item's partners: the snapshot's list, or recomputed once it has been touched online (or, in a store
        not analysed yet, on first asking)."""
        gen = self.generation.get(item_idx, 0)
        if gen == 0 and self.snap.pairs.mined:
            return snapshot_pairs(self.snap, item_idx)
        cached = self._pairs.get(item_idx)
        if cached is not None and cached[0] == gen:
            return cached[1]
        co = self.co_row(item_idx)
        co[item_idx] = 0
        rows = rank_pairs(co, self.item_transactions(item_idx), self.transaction_counts(), self.n_transactions,
                          self.k, self.min_count)
        self._pairs[item_idx] = (gen, rows)
        return rows

    def new_item_transactions(self, item_id: str) -> int:
        """Transactions posted since the snapshot that hold `item_id`, a product the snapshot does not hold."""
        return len(self.new_item_keys.get(item_id, ()))

    def new_item_pairs(self, item_id: str) -> PairRows:
        """The partners among the snapshot's items of a product the snapshot does not hold, from the transactions
        posted with it, ranked as every item's are (the snapshot's products list it from the next rebuild)."""
        return rank_pairs(self.new_item_co_row(item_id), self.new_item_transactions(item_id),
                          self.transaction_counts(), self.n_transactions, self.k, self.min_count)

    def new_item_co_row(self, item_id: str) -> np.ndarray:
        """(n_items,) posted transactions holding both `item_id` (a product the snapshot does not hold) and each
        of the snapshot's items."""
        co = np.zeros(self.snap.n_items, np.int64)
        for key in self.new_item_keys.get(item_id, ()):
            members = self.touched.get(key, ())
            co[np.fromiter(members, np.int64, len(members))] += 1
        return co

    def user_history(self, user_id: str) -> dict[int, float]:
        """item index → summed event weight (snapshot history plus posted events), positive only."""
        data = self.snap.data
        u = data.users.index(user_id)
        hist: dict[int, float] = {}
        if u >= 0:
            ui = data.user_items
            s, e = ui.indptr[u], ui.indptr[u + 1]
            hist = dict(zip(ui.indices[s:e].tolist(), ui.data[s:e].tolist()))
        for i, w in self.user_delta.get(user_id, {}).items():
            hist[i] = hist.get(i, 0.0) + w
        return {i: w for i, w in hist.items() if w > 1e-9}

    def has_online_history(self, user_id: str) -> bool:
        return user_id in self.user_delta

    def replay_after(self, watermark: int) -> list[PostedEvent]:
        """Logged events of runs after `watermark` (to fold into the next snapshot's state)."""
        return [ev for ev in self.log if ev.run_id > watermark]
