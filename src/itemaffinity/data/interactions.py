"""InteractionData: the frozen, indexed view of the store that every miner and model shares.

Built once per run from the store's events and catalog (DESIGN §3, §5):
- `basket_items`: baskets × items, binary CSR (purchase baskets only; returns form no basket);
- `user_items`: users × items, weighted CSR (event weights, optional time decay; each return
  cancels one purchase);
- per-user chronological sequences (CSR-like `seq_indptr`/`seq_items`/`seq_ts`);
- item statistics and catalog fields aligned to item indices.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import scipy.sparse as sp

from itemaffinity.data.schema import BASKET_EVENTS, DEFAULT_EVENT_WEIGHTS
from itemaffinity.data.vocab import Vocabulary
from itemaffinity.store.duckdb_store import ensure_schema

log = logging.getLogger(__name__)


def _times(a: np.ndarray) -> np.ndarray:
    """datetime64[s] with NaT where DuckDB returned NULL (it hands back masked arrays)."""
    a = np.ma.asarray(a).astype("datetime64[s]")
    return a.filled(np.datetime64("NaT")) if np.ma.is_masked(a) else np.asarray(a)


def _floats(a: np.ndarray) -> np.ndarray:
    """float64 with NaN where DuckDB returned NULL."""
    a = np.ma.asarray(a).astype(np.float64)
    return a.filled(np.nan) if np.ma.is_masked(a) else np.asarray(a)


def _mapping_weights(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, float], float | None]:
    """Event weights and half-life from the newest ingest's mapping (the TOML `[event_weights]`)."""
    import json

    try:
        row = con.execute("SELECT mapping FROM runs WHERE kind = 'ingest' ORDER BY run_id DESC LIMIT 1").fetchone()
    except duckdb.CatalogException:
        return {}, None
    if not row or not row[0]:
        return {}, None
    mapping = json.loads(row[0])
    return dict(mapping.get("event_weights") or {}), mapping.get("half_life_days")


def line_order(basket_lines: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """(baskets, items): every line of every basket, baskets in order, each basket's items in line order."""
    lines = sp.csr_matrix(basket_lines)
    rows = np.repeat(np.arange(lines.shape[0]), np.diff(lines.indptr))
    order = np.lexsort((lines.data, rows))
    return rows[order], lines.indices[order].astype(np.int64)


def sequence_neighbours(owners: np.ndarray, items: np.ndarray, window: int = 1) -> tuple[np.ndarray, np.ndarray,
                                                                                         np.ndarray]:
    """Item pairs (a, b, distance) at most `window` places apart within each owner's run of `items`
    (`owners` sorted, each owner's items in order)."""
    a, b, dist = [], [], []
    for d in range(1, window + 1):
        same = owners[d:] == owners[:-d]
        a.append(items[:-d][same])
        b.append(items[d:][same])
        dist.append(np.full(int(same.sum()), d))
    return np.concatenate(a), np.concatenate(b), np.concatenate(dist)


def sequence_windows(owners: np.ndarray, items: np.ndarray, width: int, n_items: int) -> sp.csr_matrix:
    """(windows, items) 0/1 CSR: every run of `width` consecutive places within each owner's run of
    `items` (`owners` sorted, each owner's items in order); an owner with fewer places gives one
    window of all of them. The Gram of it counts how often two items are near each other."""
    if width < 1:
        raise ValueError("width must be at least 1")
    pos = np.arange(len(owners))
    run_end = np.searchsorted(owners, owners, side="right")
    run_first = pos == np.searchsorted(owners, owners, side="left")
    first = np.flatnonzero((pos + width <= run_end) | (run_first & (run_end - pos < width)))
    rows, cols = [], []
    for k in range(width):
        inside = np.flatnonzero(first + k < run_end[first])
        rows.append(inside)
        cols.append(items[first[inside] + k])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    win = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(first), n_items))
    win.data[:] = 1.0  # an item twice in a window (a repeat in a history) counts once
    return win


def adjacency_matrix(pairs: tuple[np.ndarray, np.ndarray, np.ndarray], n_items: int,
                     weighted: bool = True) -> sp.csr_matrix:
    """Symmetric items × items counts of neighbouring `pairs` (a, b, distance), each weighted
    1 / distance when `weighted`; diagonal 0."""
    a, b, dist = pairs
    keep = a != b
    w = (1.0 / dist[keep] if weighted else np.ones(int(keep.sum()))).astype(np.float32)
    rows, cols = np.concatenate([a[keep], b[keep]]), np.concatenate([b[keep], a[keep]])
    return sp.csr_matrix((np.concatenate([w, w]), (rows, cols)), shape=(n_items, n_items))


