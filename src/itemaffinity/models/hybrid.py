"""Hybrid fusion: candidates and scores from several models, re-ranked by a learned ranker.

Fit (all inside the training data, never the test split):
1. cut validation queries out of the training data: `validation_slices` disjoint random slices
   of the baskets (or, with validation="latest", rolling origins: the k-th last `validation_days`
   window for each of `validation_slices` folds, the components seeing only what came before it;
   or each user's last item when there are no baskets), each basket hiding up to
   `hidden_per_basket` items one at a time;
2. for each slice, fit every component on the rest of the data — events of the held-out
   baskets are removed from the customers' histories too, so that history-based components
   cannot see the hidden item — score the slice's queries, and take the union of each
   component's top `n_candidates` as candidates;
3. learn a LightGBM LambdaRank model on per-candidate features (`FEATURES`), with label 1 for
   the hidden item and early stopping on a held-out share of the validation queries — with
   validation="both" (the default) one on the random slices and one on the rolling origins,
   whose scores are standardised per query and averaged when serving;
4. refit the components on all the training data. `refresh(data)` repeats only this step on new data,
   keeping the rankers.
Items no component proposes rank after every candidate: those sharing a category with a query item
first, then by popularity. A query whose items nobody has bought yet (a new product's "similar items")
is not ranked by the rankers, which learnt from bought items and would put best sellers first: it
takes the fallback chain content → category → popularity, its items' text cosine (sentence embeddings,
else TF-IDF) before the category step and popularity. A query with no known items gets popularity:
every query gets an answer.

Features are built the same way for validation and for serving: popularity "recently" means the
`recent_days` before the query's time — a validation basket's own timestamp, and the end of the
training data when serving (as at the test split).

Popularity-aware gating is learnt, not set by hand: the rankers see the candidate's and the query items'
popularity among their features, so how much each component and link counts depends on how often the items
sold. On Online Retail they lift rarely bought items far above EASE's ranking and give up a little on best
sellers, a trade that neither a popularity weight added at serving time nor rankers learnt from EASE's score
as a starting point improve (benchmarks/bench_hybrid.py --by-popularity, benchmarks/explore_popularity_bias.py,
benchmarks/explore_ranker.py).
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.mining.transactions import transactions
from itemaffinity.models._sparse import row_blocks
from itemaffinity.models.base import ModelConfig, Recommender, query_matrix, rank_top_n
from itemaffinity.text.encoders import default_text_model

log = logging.getLogger(__name__)
# loky replaces a worker whose memory grew over a task (its leak guard) and says so as it happens; the
# queued folds go to the new worker, nothing is lost, so the message only alarms a reader of `make demo`.
warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given to the executor",
                        category=UserWarning)

DAY = np.timedelta64(86400, "s")
BATCH = 1000
DENSE_PAIRS_MAX = 5_000
"""Catalogs up to this many items keep their item-pair tables dense for the link features (`_Pairs`)."""
WORKER_IDLE_S = 10
"""Seconds a fold worker outlives its last fold. Each held about 0.9 GB after the Online Retail folds, which
loky's default (300 s) kept through the rest of the fit and beyond, in a server's process too."""
RANKER_STATE = ("booster_", "booster_sizes_", "candidate_recall_", "rankers_until_")
"""What fit learns on the validation folds, and `refresh` keeps."""
FALLBACK = -1e3
"""Base score of the items no component proposes: below any ranker score, and small enough for float32
to keep the popularity shares (0–1) and the category step (+2) added to it apart."""

COLD_TEXT_WEIGHT = 10.0
"""Weight of the text cosine (0–1) in a cold query's fallback scores: a look-alike (cosine ≥ 0.3) comes before
an item sharing only a category (+2), and both before popularity (0–1)."""

COMPONENT_FEATURES = ("score / query's best score", "rank in the component's top n_candidates (n+1 if absent)")
FEATURES = (
    "query items bought with the candidate / query size",
    "query items bought with the candidate",
    "Σ over query items of P(candidate | item)",
    "mean over query items of P(item | candidate)",
    "mean lift of the candidate with the query items",
    "largest P(candidate | item) over the query items",
    "largest P(item | candidate) over the query items",
    "log(1 + largest lift over the query items)",
    "largest Jaccard index with a query item",
    "largest TF-IDF cosine of the texts to a query item's",
    "largest sentence-embedding cosine of the texts to a query item's",
    "mean TF-IDF cosine of the texts to the query items'",
    "mean sentence-embedding cosine of the texts to the query items'",
    "components with the candidate in their top n_candidates",
    "log(1 + baskets with the candidate)",
    "log(1 + baskets with the candidate in the recent_days before the query)",
    "recent minus overall log popularity (trend)",
    "days since the candidate was first bought, at the query's time",
    "log(1 + price), −1 when unknown",
    "query size",
    "mean log(1 + baskets) of the query items",
    "each component's score standardised over the query's candidates (one per component)",
    "the first, third and fifth features standardised over the query's candidates",
)
"""Per-candidate features after the two per component (COMPONENT_FEATURES). Standardised per query
(mean 0, sd 1 over its candidates) a score says how far the candidate stands out among this query's,
which its ratio to the best does not: a listwise view that gained NDCG@10 on the validation task."""


def standardised_score_columns(n_components: int) -> slice:
    """The feature columns of the components' scores standardised per query (FEATURES' last two entries: one
    column per component, then the three standardised link features)."""
    return slice(-(n_components + 3), -3)


def usable_cores() -> int:
    """The CPU cores this process may use (affinity and cgroup quota, not the host's count)."""
    return joblib.cpu_count()


class HybridConfig(ModelConfig):
    components: tuple[str, ...] = ("ease", "itemknn", "rules", "tfidf", "usermix", "als", "userknn", "lineknn")
    component_params: dict[str, dict[str, Any]] = Field(default_factory=lambda: {
        "ease": {"lam": 30.0}, "userknn": {"neighbours": "baskets", "k": 100}})
    n_candidates: int = Field(default=50, ge=5)
    validation: Literal["both", "latest", "random"] = Field(default="both", description=(
        "Hold out random slices of baskets, or (latest) the last validation_slices windows of validation_days, "
        "each fold's components fitted only on what came before its window (rolling origins, as at a time split); "
        "both: one ranker learnt on each, their scores standardised per query and averaged (random only when "
        "the baskets have no times)."))
    validation_share: float = Field(default=0.2, gt=0, lt=1, description="Share of baskets in one random slice.")
    validation_slices: int = Field(default=5, ge=1, description=(
        "Disjoint random slices, each a refit of the components (at most 1 / validation_share)."))
    validation_days: float = Field(default=30.0, gt=0)
    validation_queries: int = Field(default=40000, ge=100, description="Validation queries over all slices.")
    hidden_per_basket: int = Field(default=3, ge=1, description="Validation queries made from one basket.")
    single_item_share: float = Field(default=0.1, ge=0, le=1, description=(
        "Share of baskets that also give a one-item query (an item → another item of the basket), as a "
        "product page asks; without them the ranker never sees one-item queries from baskets of 3+ items."))
    recent_days: float = Field(default=30.0, gt=0)
    text_model: str | None = Field(default_factory=default_text_model, description=(
        "Sentence encoder (name or folder) for the text-similarity features (default: $ITEMAFFINITY_TEXT_MODEL, "
        "else all-MiniLM-L6-v2); None, or without sentence-transformers installed: TF-IDF similarity only."))
    embedding_cache: str | None = Field(default=None, description="DuckDB file caching the text embeddings.")
    n_estimators: int = Field(default=1000, ge=10, description="Most boosting rounds (early stopping picks fewer).")
    learning_rate: float = Field(default=0.1, gt=0)
    num_leaves: int = Field(default=31, ge=4)
    early_stopping_share: float = Field(default=0.1, ge=0, lt=1,
                                        description="Validation queries held out to stop boosting (0: no stopping).")
    n_jobs: int | None = Field(default=None, ge=1, description=(
        "Validation folds fitted at once, each in its own process (None: one per CPU core; 1: in this process)."))
    seed: int = 0


@dataclass(frozen=True)
class _Fold:
    """Validation queries and the data the components see for them."""

    sub: InteractionData
    queries: sp.csr_matrix
    users: np.ndarray | None
    targets: np.ndarray
    at: np.ndarray  # (q,) datetime64[s]: the query's time, for "recent" popularity


@dataclass(frozen=True)
class _ItemStats:
    """Co-occurrence and per-item statistics of one training set, for the link and item features."""

    cooccur: sp.csr_matrix  # (n_items, n_items) baskets with both items, diagonal 0
    counts: np.ndarray  # (n_items,) baskets with the item
    n_transactions: int
    day0: np.datetime64 | None  # first day of the data (None: no timestamps)
    daily: np.ndarray | None  # (n_days + 1, n_items) cumulative baskets with the item before each day
    first_day: np.ndarray  # (n_items,) first day the item was bought (days since day0)
    log_price: np.ndarray

    @classmethod
    def of(cls, data: InteractionData) -> "_ItemStats":
        x = sp.csr_matrix(transactions(data), dtype=np.float32)
        c = (x.T @ x).tocsr()
        c.setdiag(0)
        c.eliminate_zeros()
        counts = np.asarray(x.sum(axis=0)).ravel()
        price = np.asarray(data.prices, dtype=np.float64)
        log_price = np.where(np.isfinite(price) & (price >= 0), np.log1p(np.abs(price)), -1.0).astype(np.float32)
        ts = data.basket_ts if data.n_baskets else np.asarray([], "datetime64[s]")
        if not len(ts) or np.isnat(ts).all():
            return cls(c, counts, x.shape[0], None, None, np.zeros(data.n_items, np.float32), log_price)
        ok = ~np.isnat(ts)
        day0 = ts[ok].min().astype("datetime64[D]")
        days = ((ts[ok].astype("datetime64[D]") - day0) // np.timedelta64(1, "D")).astype(np.int64)
        n_days = int(days.max()) + 1
        per_day = sp.csr_matrix((np.ones(len(days), np.float32), (days, np.flatnonzero(ok))),
                                shape=(n_days, x.shape[0])) @ x
        daily = np.zeros((n_days + 1, x.shape[1]), np.float32)
        np.cumsum(per_day.toarray(), axis=0, out=daily[1:])
        seen = daily[-1] > 0
        first = np.where(seen, np.argmax(daily > 0, axis=0) - 1, n_days).astype(np.float32)
        return cls(c, counts, x.shape[0], day0, daily, first, log_price)

    def day(self, at: np.ndarray) -> np.ndarray:
        """Day indices (into `daily`) of times; the end of the data for NaT."""
        n = self.daily.shape[0] - 1
        days = at.astype("datetime64[D]")
        d = (np.where(np.isnat(days), self.day0, days) - self.day0).astype(np.int64)
        return np.clip(np.where(np.isnat(days), n, d), 0, n)


class _Pairs:
    """Co-occurrence counts, TF-IDF and sentence cosines of item pairs, for (query item, candidate) lookups.

    Catalogs up to `dense_max` items keep the three item × item tables dense (184 MB at Online Retail's 3,921
    items, built in a second) and every lookup is a gather. Larger ones multiply each block's query items by its
    candidates only, which costs a sparse product per block (4.6 s a thousand queries on Online Retail
    against 0.4 s for the gathers).
    """

    def __init__(self, cooccur: sp.csr_matrix, tfidf: sp.csr_matrix, sentence: np.ndarray,
                 dense_max: int = DENSE_PAIRS_MAX) -> None:
        self.sources, self.dense_max = (cooccur, tfidf, sentence), dense_max
        self.dense = None
        if cooccur.shape[0] <= dense_max:
            self.dense = (cooccur.toarray(), (tfidf @ tfidf.T).toarray(), sentence @ sentence.T)

    def of(self, items: np.ndarray, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(k, C) co-occurrence, TF-IDF and sentence cosine of each of k query items with its row of `cand`."""
        if self.dense is not None:
            return tuple(table[items[:, None], cand] for table in self.dense)
        cooccur, tfidf, sentence = self.sources
        present = np.zeros(cooccur.shape[1], bool)
        present[cand.ravel()] = True
        cols = np.flatnonzero(present)  # the block's candidates: a catalog can be 50 times larger
        pos = (np.cumsum(present) - 1)[cand]
        return (np.take_along_axis(cooccur[items][:, cols].toarray(), pos, axis=1),
                np.take_along_axis((tfidf[items] @ tfidf[cols].T).toarray(), pos, axis=1),
                np.take_along_axis(sentence[items] @ sentence[cols].T, pos, axis=1))


def _largest_over_query(queries: sp.csr_matrix, cand: np.ndarray, pairs: _Pairs, counts: np.ndarray, n: float,
                        max_rows: int = 2048) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(q, C) arrays, for each query and candidate: the largest over the query's items of
    P(candidate | item), P(item | candidate), log(1 + lift), Jaccard, TF-IDF and sentence cosine;
    and the mean over the query's items of the TF-IDF and of the sentence cosine.

    A sum or mean over the query hides one strong link among many weak ones; the largest keeps it.
    Query items are expanded to rows of candidates a block at a time (at most `max_rows` rows).
    """
    q, width = cand.shape
    out = [np.zeros((q, width), np.float32) for _ in range(6)]
    means = [np.zeros((q, width), np.float32) for _ in range(2)]
    ptr = queries.indptr
    cnt = np.maximum(counts, 1.0).astype(np.float32)
    for start, end in row_blocks(ptr, max_rows):
        items = queries.indices[ptr[start]:ptr[end]]
        sizes = np.diff(ptr[start:end + 1])
        rows = np.flatnonzero(sizes)  # queries of the block with items
        if len(items):
            owner = np.repeat(np.arange(end - start), sizes)
            c = cand[start:end][owner]  # (k, C) each query item's row of candidates
            co, text, sentence = pairs.of(items, c)
            ci, cc = cnt[items][:, None], cnt[c]
            values = (co / ci, co / cc, np.log1p(co * n / ci / cc), co / (ci + cc - co), text, sentence)
            first = (ptr[start:end] - ptr[start])[rows]
            for o, v in zip(out, values):
                o[start + rows] = np.maximum.reduceat(v, first, axis=0)
            for m, v in zip(means, values[-2:]):
                m[start + rows] = np.add.reduceat(v, first, axis=0) / sizes[rows][:, None]
    return out, means


def _standardised(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(q, C) or (q, C, k) x, each column standardised over each query's valid candidates (mean 0,
    sd 1); 0 at the padding. `valid` is (q, C)."""
    w = valid.reshape(valid.shape + (1,) * (x.ndim - valid.ndim)).astype(np.float64)
    n = np.maximum(w.sum(axis=1, keepdims=True), 1.0)
    mean = (x * w).sum(axis=1, keepdims=True) / n
    sd = np.sqrt(((x - mean) ** 2 * w).sum(axis=1, keepdims=True) / n)
    return np.where(w > 0, (x - mean) / (sd + 1e-6), 0.0).astype(np.float32)


def category_matrix(categories: np.ndarray) -> sp.csr_matrix:
    """(n_items, n_categories) 0/1 matrix of each item's category (its full path); a row of zeros
    for an item without one."""
    names = [c if isinstance(c, str) and c else None for c in categories]
    code = {name: k for k, name in enumerate(sorted({n for n in names if n is not None}))}
    has = [i for i, n in enumerate(names) if n is not None]
    return sp.csr_matrix((np.ones(len(has), np.float32), (has, [code[names[i]] for i in has])),
                         shape=(len(names), len(code)))


class Hybrid(Recommender):
    name = "hybrid"
    Config = HybridConfig
    # 2: text_vectors_ and sentence_vectors_; 3: several rankers (booster_sizes_); 4: item_category_ codes;
    # 5: item_category_ as an item × category matrix; 6: features standardised per query
    artifact_version = 6

    # -- fitting --------------------------------------------------------------------------------
    def _components(self) -> list[Recommender]:
        """Unfitted components; those that encode text share the hybrid's embedding cache (the store)."""
        from itemaffinity.models.registry import create_store_model

        params = self.config.component_params
        return [create_store_model(c, self.config.embedding_cache, **params.get(c, {})) for c in self.config.components]

    def _basket_queries(self, data: InteractionData, held: np.ndarray, known: np.ndarray, limit: int,
                        rng: np.random.Generator) -> tuple[list[np.ndarray], list[int], list[np.datetime64]]:
        queries, targets, at = [], [], []
        later = np.flatnonzero(held)
        rng.shuffle(later)
        for b in later:
            items = data.basket_items.indices[data.basket_items.indptr[b]:data.basket_items.indptr[b + 1]]
            items = items[known[items]]
            if len(items) >= 2:
                for h in rng.permutation(len(items))[:self.config.hidden_per_basket]:
                    targets.append(items[h])
                    queries.append(np.delete(items, h))
                    at.append(data.basket_ts[b])
                if len(items) > 2 and rng.random() < self.config.single_item_share:
                    one, hidden = rng.choice(items, 2, replace=False)
                    targets.append(hidden)
                    queries.append(np.array([one]))
                    at.append(data.basket_ts[b])
            if len(queries) >= limit:
                break
        return queries, targets, at

    @staticmethod
    def _without_baskets(data: InteractionData, held: np.ndarray) -> InteractionData:
        """The data less the held baskets, and less their events in the customers' sequences
        (matched by customer and time), so that histories do not contain the hidden items."""
        owner = np.repeat(np.arange(data.n_users), np.diff(data.seq_indptr)).astype(np.int64)
        key = owner * 10**11 + data.seq_ts.astype("datetime64[s]").astype(np.int64)
        mine = held & (data.basket_user >= 0)
        held_keys = data.basket_user[mine].astype(np.int64) * 10**11 + data.basket_ts[mine].astype(np.int64)
        return data.restrict(~held, ~np.isin(key, held_keys))

    @staticmethod
    def _timed_baskets(data: InteractionData) -> bool:
        """Whether the data have baskets with times (rolling origins need them)."""
        return bool(data.n_baskets) and not np.isnat(data.basket_ts).all()

    def _regimes(self, data: InteractionData) -> list[str]:
        """The validation regimes to learn a ranker on (config `validation`). With "both", rolling origins need
        baskets with times over at least two validation windows (one held out, one of history before it)."""
        if self.config.validation != "both":
            return [self.config.validation]
        if not self._timed_baskets(data):
            return ["random"]
        if not self._rolling_folds(data):
            log.info("hybrid: the baskets span less than two validation windows of %g days: no rolling-origin "
                     "ranker, the random slices' only", self.config.validation_days)
            return ["random"]
        return ["random", "latest"]

    def _rolling_folds(self, data: InteractionData) -> int:
        """Rolling-origin folds the baskets' time span holds: the windows take at most half of it, so that the
        earliest fold keeps history before its window (0: the span is under two windows)."""
        cfg, ts = self.config, data.basket_ts
        days = np.timedelta64(int(cfg.validation_days * 86400), "s")
        return min(cfg.validation_slices, int((np.nanmax(ts) - np.nanmin(ts)) / 2 / days))

    def _validation(self, data: InteractionData, regime: str = "random") -> list[_Fold]:
        """Validation folds cut from `data` for one regime, random or latest (see the module docstring)."""
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        if data.n_baskets and (regime == "random" or self._timed_baskets(data)):
            ts = data.basket_ts
            if regime == "random":  # the components see every basket but the slice's
                n_slices = max(int(1 / cfg.validation_share + 1e-9), 1)
                slice_of = rng.permutation(data.n_baskets) % n_slices
                helds = [slice_of == s for s in range(min(cfg.validation_slices, n_slices))]
                cuts = [None] * len(helds)
            else:  # rolling origins: fold k holds out the k-th last window, the components see only before it
                days = np.timedelta64(int(cfg.validation_days * 86400), "s")
                end = np.nanmax(ts)
                cuts = [end - (k + 1) * days for k in range(max(1, self._rolling_folds(data)))]
                helds = [(ts >= cut) & (ts < cut + days) for cut in cuts]
            folds = []
            for held, cut in zip(helds, cuts):
                sub = self._without_baskets(data, held) if cut is None else \
                    data.restrict(~(ts >= cut), ~(data.seq_ts >= cut))
                limit = -(-cfg.validation_queries // len(helds))
                queries, targets, at = self._basket_queries(data, held, sub.item_baskets > 0, limit, rng)
                if queries:
                    folds.append(_Fold(sub, query_matrix(queries, data.n_items), None, np.asarray(targets),
                                       np.asarray(at, dtype="datetime64[s]")))
            return folds
        last = data.last_item_mask(1)
        sub = data.restrict(np.ones(data.n_baskets, dtype=bool), ~last)
        owners = np.repeat(np.arange(data.n_users), np.diff(data.seq_indptr))
        users, targets = owners[last], data.seq_items[last]
        ok = np.diff(sub.seq_indptr)[users] > 0
        users, targets = users[ok], targets[ok]
        if len(users) > cfg.validation_queries:
            pick = np.sort(rng.choice(len(users), cfg.validation_queries, replace=False))
            users, targets = users[pick], targets[pick]
        hist = sp.csr_matrix(sub.user_items[users] > 0, dtype=np.float32)
        return [_Fold(sub, hist, users, targets, np.full(len(users), np.datetime64("NaT"), "datetime64[s]"))]

    def _fit(self, data: InteractionData) -> None:
        from itemaffinity.text.encoders import item_texts, tfidf_vectors

        texts = item_texts(data)
        self.text_vectors_ = tfidf_vectors(texts)
        self.sentence_vectors_ = self._sentence_vectors(texts)
        kept = vars(self).pop("_kept_rankers", None)
        if kept is not None:  # a refresh: the rankers of an earlier fit
            vars(self).update(kept)
        else:
            # when the data the rankers learn from end, so that a service can tell how old its rankers are
            times = np.concatenate([data.basket_ts, data.seq_ts]).astype("datetime64[s]")
            times = times[~np.isnat(times)]
            self.rankers_until_ = np.asarray(times.max() if len(times) else np.datetime64("NaT"), "datetime64[s]")
            rankers, hits, n_queries = [], 0, 0
            for regime in self._regimes(data):
                model, regime_hits, regime_queries = self._learn_ranker(self._validation(data, regime), regime)
                rankers += [model] if model is not None else []
                hits, n_queries = hits + regime_hits, n_queries + regime_queries
            if not rankers:
                log.warning("hybrid: no validation query had its hidden item among the candidates (%d queries), so no "
                            "ranker was learnt: it ranks by its components' scores, each standardised per query, "
                            "averaged", n_queries)
            self.candidate_recall_ = np.asarray(hits / max(n_queries, 1), dtype=np.float32)
            # The rankers' model strings, one after another; booster_sizes_ says where each ends.
            self.booster_ = np.frombuffer("".join(rankers).encode(), dtype=np.uint8)
            self.booster_sizes_ = np.asarray([len(m.encode()) for m in rankers], dtype=np.int64)
        self.components_ = [c.fit(data) for c in self._components()]
        stats = _ItemStats.of(data)
        self.cooccur_ = stats.cooccur
        self.item_counts_ = stats.counts
        self.n_transactions_ = np.asarray(stats.n_transactions, dtype=np.int64)
        self.log_price_ = stats.log_price
        self.item_category_ = category_matrix(data.categories)
        # Serving asks "now", the end of the training data: the item statistics at that time.
        self.popularity_, self.recent_popularity_, self.item_age_ = self._item_features(
            stats, np.full(1, np.datetime64("NaT"), "datetime64[s]"))
        self._boosters = None

    def refresh(self, data: InteractionData) -> "Hybrid":
        """A new hybrid that keeps these learnt rankers and refits everything else (components, item
        statistics, texts) on `data`, such as the events of a store that has grown since this fit.

        Learning the rankers is most of a fit: every component is refitted on each validation fold. Their
        features describe a candidate against its query, not which items exist, so they carry over to new
        items and events; a refresh costs about one fit of the components. What the staler rankers cost in
        NDCG@10 is measured by benchmarks/bench_refresh.py."""
        self._check_fitted()
        fresh = type(self)(config=self.config)
        # (an artifact saved before rankers_until_ was recorded has none to keep)
        fresh._kept_rankers = {k: vars(self)[k] for k in RANKER_STATE if k in vars(self)}
        return fresh.fit(data)

    def _learn_ranker(self, folds: list[_Fold], regime: str) -> tuple[str | None, int, int]:
        """A LambdaRank model learnt on the folds' queries: (its model string, queries whose target is
        among the candidates, queries); None for the model when no query has its target among the candidates
        (a small shop whose customers only re-buy what they bought: nothing to learn from)."""
        t0 = time.perf_counter()
        if not folds:
            return None, 0, 0
        feats, labels = self._ranker_rows(folds)  # one (rows, labels) pair per query with its target among candidates
        n_queries = sum(len(fold.targets) for fold in folds)
        if not labels:
            return None, 0, n_queries
        t1 = time.perf_counter()
        model, rounds = self._train_ranker(feats, labels)
        log.info("hybrid, %s validation: %d queries (%.0f%% with the target among candidates), features in %.1fs; "
                 "ranker of %d rounds in %.1fs", regime, n_queries, 100 * len(labels) / n_queries, t1 - t0, rounds,
                 time.perf_counter() - t1)
        return model, len(labels), n_queries

    def _train_ranker(self, feats: list[np.ndarray], labels: list[np.ndarray], init: list[np.ndarray] | None = None,
                      **params) -> tuple[str, int]:
        """LambdaRank on per-query (candidates, features) rows and 0/1 labels, early-stopped on a share of the
        queries: (the model string, its rounds). `init` (each query's initial scores, one per candidate row) and
        `params` (LightGBM's, over these) are for benchmarks/explore_ranker.py."""
        import lightgbm as lgb

        cfg = self.config
        groups = [len(lab) for lab in labels]
        order = np.random.default_rng(cfg.seed).permutation(len(groups))
        n_stop = int(cfg.early_stopping_share * len(groups)) if len(groups) >= 50 else 0
        train, stop = np.sort(order[n_stop:]), np.sort(order[:n_stop])

        def stack(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray | None]:
            return (np.vstack([feats[i] for i in rows]), np.concatenate([labels[i] for i in rows]),
                    [groups[i] for i in rows], None if init is None else np.concatenate([init[i] for i in rows]))

        ranker = lgb.LGBMRanker(**dict(objective="lambdarank", n_estimators=cfg.n_estimators,
                                       learning_rate=cfg.learning_rate, num_leaves=cfg.num_leaves, min_child_samples=50,
                                       subsample=0.8, subsample_freq=1, colsample_bytree=0.9, reg_lambda=1.0,
                                       random_state=cfg.seed, verbose=-1) | params)
        x, y, g, x_init = stack(train)
        if n_stop:
            xs, ys, gs, xs_init = stack(stop)
            ranker.fit(x, y, group=g, init_score=x_init, eval_X=(xs,), eval_y=(ys,), eval_group=[gs], eval_at=[10],
                       eval_init_score=None if xs_init is None else [xs_init],
                       callbacks=[lgb.early_stopping(50, verbose=False)])
        else:
            ranker.fit(x, y, group=g, init_score=x_init)
        rounds = ranker.best_iteration_ or cfg.n_estimators
        return ranker.booster_.model_to_string(num_iteration=rounds), rounds

    def _ranker_rows(self, folds: list[_Fold]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Every fold's ranker rows (`_fold_rows`), the folds fitted in worker processes when there are cores
        for several, gathered in fold order."""
        cores = usable_cores()
        workers = min(len(folds), self.config.n_jobs or cores)
        if workers > 1:
            per_fold = joblib.Parallel(n_jobs=workers, backend="loky", idle_worker_timeout=WORKER_IDLE_S)(
                joblib.delayed(self._fold_rows)(fold, max(1, cores // workers)) for fold in folds)
        else:
            per_fold = [self._fold_rows(fold) for fold in folds]
        return [f for rows in per_fold for f in rows[0]], [lab for rows in per_fold for lab in rows[1]]

    def _fold_rows(self, fold: _Fold, threads: int | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """One fold's ranker rows: the components fitted on what the fold sees, then, for each query whose
        hidden item is among the candidates, its (candidates, features) matrix and 0/1 labels. With `threads`
        (in a worker process) native thread pools are held to that many, so that workers share the cores."""
        from contextlib import nullcontext

        from threadpoolctl import threadpool_limits

        feats, labels = [], []
        with threadpool_limits(threads) if threads else nullcontext():
            comps = [c.fit(fold.sub) for c in self._components()]
            stats = _ItemStats.of(fold.sub)
            for s in range(0, fold.queries.shape[0], BATCH):
                e = s + BATCH
                f, cand = self._features(comps, stats, fold.queries[s:e],
                                         fold.users[s:e] if fold.users is not None else None, fold.at[s:e])
                lab = cand == fold.targets[s:e, None]
                for r in np.flatnonzero(lab.any(axis=1)):  # queries whose item no component proposes teach nothing
                    valid = cand[r] >= 0
                    feats.append(f[r][valid])
                    labels.append(lab[r][valid].astype(np.int32))
        vars(self).pop("_pairs_cache", None)  # the fold's pair tables (dense: n² floats) are not needed again
        return feats, labels

    def _sentence_vectors(self, texts: list[str]) -> np.ndarray:
        """(n_items, dim) unit sentence embeddings of the item texts; (n_items, 0) without an encoder."""
        cfg = self.config
        if cfg.text_model is not None:
            try:
                from itemaffinity.text.encoders import EmbeddingCache, SentenceEncoder

                cache = EmbeddingCache(cfg.embedding_cache) if cfg.embedding_cache else None
                return np.asarray(SentenceEncoder(cfg.text_model, cache=cache).encode(texts), dtype=np.float32)
            except ImportError as err:
                log.warning("hybrid: no sentence encoder (%s); text features use TF-IDF only", err)
        return np.zeros((len(texts), 0), np.float32)

    # -- features and scoring -------------------------------------------------------------------
    def _item_features(self, stats: _ItemStats, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q, n_items) log popularity, log recent popularity and item age (days) at the queries' times."""
        pop = np.log1p(stats.counts).astype(np.float32)[None, :]
        if stats.daily is None:
            return pop, pop, np.zeros_like(pop)
        day = stats.day(at)
        start = np.clip(day - int(np.ceil(self.config.recent_days)), 0, None)
        recent = np.log1p(stats.daily[day] - stats.daily[start])
        age = np.maximum(day[:, None] - stats.first_day[None, :], 0).astype(np.float32)
        return pop, recent.astype(np.float32), age

    def _features(self, comps: list[Recommender], stats: _ItemStats | None, queries: sp.csr_matrix,
                  users: np.ndarray | None, at: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(q, C, F) features for the union of candidates, and (q, C) candidate indices (−1 pad).

        `stats` and `at` are the training statistics and the queries' times during validation;
        None when serving, which uses the statistics stored at the end of fit.
        """
        k = min(self.config.n_candidates, queries.shape[1])  # a catalog smaller than n_candidates
        q = queries.shape[0]
        scores, tops = [], []
        for comp in comps:
            try:
                sc = comp.score_users(users) if users is not None else comp.score(queries)
            except NotImplementedError:
                sc = comp.score(queries)
            sc = np.asarray(sc, dtype=np.float32)
            top, _ = rank_top_n(sc.copy(), k, queries)
            scores.append(sc)
            tops.append(top)
        union = np.concatenate(tops, axis=1)
        width = union.shape[1]
        cand = np.full((q, width), -1, dtype=np.int64)
        for r in range(q):
            u = np.unique(union[r][union[r] >= 0])
            cand[r, :len(u)] = u
        safe = np.where(cand >= 0, cand, 0)
        cols, component_scores = [], []
        in_top = np.zeros((q, width), np.float32)
        for sc, top in zip(scores, tops):
            # Scores relative to the query's best candidate: raw scales shift when a component is
            # refitted on more data, ranks and ratios do not.
            vals = np.take_along_axis(sc, safe, axis=1)
            best = np.take_along_axis(sc, np.where(top[:, :1] >= 0, top[:, :1], 0), axis=1)
            component_scores.append(np.where(np.isfinite(vals), vals, 0.0) /
                                    np.where(np.abs(best) > 1e-12, np.abs(best), 1.0))
            cols.append(component_scores[-1])
            rank = np.full((q, sc.shape[1]), k + 1, dtype=np.float32)
            np.put_along_axis(rank, np.where(top >= 0, top, 0), np.arange(1, k + 1, dtype=np.float32)[None, :], axis=1)
            rank = np.take_along_axis(rank, safe, axis=1)
            cols.append(rank)
            in_top += rank <= k
        if stats is None:
            cooccur, counts, n = self.cooccur_, self.item_counts_, float(self.n_transactions_)
            pop, recent, age, log_price = self.popularity_, self.recent_popularity_, self.item_age_, self.log_price_
        else:
            cooccur, counts, n = stats.cooccur, stats.counts, float(stats.n_transactions)
            pop, recent, age = self._item_features(stats, at)
            log_price = stats.log_price
        qb = sp.csr_matrix(queries > 0, dtype=np.float32)
        size = np.maximum(np.diff(qb.indptr), 1).astype(np.float32)[:, None]
        # dense pair tables for the validation folds' many queries; a server keeps no n² tables for its few
        pairs, linked, confidence = self._pair_tables(cooccur, counts, DENSE_PAIRS_MAX if stats is not None else 0)
        n_linked = np.take_along_axis(np.asarray((qb @ linked).todense()), safe, axis=1)
        together = np.take_along_axis(np.asarray((qb @ cooccur).todense()), safe, axis=1)
        conf_sum = np.take_along_axis(np.asarray((qb @ confidence).todense()), safe, axis=1)
        cand_count = np.maximum(counts[safe], 1.0)
        pick = (lambda a: np.take_along_axis(np.broadcast_to(a, (q, a.shape[1])), safe, axis=1))
        largest, text_mean = _largest_over_query(qb, safe, pairs, counts, n)
        query_pop = (qb @ np.log1p(counts).astype(np.float32))[:, None] / size
        linked_share, mean_lift = n_linked / size, conf_sum * n / cand_count / size
        cols += [linked_share, n_linked, conf_sum, together / cand_count / size, mean_lift,
                 *largest, *text_mean, in_top, pick(pop), pick(recent), pick(recent) - pick(pop), pick(age),
                 log_price[safe], np.broadcast_to(size, (q, width)), np.broadcast_to(query_pop, (q, width))]
        standardised = _standardised(np.stack([*component_scores, linked_share, conf_sum, mean_lift], axis=-1), cand >= 0)
        return np.concatenate([np.stack(cols, axis=-1), standardised], axis=-1).astype(np.float32), cand

    def _pair_tables(self, cooccur: sp.csr_matrix, counts: np.ndarray, dense_max: int
                     ) -> tuple[_Pairs, sp.csr_matrix, sp.csr_matrix]:
        """The item-pair tables of a co-occurrence matrix: `_Pairs`, and the (co-occurs 0/1, confidence
        P(j | i)) item × item matrices; built once, every batch of a validation fold, or of serving, reuses them."""
        cached = getattr(self, "_pairs_cache", None)
        if cached is None or cached[0].sources[0] is not cooccur or cached[0].dense_max != dense_max:
            linked = cooccur.copy()
            linked.data = np.ones_like(linked.data)
            confidence = sp.csr_matrix(sp.diags(1.0 / np.maximum(counts, 1.0)) @ cooccur, dtype=np.float32)
            pairs = _Pairs(cooccur, self.text_vectors_, self.sentence_vectors_, dense_max)
            self._pairs_cache = cached = (pairs, linked, confidence)
        return cached

    @property
    def _rankers(self) -> list:
        import lightgbm as lgb

        if getattr(self, "_boosters", None) is None:
            ends = np.cumsum(self.booster_sizes_)
            raw = bytes(self.booster_)
            self._boosters = [lgb.Booster(model_str=raw[e - n:e].decode()) for e, n in zip(ends, self.booster_sizes_)]
        return self._boosters

    def _rank(self, queries: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        """(q, n_items) scores: the rankers' for candidates, then the fallbacks; a row whose items nobody has
        bought takes the fallback chain content → category → popularity without the rankers."""
        cold = self._cold_rows(queries)
        if not cold.any():
            return self._ranker_scores(queries, users)
        out = np.empty(queries.shape, np.float32)
        out[cold] = self._cold_scores(queries[cold])
        warm = ~cold
        if warm.any():
            out[warm] = self._ranker_scores(queries[warm], None if users is None else users[warm])
        return out

    def _ranker_scores(self, queries: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        f, cand = self._features(self.components_, None, queries, users, None)
        q = f.shape[0]
        out = self._category_popularity(queries, FALLBACK)  # the items no component proposes
        valid = cand >= 0
        if valid.any():
            rows = np.repeat(np.arange(q), valid.sum(axis=1))
            # without a learnt ranker: the mean of the components' scores standardised per query
            preds = [r.predict(f[valid]) for r in self._rankers] \
                or [f[valid][:, standardised_score_columns(len(self.components_))].mean(axis=1)]
            if len(preds) > 1:  # several rankers: standardise each one's scores per query, then average
                n = np.bincount(rows, minlength=q)[rows]
                for p in preds:
                    mean = np.bincount(rows, p, minlength=q)[rows] / n
                    sd = np.sqrt(np.bincount(rows, (p - mean) ** 2, minlength=q)[rows] / n)
                    p -= mean
                    p /= sd + 1e-9
            out[rows, cand[valid]] = np.mean(preds, axis=0)
        return out

    def _cold_rows(self, queries: sp.csr_matrix) -> np.ndarray:
        """(q,) bool: the rows with items, none of which was bought in the training data."""
        qb = sp.csr_matrix(queries > 0, dtype=np.float32)
        warm = qb @ (np.asarray(self.item_counts_).ravel() > 0).astype(np.float32)
        return (np.diff(qb.indptr) > 0) & (warm == 0)

    def _cold_scores(self, queries: sp.csr_matrix) -> np.ndarray:
        """The fallback chain: the largest text cosine to a query item (sentence embeddings, else TF-IDF) ×
        COLD_TEXT_WEIGHT, + `_category_popularity`."""
        from itemaffinity.text.models import content_scores

        vectors = self.sentence_vectors_ if self.sentence_vectors_.shape[1] else self.text_vectors_
        text = np.maximum(content_scores(queries, vectors, aggregate="max"), 0.0)
        return self._category_popularity(queries) + COLD_TEXT_WEIGHT * text

    def _category_popularity(self, queries: sp.csr_matrix, base: float = 0.0) -> np.ndarray:
        """(q, n_items) `base`, + 2 for an item sharing a category with one of the query's items, + its popularity
        share (0–1)."""
        pop = self.popularity_.ravel()
        out = np.tile(base + pop / max(float(pop.max()), 1e-9), (queries.shape[0], 1)).astype(np.float32)
        query_cats = sp.csr_matrix(queries > 0, dtype=np.float32) @ self.item_category_
        out += 2.0 * ((query_cats @ self.item_category_.T).toarray() > 0)
        return out

    def candidates(self, queries: sp.csr_matrix) -> np.ndarray:
        """(q, C) item indices the ranker orders for each query row (−1 pad); all others rank last."""
        return self._features(self.components_, None, sp.csr_matrix(queries, dtype=np.float32), None, None)[1]

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        return self._rank(sp.csr_matrix(queries, dtype=np.float32), None)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._rank(sp.csr_matrix(self.user_history_[user_idx], dtype=np.float32), np.asarray(user_idx))

    # -- persistence: components are saved beside the hybrid's own arrays ----------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        for name, comp in zip(self.config.components, self.components_):
            comp.save(path.with_name(f"{path.name}__{name}"))
        components, self.components_ = self.components_, []
        try:
            return super().save(path)
        finally:
            self.components_ = components

    def _restore(self, arrays: dict[str, np.ndarray], sparse_names: list[str], path: Path | None = None) -> None:
        from itemaffinity.models.registry import load_model

        super()._restore(arrays, sparse_names, path)
        self.components_ = [load_model(path.with_name(f"{path.name}__{name}")) for name in self.config.components]
        self._boosters = None
