"""Evaluation protocols (DESIGN §6): each turns a store into a `Task` — training data, query rows,
held-out targets — the same for every model. All rank the full catalogue.

- basket completion: time split; each test basket with ≥ 2 known items hides one (seeded);
- next item: leave-last-out per user (the second to last is the validation target);
- next basket: time split; a user's future items that are new to them;
Validation tasks are cut from the training period only, for tuning.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from itemaffinity.data.interactions import InteractionData
from itemaffinity.errors import InputError
from itemaffinity.models.base import query_matrix

log = logging.getLogger(__name__)


@dataclass
class Task:
    """One evaluation task.

    Attributes:
        name: protocol name.
        train: what models are fitted on.
        queries: (q, n_items) CSR of query items (a basket's other items or a user's history).
        targets: q arrays of held-out item indices.
        query_users: (q,) user indices for personalised scoring, or None to score from `queries`.
        exclude: (q, n_items) items removed from each ranking (the query items).
        candidates: optional item indices the ranking is restricted to.
        info: split, seed, dataset hash, counts — recorded with every result row.
        query_groups: (q,) the customer each query comes from (anonymous baskets each their own), for
            `metrics.ratio_interval` to resample customers rather than queries: a customer's baskets are
            alike, so treating them as independent would make an interval too narrow. A customer has one code
            in every task seed, so several seeds' queries can be pooled. None: independent.
    """

    name: str
    train: InteractionData
    queries: sp.csr_matrix
    targets: list[np.ndarray]
    query_users: np.ndarray | None = None
    exclude: sp.csr_matrix | None = None
    candidates: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    query_groups: np.ndarray | None = None

    @property
    def n_queries(self) -> int:
        return self.queries.shape[0]


PUBLISHED: dict[tuple[str, str], str] = {
    ("amazon-beauty", "next-item"): "Published on this split (S3-Rec, CIKM 2020; full ranking over all items): "
                                    "SASRec HR@10 0.0605, NDCG@10 0.0318; S3-Rec 0.0647 / 0.0327; PopRec 0.0152 / 0.0068.",
    ("sasrec-games", "next-item"): "Published (SASRec, ICDM 2018; 100 sampled negatives): SASRec HR@10 0.7410, NDCG@10 0.5360.",
}
"""Reference numbers from papers for (dataset mapping name, task), shown beside our leaderboards."""


def dataset_name(con: duckdb.DuckDBPyConnection) -> str:
    """The mapping name of the newest ingest (a preset name such as "online-retail", or "custom")."""
    # fetchall, not fetchone: DuckDB refuses a later con.sql() while a result is still open.
    rows = con.execute("SELECT json_extract_string(mapping, '$.name') FROM runs WHERE kind = 'ingest' "
                       "ORDER BY run_id DESC LIMIT 1").fetchall()
    return rows[0][0] if rows and rows[0][0] else "custom"


def dataset_hash(con: duckdb.DuckDBPyConnection) -> str:
    """A short hash of the ingested files (their sha256s and mappings), to tag results."""
    rows = con.execute("SELECT file_sha256, mapping_sha256 FROM runs WHERE kind = 'ingest' ORDER BY run_id").fetchall()
    return hashlib.sha256("|".join(f"{a}:{b}" for a, b in rows).encode()).hexdigest()[:12]


def _when(t: dt.datetime) -> str:
    """A split's date, with its time of day when it is not midnight (a default split inside one day's data)."""
    return f"{t:%Y-%m-%d}" if t.time() == dt.time() else f"{t:%Y-%m-%d %H:%M:%S}"


def _parse_date(value: str | dt.datetime) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    try:
        return dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise InputError(f"bad --split-date {value!r}; use YYYY-MM-DD") from None


def basket_completion(con: duckdb.DuckDBPyConnection, split_date: str | dt.datetime, *, n_queries: int = 5000,
                      seed: int = 0, test_until: dt.datetime | None = None, name: str = "basket-completion") -> Task:
    """Train on baskets before `split_date`; hide one item of each later basket with ≥ 2 known items."""
    split = _parse_date(split_date)
    train = InteractionData.from_store(con, until=split)
    if train.n_baskets == 0:
        raise InputError(f"no purchase baskets before {_when(split)}; choose another --split-date")
    rows = _later_baskets(con, split, test_until)
    baskets, customers = [], []
    for items, customer in rows:
        idx = train.items.indices(items)
        idx = idx[(idx >= 0)]
        idx = idx[train.item_baskets[idx] > 0]  # items the training period has seen
        if len(idx) >= 2:
            baskets.append(np.sort(idx))
            customers.append(customer)
    if not baskets:
        raise InputError(f"no test baskets with ≥ 2 known items after {_when(split)}")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(baskets), size=min(n_queries, len(baskets)), replace=False)
    chosen.sort()
    queries, targets = [], []
    for b in chosen:
        items = baskets[b]
        hide = rng.integers(len(items))
        targets.append(items[hide:hide + 1])
        queries.append(np.delete(items, hide))
    q = query_matrix(queries, train.n_items)
    info = {"split": f"time split at {_when(split)}", "seed": seed, "dataset": dataset_hash(con),
            "test_baskets": len(baskets), "queries": len(chosen), "dataset_name": dataset_name(con)}
    return Task(name, train, q, targets, None, q, None, info, _group_codes(customers)[chosen])


def _events_table(con: duckdb.DuckDBPyConnection, where: str) -> pa.Table:
    return con.sql(f"""SELECT user_id, item_id, event, ts, seq, basket_id, quantity, value, price FROM (
        SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC NULLS FIRST, seq DESC NULLS FIRST,
               run_id DESC, source_row DESC) AS _from_end
        FROM events WHERE event <> 'return') WHERE {where} ORDER BY run_id, source_row""").to_arrow_table()


def _catalog_table(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return con.sql("SELECT item_id, title, description, category, brand, price FROM catalog").to_arrow_table()


def next_item(con: duckdb.DuckDBPyConnection, *, holdout: int = 1, n_queries: int | None = None,
              seed: int = 0, name: str = "next-item") -> Task:
    """Leave-last-out: hold out each user's `holdout`-th item from the end (1 = test, 2 = validation).

    The training data are every user's items before the held-out one; users with fewer than
    holdout + 2 events are skipped (they would have no history).
    """
    train = InteractionData.from_tables(_events_table(con, f"user_id IS NULL OR _from_end > {holdout}"),
                                        _catalog_table(con))
    held = con.execute(f"""SELECT user_id, item_id FROM (
        SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC NULLS FIRST,
               seq DESC NULLS FIRST, run_id DESC, source_row DESC) AS _from_end,
               count(*) OVER (PARTITION BY user_id) AS n
        FROM events WHERE event <> 'return' AND user_id IS NOT NULL)
        WHERE _from_end = {holdout} AND n >= {holdout + 2} ORDER BY user_id""").fetchall()
    users = train.users.indices([u for u, _ in held])
    items = train.items.indices([i for _, i in held])
    keep = (users >= 0) & (items >= 0)
    users, items = users[keep], items[keep]
    if not len(users):
        raise InputError(f"no customer with {holdout + 2} or more events: {name} holds out each customer's "
                         f"{'last' if holdout == 1 else str(holdout) + 'nd last'} item, so it needs customer ids")
    if n_queries is not None and n_queries < len(users):
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(users), n_queries, replace=False))
        users, items = users[pick], items[pick]
    hist = train.user_items[users].copy()
    hist.data = np.ones_like(hist.data)
    info = {"split": f"leave-last-out (holdout {holdout} from the end)", "seed": seed,
            "dataset": dataset_hash(con), "queries": int(len(users)), "dataset_name": dataset_name(con)}
    return Task(name, train, sp.csr_matrix(hist), [np.array([i]) for i in items], users, sp.csr_matrix(hist),
                None, info)


def next_basket(con: duckdb.DuckDBPyConnection, split_date: str | dt.datetime, *, n_queries: int = 5000,
                seed: int = 0, name: str = "next-basket") -> Task:
    """Time split: for each user active before and after the split, their new items after it."""
    split = _parse_date(split_date)
    train = InteractionData.from_store(con, until=split)
    rows = con.execute("""SELECT user_id, list(DISTINCT item_id) FROM events WHERE event = 'purchase'
        AND user_id IS NOT NULL AND ts >= ? GROUP BY user_id ORDER BY user_id""", [split]).fetchall()
    users, targets = [], []
    for user, items in rows:
        u = train.users.index(user)
        if u < 0 or train.user_items.indptr[u + 1] == train.user_items.indptr[u]:
            continue  # unknown, or every purchase was returned: no history to start from
        seen = set(train.user_items[u].indices.tolist())
        idx = train.items.indices(items)
        idx = np.array(sorted(set(idx[idx >= 0].tolist()) - seen), dtype=np.int64)
        if len(idx):
            users.append(u)
            targets.append(idx)
    if not users:
        raise InputError(f"no users active both before and after {_when(split)}")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(users), min(n_queries, len(users)), replace=False))
    users_arr = np.asarray(users)[pick]
    hist = train.user_items[users_arr].copy()
    hist.data = np.ones_like(hist.data)
    info = {"split": f"time split at {_when(split)}, new items only", "seed": seed,
            "dataset": dataset_hash(con), "queries": int(len(pick)), "dataset_name": dataset_name(con)}
    return Task(name, train, sp.csr_matrix(hist), [targets[i] for i in pick], users_arr, sp.csr_matrix(hist),
                None, info)


def cold_start(con: duckdb.DuckDBPyConnection, split_date: str | dt.datetime, *, n_queries: int = 5000,
               seed: int = 0, test_until: dt.datetime | None = None, name: str = "cold-start") -> Task:
    """Items first sold on or after `split_date` (known only from the catalog at training time).

    Each later basket with at least one such cold item and one warm item hides one cold item
    (seeded); the query is the basket's warm items and the ranking is over all cold items, so
    only content signals (titles, categories) can tell them apart.
    """
    split = _parse_date(split_date)
    train = InteractionData.from_store(con, until=split)
    cold = np.flatnonzero((train.item_events == 0) & np.array([t is not None for t in train.titles]))
    if len(cold) == 0:
        raise InputError(f"no cold-start items after {_when(split)}")
    is_cold = np.zeros(train.n_items, dtype=bool)
    is_cold[cold] = True
    rows = _later_baskets(con, split, test_until)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(rows))
    queries, targets, picked = [], [], []
    for r in order:
        items, _ = rows[r]
        idx = train.items.indices(items)
        idx = idx[idx >= 0]
        c, w = idx[is_cold[idx]], idx[~is_cold[idx] & (train.item_events[idx] > 0)]
        if len(c) and len(w):
            targets.append(np.array([c[rng.integers(len(c))]]))
            queries.append(np.sort(w))
            picked.append(r)
        if len(queries) >= n_queries:
            break
    if not queries:
        raise InputError(f"no test baskets mixing cold and known items after {_when(split)}")
    q = query_matrix(queries, train.n_items)
    info = {"split": f"cold-start items first sold from {_when(split)}; ranked among {len(cold):,} cold items",
            "seed": seed, "dataset": dataset_hash(con), "queries": len(queries), "cold_items": int(len(cold)), "dataset_name": dataset_name(con)}
    return Task(name, train, q, targets, None, q, cold.astype(np.int64), info,
                _group_codes([customer for _, customer in rows])[picked])


def _later_baskets(con: duckdb.DuckDBPyConnection, split: dt.datetime,
                   test_until: dt.datetime | None) -> list[tuple[list[str], Any]]:
    """(item ids, customer) of each purchase basket from `split` (until `test_until`), by basket id; an
    anonymous basket is its own customer."""
    params: list[Any] = [split]
    cond = "ts >= ?"
    if test_until is not None:
        cond += " AND ts < ?"
        params.append(test_until)
    rows = con.execute(f"""SELECT basket_id, list(DISTINCT item_id ORDER BY item_id), any_value(user_id) FROM events
        WHERE event = 'purchase' AND basket_id IS NOT NULL AND {cond} GROUP BY basket_id ORDER BY basket_id""",
                       params).fetchall()
    return [(items, user if user is not None else ("basket", basket_id)) for basket_id, items, user in rows]


def _group_codes(keys: list[Any]) -> np.ndarray:
    """Int codes of customers (equal keys, equal codes). Coded over all the test period's baskets before the
    seeded draw, so a customer has the same code in every task seed's queries and seeds can be pooled."""
    codes: dict[Any, int] = {}
    return np.array([codes.setdefault(k, len(codes)) for k in keys], dtype=np.int64)
