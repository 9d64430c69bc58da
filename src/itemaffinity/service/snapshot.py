"""The service's read model: an immutable, in-memory snapshot of a store and its fitted models.

Built once at start (and again after each rebuild) from the store's tables and the models saved
next to it, then swapped in with one reference assignment, so a request sees either the old or
the new snapshot, never a half-built one. Everything is in item indices of `data.items`
(STYLE 1); ids are mapped at the edges.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import duckdb
import numpy as np
import scipy.sparse as sp

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.mapping import Mapping as IngestMapping
from itemaffinity.models.base import Recommender
from itemaffinity.mining.transactions import transaction_unit, transactions
from itemaffinity.store.artifacts import latest_evaluations, load_saved_model, saved_models
from itemaffinity.store.duckdb_store import ingest_mapping, table_exists
from itemaffinity.text.encoders import TfidfEncoder, fitted_tfidf, item_texts, plain_text

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class PairLists:
    """Directed pair rows item → partner grouped by item (CSR-like), strongest first.

    Rows of item i are ``indptr[i]:indptr[i+1]``; every array below is aligned with `partner`.

    Attributes:
        indptr: (n_items + 1,) int64 offsets.
        partner: partner item indices (int64).
        n_ab: baskets holding both; n_a, n_b: baskets holding the item, the partner.
        lift, confidence, shrunk_lift: the measures of the store's `pairs` table, item → partner.
        n_transactions: the number of baskets the counts are out of.
        mined: whether the store has a pairs table; without one (a store not analysed yet) an item's partners are
            counted from the snapshot's transactions when asked (`OnlineState.pairs`).
    """

    indptr: np.ndarray
    partner: np.ndarray
    n_ab: np.ndarray
    n_a: np.ndarray
    n_b: np.ndarray
    lift: np.ndarray
    confidence: np.ndarray
    shrunk_lift: np.ndarray
    n_transactions: int
    mined: bool = True

    def rows(self, item_idx: int) -> slice:
        return slice(int(self.indptr[item_idx]), int(self.indptr[item_idx + 1]))


@dataclass(frozen=True, eq=False)
class Bundles:
    """Frequent itemsets of 2+ items offered as bundles, with the bundles of each item.

    Attributes:
        members: tuple of item-index tuples, one per bundle.
        support, count, lift: per bundle (lift = support / Π support of its items).
        by_item: item index → bundle ids, best first (support, then lift).
    """

    members: tuple[tuple[int, ...], ...]
    support: np.ndarray
    count: np.ndarray
    lift: np.ndarray
    by_item: Mapping[int, np.ndarray]


@dataclass(frozen=True, eq=False)
class RuleTable:
    """Association rules A → C in external ids, with their metrics and an index by item."""

    antecedent: tuple[tuple[str, ...], ...]
    consequent: tuple[tuple[str, ...], ...]
    metrics: Mapping[str, np.ndarray]
    by_antecedent_item: Mapping[str, np.ndarray]
    by_consequent_item: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.antecedent)


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Everything a read needs, immutable after construction.

    Attributes:
        version: increases by one with every snapshot this process builds.
        built_at: ISO time of construction.
        watermark: the largest events `run_id` the snapshot includes (later runs are folded online).
        data: the store's InteractionData (vocabularies, baskets, user histories, item statistics).
        transactions, transactions_csc: what every co-count is out of, as CSR and CSC (`mining.transactions`):
            the purchase baskets, or in a store without orders (reviews, ratings, views) each customer's items.
        unit: "basket" or "customer", what one transaction is (the words of the answers' reasons).
        item_transactions: (n_items,) transactions holding each item.
        descriptions: catalog description per item index (or None).
        group, group_label: product group (cluster) per item index (−1 / None when unknown).
        pairs: the store's pair statistics per item.
        bundles: itemsets of 2–4 items per item.
        rules: association rules.
        segments: user_id → RFM segment row; segment_summary: one row per segment.
        evaluations: the latest leaderboard rows.
        rejects: (source, reason, rows) counts of the store's rejects table.
        reject_examples: reason → a few rejected rows (source, row number, detail, raw JSON).
        mapping: the newest ingest's mapping (cleaning rules reused for posted events).
        models: loaded models by name; default_model: the store's default (set by analyze), else
            the best on the leaderboard, else ease.
        popularity_order: item indices by transactions (baskets, or customers), most bought first.
        text_vectors: TF-IDF vectors of the catalog texts. A pair's text similarity is their cosine everywhere:
            in its evidence and relation here, in the store's pairs table and on the CLI.
        text_encoder: the TF-IDF encoder of `text_vectors`, for texts of products the snapshot does not hold.
    """

    version: int
    built_at: str
    watermark: int
    data: InteractionData
    transactions: sp.csr_matrix
    transactions_csc: sp.csc_matrix
    unit: str
    item_transactions: np.ndarray
    descriptions: np.ndarray
    group: np.ndarray
    group_label: np.ndarray
    pairs: PairLists
    bundles: Bundles
    rules: RuleTable
    segments: Mapping[str, dict[str, Any]]
    segment_summary: tuple[dict[str, Any], ...]
    evaluations: tuple[dict[str, Any], ...]
    rejects: tuple[tuple[str, str, int], ...]
    reject_examples: Mapping[str, tuple[dict[str, Any], ...]]
    mapping: IngestMapping
    models: Mapping[str, Recommender]
    default_model: str | None
    popularity_order: np.ndarray
    category_keys: np.ndarray = field(repr=False)
    text_vectors: sp.csr_matrix = field(repr=False)
    text_encoder: TfidfEncoder = field(repr=False)

    @property
    def n_items(self) -> int:
        return self.data.n_items

    @property
    def n_transactions(self) -> int:
        return self.transactions.shape[0]

    def count_of(self, n: int) -> str:
        """"3 baskets", "1 customer": a count of transactions in the store's unit, for reasons."""
        return f"{n:,} {self.unit}{'' if n == 1 else 's'}"

    def transaction_index(self, key: str) -> int:
        """The row of transaction `key` (a basket id, or a customer id in a store without orders), −1 for a new one."""
        return (self.data.baskets if self.unit == "basket" else self.data.users).index(key)

    def item_index(self, item_id: str) -> int:
        """The item's index, −1 if unknown; an id in another letter case finds the item when the store's
        mapping folded the case (item_id_case), as posted events are folded."""
        return self.data.items.index(self.mapping.fold_item_id(item_id))

    def item_indices(self, item_ids: Sequence[str]) -> np.ndarray:
        """Indices of request ids (int64, −1 for unknown ones), folded like `item_index`."""
        return self.data.items.indices([self.mapping.fold_item_id(i) for i in item_ids])

    def title(self, item_idx: int) -> str | None:
        return self.data.titles[item_idx]

    def price(self, item_idx: int) -> float | None:
        p = self.data.prices[item_idx]
        return None if np.isnan(p) else float(p)

    def text_similarities(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosines of the catalog texts of aligned item pairs (a[i], b[i]), computed as `analyze` stores them
        with the pairs; NaN where either item has no text."""
        v, a, b = self.text_vectors, np.asarray(a, np.int64), np.asarray(b, np.int64)
        sims = np.asarray(v[a].multiply(v[b]).sum(axis=1), dtype=np.float64).ravel()
        has_text = (v.indptr[a + 1] > v.indptr[a]) & (v.indptr[b + 1] > v.indptr[b])  # the pairs' items only
        sims[~has_text] = np.nan
        return sims

    def text_similarities_to(self, texts: Sequence[str]) -> np.ndarray:
        """(n_items,) the largest cosine of each item's catalog text to one of `texts` (texts of products the
        snapshot may not hold), as `text_similarities` measures a pair; NaN for items without text."""
        sims = (self.text_vectors @ self.text_encoder.encode(texts).T).max(axis=1).toarray().ravel()
        sims[np.diff(self.text_vectors.indptr) == 0] = np.nan
        return sims.astype(np.float64)

    def text_similarity(self, a: int, b: int) -> float | None:
        """Cosine of items a and b's catalog texts (None when either has none)."""
        sim = self.text_similarities(np.array([a]), np.array([b]))[0]
        return None if np.isnan(sim) else float(sim)