def _freeze(*arrays: np.ndarray) -> None:
    for a in arrays:
        a.flags.writeable = False


def _freeze_csr(m: sp.csr_matrix) -> sp.csr_matrix:
    _freeze(m.data, m.indices, m.indptr)
    return m


@dataclass(frozen=True)
class InteractionData:
    """Vocabularies and sparse matrices over one slice of the store's events.

    Attributes:
        items, users, baskets: vocabularies (items include catalog-only items, which have no events).
        basket_items: (n_baskets, n_items) float32 CSR of 0/1.
        basket_lines: the same pattern holding each item's line position in its basket (1 = first,
            by file order; an item on several lines takes its first), since the lines next to an
            item in an order say more of it than the rest of a long order does (`adjacent_pairs`).
        basket_user: (n_baskets,) user index of each basket, −1 for anonymous.
        basket_ts: (n_baskets,) datetime64[s] of each basket (NaT when the data has no time).
        user_items: (n_users, n_items) float32 CSR of summed event weights.
        seq_indptr, seq_items, seq_ts: user u's chronological items are
            seq_items[seq_indptr[u]:seq_indptr[u+1]].
        item_baskets, item_users, item_events: per-item counts; item_returns: returned lines.
        item_first_seen, item_last_seen: datetime64[s] per item (NaT if never seen).
        titles, categories, brands: object arrays per item (None when unknown); prices: float64 (NaN).
    """

    items: Vocabulary
    users: Vocabulary
    baskets: Vocabulary
    basket_items: sp.csr_matrix
    basket_lines: sp.csr_matrix
    basket_user: np.ndarray
    basket_ts: np.ndarray
    user_items: sp.csr_matrix
    seq_indptr: np.ndarray
    seq_items: np.ndarray
    seq_ts: np.ndarray
    item_baskets: np.ndarray
    item_users: np.ndarray
    item_events: np.ndarray
    item_returns: np.ndarray
    item_first_seen: np.ndarray
    item_last_seen: np.ndarray
    titles: np.ndarray
    categories: np.ndarray
    brands: np.ndarray
    prices: np.ndarray
    event_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    half_life_days: float | None = None

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_baskets(self) -> int:
        return self.basket_items.shape[0]

    def sequence(self, user_idx: int) -> np.ndarray:
        """Item indices user `user_idx` interacted with, oldest first."""
        return self.seq_items[self.seq_indptr[user_idx]:self.seq_indptr[user_idx + 1]]

    def adjacent_pairs(self, window: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Item pairs (a, b, distance) at most `window` lines apart in an order; without orders, at
        most `window` events apart in a user's history."""
        return sequence_neighbours(*self._runs(), window)

    def _runs(self) -> tuple[np.ndarray, np.ndarray]:
        """(owners, items): each order's items in line order, or without orders each user's history."""
        if self.n_baskets:
            return line_order(self.basket_lines)
        owners = np.repeat(np.arange(self.n_users), np.diff(self.seq_indptr))
        return owners, self.seq_items.astype(np.int64)

    def line_windows(self, width: int) -> sp.csr_matrix:
        """`sequence_windows` of each order's lines (without orders, of each user's history)."""
        return sequence_windows(*self._runs(), width, self.n_items)

    def adjacency(self, window: int = 1) -> sp.csr_matrix:
        """`adjacency_matrix` of `adjacent_pairs` (each pair weighted 1 / distance)."""
        return adjacency_matrix(self.adjacent_pairs(window), self.n_items)

    def title(self, item_idx: int) -> str | None:
        return self.titles[item_idx]

    def restrict(self, basket_mask: np.ndarray, seq_mask: np.ndarray) -> "InteractionData":
        """A sub-view for validation inside a training period (same vocabularies and catalog).

        Keeps the baskets where `basket_mask` holds and the sequence events where `seq_mask`
        holds; user weights are rebuilt from the kept sequence events (event weights are no
        longer known per event, so each kept event counts the purchase weight), and item counts
        from what is kept.

        Args:
            basket_mask: (n_baskets,) bool.
            seq_mask: (len(seq_items),) bool.
        """
        from dataclasses import replace

        kept = np.flatnonzero(basket_mask)
        bi = _freeze_csr(sp.csr_matrix(self.basket_items[kept]))
        lines = _freeze_csr(sp.csr_matrix(self.basket_lines[kept]))
        users = np.repeat(np.arange(self.n_users), np.diff(self.seq_indptr))[seq_mask]
        items = self.seq_items[seq_mask]
        weight = float(self.event_weights.get("purchase", 4.0))
        ui = sp.csr_matrix((np.full(len(items), weight, np.float32), (users, items)), shape=self.user_items.shape)
        ui.sum_duplicates()
        indptr = np.zeros(self.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=self.n_users), out=indptr[1:])
        kept_ts = self.seq_ts[seq_mask]
        first = np.full(self.n_items, np.datetime64("NaT"), "datetime64[s]")
        last = first.copy()
        if len(items) and not np.isnat(kept_ts).all():
            order = np.argsort(kept_ts)
            first[items[order[::-1]]] = kept_ts[order[::-1]]
            last[items[order]] = kept_ts[order]
        sub = replace(
            self, basket_items=bi, basket_lines=lines, basket_user=self.basket_user[basket_mask],
            basket_ts=self.basket_ts[basket_mask],
            user_items=_freeze_csr(ui), seq_indptr=indptr, seq_items=items, seq_ts=kept_ts,
            item_baskets=np.bincount(bi.indices, minlength=self.n_items).astype(np.int64),
            item_users=np.diff(ui.tocsc().indptr).astype(np.int64),
            item_events=np.bincount(items, minlength=self.n_items).astype(np.int64),
            item_first_seen=first, item_last_seen=last)
        _freeze(sub.basket_user, sub.basket_ts, sub.seq_indptr, sub.seq_items, sub.seq_ts, sub.item_baskets,
                sub.item_users, sub.item_events, sub.item_first_seen, sub.item_last_seen)
        return sub

    def last_item_mask(self, k: int = 1) -> np.ndarray:
        """(len(seq_items),) bool: the last `k` events of each user's sequence."""
        pos_from_end = np.repeat(self.seq_indptr[1:], np.diff(self.seq_indptr)) - np.arange(len(self.seq_items))
        return pos_from_end <= k

    def recency_history(self, decay: float) -> sp.csr_matrix:
        """users × items, weight decay**(events after the item's latest occurrence): a history
        that stresses what the user did last (next-item prediction leans on the last few items)."""
        owners = np.repeat(np.arange(self.n_users), np.diff(self.seq_indptr))
        pos_from_end = np.repeat(self.seq_indptr[1:], np.diff(self.seq_indptr)) - np.arange(len(self.seq_items)) - 1
        # Keep each (user, item)'s latest occurrence: sort by user, item, then position from the end.
        order = np.lexsort((pos_from_end, self.seq_items, owners))
        u, i, p = owners[order], self.seq_items[order], pos_from_end[order]
        first = np.ones(len(u), dtype=bool)
        first[1:] = (u[1:] != u[:-1]) | (i[1:] != i[:-1])
        weights = np.power(decay, p[first], dtype=np.float64).astype(np.float32)
        return sp.csr_matrix((weights, (u[first], i[first])), shape=(self.n_users, self.n_items))

    @classmethod
    def from_store(cls, store: str | Path | duckdb.DuckDBPyConnection, *, since: dt.datetime | None = None,
                   until: dt.datetime | None = None, event_weights: dict[str, float] | None = None,
                   half_life_days: float | None = None) -> "InteractionData":
        """Build from a store file (or open connection), optionally only events in [since, until).

        Args:
            store: the DuckDB store path or a connection to it.
            since, until: time window on `ts` (rows without a timestamp are kept only when both
                are None).
            event_weights: overrides of the default weights (view 1, fav 2, cart 3, purchase 4).
            half_life_days: exponential time decay of user weights, relative to the newest event.
        """
        t0 = time.perf_counter()
        own = not isinstance(store, duckdb.DuckDBPyConnection)
        con = duckdb.connect(str(store), read_only=True) if own else store
        try:
            mapped_weights, mapped_half_life = _mapping_weights(con)
            data = cls._build(con, since, until,
                              {**DEFAULT_EVENT_WEIGHTS, **mapped_weights, **(event_weights or {})},
                              half_life_days if half_life_days is not None else mapped_half_life)
        finally:
            if own:
                con.close()
        log.info("InteractionData: %d items, %d users, %d baskets in %.2fs", data.n_items, data.n_users,
                 data.n_baskets, time.perf_counter() - t0)
        return data

    @classmethod
    def from_tables(cls, events: "pa.Table", catalog: "pa.Table | None" = None, **kwargs) -> "InteractionData":
        """Build from in-memory Arrow tables in the canonical columns (tests, notebooks).

        Missing optional columns get their defaults (event purchase, no time, file order).
        """
        import pyarrow as pa

        con = duckdb.connect()
        try:
            ensure_schema(con)
            n = events.num_rows
            defaults = {"user_id": pa.nulls(n, pa.string()), "basket_id": pa.nulls(n, pa.string()),
                        "event": pa.array(["purchase"] * n), "ts": pa.nulls(n, pa.timestamp("us")),
                        "seq": pa.nulls(n, pa.float64()), "quantity": pa.array([1.0] * n),
                        "value": pa.nulls(n, pa.float64()), "price": pa.nulls(n, pa.float64())}
            cols = {c: events.column(c) if c in events.column_names else d for c, d in defaults.items()}
            full = pa.table({"item_id": events.column("item_id"), **cols,
                             "run_id": pa.array([1] * n, pa.int32()), "source_row": pa.array(range(1, n + 1))})
            con.register("_in_events", full)
            con.execute("INSERT INTO events BY NAME SELECT * FROM _in_events")
            if catalog is not None:
                con.register("_in_catalog", catalog)
                con.execute("INSERT INTO catalog BY NAME SELECT * FROM _in_catalog")
            return cls.from_store(con, **kwargs)
        finally:
            con.close()

    @classmethod
    def _build(cls, con: duckdb.DuckDBPyConnection, since, until, weights, half_life_days) -> "InteractionData":
        conds = []
        params: list = []
        if since is not None:
            conds.append("ts >= ?")
            params.append(since)
        if until is not None:
            conds.append("ts < ?")
            params.append(until)
        where = ("WHERE " + " AND ".join(conds)) if conds else ""
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _ev AS SELECT user_id, item_id, event, ts, seq,
            basket_id, run_id, source_row FROM events {where}""", params)
        item_ids = [r[0] for r in con.execute(
            "SELECT item_id FROM (SELECT item_id FROM _ev UNION SELECT item_id FROM catalog) ORDER BY item_id").fetchall()]
        items = Vocabulary(np.array(item_ids, dtype=object), presorted=True)
        user_ids = [r[0] for r in con.execute(
            "SELECT DISTINCT user_id FROM _ev WHERE user_id IS NOT NULL ORDER BY user_id").fetchall()]
        users = Vocabulary(np.array(user_ids, dtype=object), presorted=True)
        con.execute("CREATE OR REPLACE TEMP TABLE _iv AS SELECT item_id, (row_number() OVER (ORDER BY item_id) - 1)::INTEGER AS i "
                    "FROM (SELECT item_id FROM _ev UNION SELECT item_id FROM catalog)")
        con.execute("CREATE OR REPLACE TEMP TABLE _uv AS SELECT user_id, (row_number() OVER (ORDER BY user_id) - 1)::INTEGER AS u "
                    "FROM (SELECT DISTINCT user_id FROM _ev WHERE user_id IS NOT NULL)")
        con.execute("""CREATE OR REPLACE TEMP TABLE _evi AS SELECT e.*, iv.i, coalesce(uv.u, -1) AS u
            FROM _ev e JOIN _iv iv USING (item_id) LEFT JOIN _uv uv USING (user_id)""")
        n_items, n_users = len(items), len(users)

        # Baskets: purchase events grouped by basket_id, ordered by time then id.
        bev = ", ".join(f"'{e}'" for e in BASKET_EVENTS)
        bask = con.execute(f"""SELECT basket_id, min(ts) AS ts, max(u) AS u FROM _evi
            WHERE event IN ({bev}) AND basket_id IS NOT NULL GROUP BY basket_id ORDER BY ts NULLS LAST, basket_id""").fetchnumpy()
        baskets = Vocabulary(np.asarray(bask["basket_id"], dtype=object), presorted=True)
        con.execute(f"""CREATE OR REPLACE TEMP TABLE _bv AS SELECT basket_id,
            (row_number() OVER (ORDER BY min(ts) NULLS LAST, basket_id) - 1)::INTEGER AS b
            FROM _evi WHERE event IN ({bev}) AND basket_id IS NOT NULL GROUP BY basket_id""")
        # One row per (basket, item) with the item's first line position; the 0/1 matrix is its pattern.
        bl = con.execute(f"""SELECT b, i, min(pos) AS pos FROM (SELECT bv.b, e.i,
              row_number() OVER (PARTITION BY bv.b ORDER BY e.run_id, e.source_row, e.i) AS pos
            FROM _evi e JOIN _bv bv USING (basket_id) WHERE e.event IN ({bev})) GROUP BY b, i ORDER BY b, i""").fetchnumpy()
        n_b = len(baskets)
        basket_lines = sp.csr_matrix((bl["pos"].astype(np.float32), (bl["b"], bl["i"])), shape=(n_b, n_items))
        basket_items = sp.csr_matrix((np.ones(len(bl["b"]), dtype=np.float32), basket_lines.indices, basket_lines.indptr),
                                     shape=(n_b, n_items))

        # User × item weights, with returns cancelling purchases and optional decay.
        wcase = "CASE event " + " ".join(f"WHEN '{e}' THEN {float(w)}" for e, w in weights.items()) + \
                f" WHEN 'return' THEN {-float(weights.get('purchase', 4.0))} ELSE 0 END"
        decay = "1.0"
        if half_life_days:
            ref = con.execute("SELECT max(ts) FROM _evi").fetchone()[0]
            if ref is not None:
                decay = (f"coalesce(pow(0.5, date_diff('second', ts, TIMESTAMP '{ref}') / 86400.0 / {float(half_life_days)}), 1.0)")
        ui = con.execute(f"""SELECT u, i, sum(({wcase}) * {decay}) AS w FROM _evi WHERE u >= 0
            GROUP BY u, i HAVING sum(({wcase}) * {decay}) > 1e-9 ORDER BY u, i""").fetchnumpy()
        user_items = sp.csr_matrix((ui["w"].astype(np.float32), (ui["u"], ui["i"])), shape=(n_users, n_items))

        # Sequences: every non-return event, by time, then sequence position, then file order.
        seq = con.execute("""SELECT u, i, ts FROM _evi WHERE u >= 0 AND event <> 'return'
            ORDER BY u, ts NULLS LAST, seq NULLS LAST, run_id, source_row""").fetchnumpy()
        seq_u = seq["u"].astype(np.int64)
        seq_indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(seq_u, minlength=n_users), out=seq_indptr[1:])
        seq_items = seq["i"].astype(np.int32)
        seq_ts = _times(seq["ts"])

        st = con.execute(f"""SELECT iv.i, count(DISTINCT e.basket_id) FILTER (WHERE e.event IN ({bev})) AS nb,
              count(DISTINCT e.user_id) FILTER (WHERE e.event <> 'return') AS nu,
              count(e.item_id) FILTER (WHERE e.event <> 'return') AS ne,
              count(e.item_id) FILTER (WHERE e.event = 'return') AS nr,
              min(e.ts) AS first_ts, max(e.ts) AS last_ts,
              any_value(c.title) AS title, any_value(c.category) AS category, any_value(c.brand) AS brand,
              any_value(c.price) AS price
            FROM _iv iv LEFT JOIN _evi e ON e.i = iv.i LEFT JOIN catalog c ON c.item_id = iv.item_id
            GROUP BY iv.i ORDER BY iv.i""").fetchnumpy()
        to_obj = lambda a: np.array([None if (x is None or x != x) else x for x in a.tolist()], dtype=object)  # noqa: E731
        data = cls(
            items=items, users=users, baskets=baskets,
            basket_items=_freeze_csr(basket_items.astype(np.float32)),
            basket_lines=_freeze_csr(basket_lines),
            basket_user=np.asarray(bask["u"], dtype=np.int64) if n_b else np.zeros(0, np.int64),
            basket_ts=_times(bask["ts"]) if n_b else np.zeros(0, "datetime64[s]"),
            user_items=_freeze_csr(user_items),
            seq_indptr=seq_indptr, seq_items=seq_items, seq_ts=seq_ts,
            item_baskets=np.asarray(st["nb"], dtype=np.int64), item_users=np.asarray(st["nu"], dtype=np.int64),
            item_events=np.asarray(st["ne"], dtype=np.int64), item_returns=np.asarray(st["nr"], dtype=np.int64),
            item_first_seen=_times(st["first_ts"]),
            item_last_seen=_times(st["last_ts"]),
            titles=to_obj(np.asarray(st["title"], dtype=object)),
            categories=to_obj(np.asarray(st["category"], dtype=object)),
            brands=to_obj(np.asarray(st["brand"], dtype=object)),
            prices=_floats(st["price"]),
            event_weights=dict(weights), half_life_days=half_life_days,
        )
        _freeze(data.basket_user, data.basket_ts, data.seq_indptr, data.seq_items, data.seq_ts,
                data.item_baskets, data.item_users, data.item_events, data.item_returns,
                data.item_first_seen, data.item_last_seen, data.titles, data.categories, data.brands,
                data.prices)
        for t in ("_ev", "_iv", "_uv", "_evi", "_bv"):
            con.execute(f"DROP TABLE IF EXISTS {t}")
        return data