def _load_pairs(con: duckdb.DuckDBPyConnection, data: InteractionData, n_transactions: int, min_count: int
                ) -> PairLists:
    """Each item's bought-together partners: the pairs table's rows bought together in at least `min_count`
    of the `n_transactions` (the table also holds each item's text neighbours, for their relation, bought together
    or not)."""
    n_items = data.n_items
    empty = np.zeros(0, np.int64)
    if not table_exists(con, "pairs"):
        return PairLists(np.zeros(n_items + 1, np.int64), empty, empty, empty, empty, empty.astype(float),
                         empty.astype(float), empty.astype(float), n_transactions, mined=False)
    t = con.execute("""SELECT item_a, item_b, n_ab, n_a, n_b, lift, confidence, shrunk_lift, support
                       FROM pairs""").fetchnumpy()
    a = data.items.indices(t["item_a"].tolist())
    b = data.items.indices(t["item_b"].tolist())
    keep = (a >= 0) & (b >= 0) & (np.asarray(t["n_ab"]) >= min_count)
    shrunk = np.asarray(t["shrunk_lift"], np.float64)[keep]
    a, b = a[keep], b[keep]
    # The table is written strongest first per item; re-sort explicitly (SQL promises no order):
    # by item, then shrunk lift descending, then the smaller partner (top_k_per_item's tie rule).
    order = np.lexsort((b, -shrunk, a))
    cols = {k: np.asarray(t[k])[keep][order] for k in ("n_ab", "n_a", "n_b", "lift", "confidence", "support")}
    indptr = np.zeros(n_items + 1, np.int64)
    np.cumsum(np.bincount(a, minlength=n_items), out=indptr[1:])
    n_tx = n_transactions
    if len(cols["n_ab"]) and cols["support"][0] > 0:
        n_tx = int(round(cols["n_ab"][0] / cols["support"][0]))
    return PairLists(indptr, b[order].astype(np.int64), cols["n_ab"].astype(np.int64), cols["n_a"].astype(np.int64),
                     cols["n_b"].astype(np.int64), cols["lift"].astype(np.float64),
                     cols["confidence"].astype(np.float64), shrunk[order], n_tx)


def _load_bundles(con: duckdb.DuckDBPyConnection, data: InteractionData, max_len: int = 4) -> Bundles:
    if not table_exists(con, "itemsets"):
        return Bundles((), np.zeros(0), np.zeros(0, np.int64), np.zeros(0), {})
    rows = con.execute("SELECT items, support, count FROM itemsets WHERE length <= ?", [max_len]).fetchall()
    single = {r[0][0]: float(r[1]) for r in rows if len(r[0]) == 1}
    members, support, count, lift = [], [], [], []
    for items, sup, cnt in rows:
        if len(items) < 2:
            continue
        idx = tuple(int(i) for i in data.items.indices(items))
        if min(idx) < 0 or any(i not in single for i in items):
            continue
        members.append(idx)
        support.append(float(sup))
        count.append(int(cnt))
        lift.append(float(sup) / float(np.prod([single[i] for i in items])))
    support_a, lift_a = np.asarray(support), np.asarray(lift)
    by_item: dict[int, list[int]] = {}
    for k, idx in enumerate(members):
        for i in idx:
            by_item.setdefault(i, []).append(k)
    ranked = {i: np.asarray(sorted(ks, key=lambda k: (-support_a[k], -lift_a[k], k)), np.int64)
              for i, ks in by_item.items()}
    return Bundles(tuple(members), support_a, np.asarray(count, np.int64), lift_a, ranked)


REJECT_EXAMPLES = 20
"""Rejected rows kept per reason in a snapshot, as examples for the data-quality view."""

RULE_METRICS = ("support", "confidence", "lift", "leverage", "conviction")


def _load_rules(con: duckdb.DuckDBPyConnection) -> RuleTable:
    if not table_exists(con, "rules"):
        return RuleTable((), (), {m: np.zeros(0) for m in RULE_METRICS}, {}, {})
    t = con.execute(f"SELECT antecedent, consequent, {', '.join(RULE_METRICS)} FROM rules").fetchnumpy()
    ante = tuple(tuple(x) for x in t["antecedent"].tolist())
    cons = tuple(tuple(x) for x in t["consequent"].tolist())
    metrics = {m: np.asarray(t[m], np.float64) for m in RULE_METRICS}
    by_a: dict[str, list[int]] = {}
    by_c: dict[str, list[int]] = {}
    for k, (a, c) in enumerate(zip(ante, cons)):
        for i in a:
            by_a.setdefault(i, []).append(k)
        for i in c:
            by_c.setdefault(i, []).append(k)
    return RuleTable(ante, cons, metrics, {k: np.asarray(v) for k, v in by_a.items()},
                     {k: np.asarray(v) for k, v in by_c.items()})


def _load_segments(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, dict[str, Any]], tuple[dict[str, Any], ...]]:
    if not table_exists(con, "segments"):
        return {}, ()
    cur = con.execute("SELECT user_id, recency_days, frequency, monetary, r, f, m, segment, behaviour FROM segments")
    names = [d[0] for d in cur.description]
    rows = {}
    for r in cur.fetchall():
        row = dict(zip(names, r))
        if row["recency_days"] is not None and not np.isfinite(row["recency_days"]):
            row["recency_days"] = None
        rows[str(row["user_id"])] = row
    summary = con.execute("""SELECT segment, count(*) AS users, avg(recency_days) FILTER (WHERE isfinite(recency_days))
            AS avg_recency_days, avg(frequency) AS avg_frequency, avg(monetary) AS avg_monetary,
            sum(monetary) AS total_monetary FROM segments GROUP BY segment ORDER BY users DESC, segment""")
    names = [d[0] for d in summary.description]
    return rows, tuple(dict(zip(names, r)) for r in summary.fetchall())


def _load_groups(con: duckdb.DuckDBPyConnection, data: InteractionData) -> tuple[np.ndarray, np.ndarray]:
    group = np.full(data.n_items, -1, np.int64)
    label = np.full(data.n_items, None, dtype=object)
    if table_exists(con, "item_clusters"):
        t = con.execute("SELECT item_id, cluster, cluster_label FROM item_clusters").fetchall()
        idx = data.items.indices([r[0] for r in t])
        for i, (_, c, lab) in zip(idx, t):
            if i >= 0 and c is not None and c >= 0:
                group[i], label[i] = int(c), lab
    return group, label


def _stored_default(con: duckdb.DuckDBPyConnection) -> str | None:
    row = con.execute("SELECT value FROM meta WHERE key = 'default_model'").fetchone()
    return row[0] if row else None


def _descriptions(con: duckdb.DuckDBPyConnection, data: InteractionData) -> np.ndarray:
    out = np.full(data.n_items, None, dtype=object)
    rows = con.execute("SELECT item_id, description FROM catalog WHERE description IS NOT NULL").fetchall()
    for i, (_, d) in zip(data.items.indices([r[0] for r in rows]), rows):
        if i >= 0:
            out[i] = plain_text(d) or None  # the page shows text, not a shop export's HTML
    return out


def default_model_name(evaluations: tuple[dict[str, Any], ...], loaded: Mapping[str, Recommender],
                       stored: str | None = None) -> str | None:
    """The store's default model (set by `analyze` in its meta table) when loaded; else the model
    with the best NDCG@10 on the stored leaderboard (basket completion first) among the loaded
    ones; else ease; else the first loaded model."""
    if stored in loaded:
        return stored
    tasks = [r.get("task") for r in evaluations]
    task = "basket-completion" if "basket-completion" in tasks else (tasks[0] if tasks else None)
    ranked = sorted((r for r in evaluations if r.get("task") == task and r.get("model") in loaded),
                    key=lambda r: -(r.get("NDCG@10") or 0.0))
    if ranked:
        return ranked[0]["model"]
    if "ease" in loaded:
        return "ease"
    return next(iter(loaded), None)


def load_models(store_path: str, names: tuple[str, ...] | None, say: Progress) -> dict[str, Recommender]:
    """The models saved next to the store (all, or `names`); a model that fails to load is skipped."""
    models: dict[str, Recommender] = {}
    # `<model>__<component>` artifacts are parts of a saved model (a hybrid's components): its
    # parent loads them.
    for name in names if names is not None else tuple(n for n in saved_models(store_path) if "__" not in n):
        say(f"loading model {name}")
        try:
            model = load_saved_model(store_path, name)
        except Exception as exc:  # noqa: BLE001 - one broken artifact must not stop the service
            log.warning("model %s could not be loaded: %s", name, exc)
            continue
        if model is None:
            log.warning("model %s is not saved next to %s", name, store_path)
        else:
            models[name] = model
    return models


def read_data(con: duckdb.DuckDBPyConnection) -> tuple[InteractionData, int]:
    """InteractionData and the events watermark (max run_id) read in one transaction.

    Args:
        con: a connection (or cursor) of its own: temp tables are created on it.
    """
    con.execute("BEGIN TRANSACTION")
    try:
        watermark = int(con.execute("SELECT coalesce(max(run_id), 0) FROM events").fetchone()[0])
        data = InteractionData.from_store(con)
    finally:
        con.execute("COMMIT")
    return data, watermark


def build_snapshot(con: duckdb.DuckDBPyConnection, store_path: str, *, version: int,
                   data: InteractionData | None = None, watermark: int | None = None,
                   models: Mapping[str, Recommender] | None = None, model_names: tuple[str, ...] | None = None,
                   pair_min_count: int = 2, progress: Progress | None = None) -> Snapshot:
    """Read the store into a new Snapshot.

    Args:
        con: a connection (or cursor) to the store that this call may use on its own.
        store_path: the store file (models are read from `<store>.artifacts/models`).
        version: the snapshot's version number.
        data, watermark: already-read InteractionData and its watermark (read here when None).
        models: already-fitted models (loaded from disk when None).
        model_names: models to load (None: every saved model).
        pair_min_count: baskets a pair needs to be listed as bought together (the online updates' threshold).
        progress: step messages.
    """
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    if data is None:
        say("reading events")
        data, watermark = read_data(con)
    say("reading pairs, itemsets, rules, clusters and segments")
    tx = transactions(data)
    item_tx = np.bincount(tx.indices, minlength=data.n_items).astype(np.int64)
    item_tx.flags.writeable = False
    pairs = _load_pairs(con, data, tx.shape[0], pair_min_count)
    bundles = _load_bundles(con, data)
    rules = _load_rules(con)
    group, group_label = _load_groups(con, data)
    segments, segment_summary = _load_segments(con)
    evaluations = tuple(latest_evaluations(con))
    rejects = tuple((str(s), str(r), int(n)) for s, r, n in con.execute(
        "SELECT source, reason, count(*) FROM rejects GROUP BY ALL ORDER BY 3 DESC").fetchall())
    examples: dict[str, list[dict[str, Any]]] = {}
    cur = con.execute("""SELECT reason, source, source_row, detail, raw FROM (SELECT *, row_number() OVER
        (PARTITION BY reason ORDER BY run_id, source_row) AS k FROM rejects) WHERE k <= ? ORDER BY reason, k""",
                      [REJECT_EXAMPLES])
    for reason, source, row, detail, raw in cur.fetchall():
        examples.setdefault(reason, []).append({"source": source, "row": row, "detail": detail, "raw": raw})
    if models is None:
        models = load_models(store_path, model_names, say)
    cats = np.empty(data.n_items, dtype=object)  # lower-cased catalog category and product group
    for i, (c, g) in enumerate(zip(data.categories, group_label)):
        cats[i] = tuple(str(x).lower() for x in (c, g) if x)
    encoder, vectors = fitted_tfidf(item_texts(data))
    snap = Snapshot(
        version=version, built_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        watermark=int(watermark or 0), data=data, transactions=tx,
        transactions_csc=tx.tocsc(), unit=transaction_unit(data),
        item_transactions=item_tx,
        descriptions=_descriptions(con, data), group=group, group_label=group_label, pairs=pairs,
        bundles=bundles, rules=rules, segments=segments, segment_summary=segment_summary,
        evaluations=evaluations, rejects=rejects,
        reject_examples={k: tuple(v) for k, v in examples.items()}, mapping=ingest_mapping(con), models=dict(models),
        default_model=default_model_name(evaluations, models, _stored_default(con)),
        popularity_order=np.argsort(-item_tx, kind="stable"), category_keys=cats,
        text_vectors=vectors, text_encoder=encoder)
    log.info("snapshot %d: %d items, %d pair rows, %d bundles, %d rules, models %s in %.1fs", version,
             data.n_items, len(pairs.partner), len(bundles.members), len(rules), ", ".join(snap.models) or "none",
             time.perf_counter() - t0)
    return snap
