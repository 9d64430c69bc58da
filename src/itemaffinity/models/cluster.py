"""Clustering and segmentation: product groups and customer segments.

- Product groups: K-Means on item embeddings from a truncated SVD of the PPMI-weighted item
  co-occurrence matrix (items bought in the same baskets land together); each group is named by
  the words most over-represented in its titles.
- Customer segments: RFM (recency, frequency, monetary) quintile scores mapped to the usual named
  segments, plus a behaviour cluster from K-Means on the user's spend share per product group.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass

import duckdb
import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import TruncatedSVD
from threadpoolctl import threadpool_limits

from itemaffinity.data.interactions import InteractionData
from itemaffinity.mining.transactions import transactions
from itemaffinity.text.encoders import CJK

log = logging.getLogger(__name__)

_CJK_RUN = re.compile(CJK.pattern + "+")
_STOP = {"OF", "AND", "THE", "WITH", "IN", "SET", "A", "TO", "FOR", "ON", "DESIGN", "SMALL", "LARGE", "&"}


@dataclass(frozen=True)
class ProductGroups:
    """item_cluster[i] is item i's group (−1 for items with no baskets); labels[c] names group c."""

    item_cluster: np.ndarray
    labels: list[str]
    sizes: np.ndarray


def item_embeddings(data: InteractionData, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n_items, dim) L2-normalised embeddings from SVD of the PPMI co-occurrence; and the mask of items with data."""
    x = sp.csr_matrix(transactions(data), dtype=np.float32)
    c = (x.T @ x).tocoo()
    n = float(x.shape[0])
    counts = np.asarray(x.sum(axis=0)).ravel()
    off = c.row != c.col
    pmi = np.log(c.data[off] * n / (counts[c.row[off]] * counts[c.col[off]]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (c.row[off][keep], c.col[off][keep])), shape=c.shape)
    active = counts > 0
    dim = max(2, min(dim, int(active.sum()) - 1))
    if ppmi.nnz == 0:  # no pair bought together more than by chance: nothing to embed (and an SVD of zeros warns)
        return np.zeros((data.n_items, dim), np.float32), active
    # One BLAS thread: with more, the SVD's last float bits depend on how many threads run it, and K-Means
    # turns such differences into other groups (analyze and a service rebuild of the same data disagreed).
    with threadpool_limits(limits=1, user_api="blas"):
        emb = TruncatedSVD(n_components=dim, random_state=seed).fit_transform(ppmi)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True) + 1e-12
    return emb.astype(np.float32), active


def _title_words(title: str | None) -> set[str]:
    """The words that can name a group: Latin words of 3+ letters (stop words left out) and, in Chinese, Japanese
    or Korean text, which writes no spaces between words, every two-character piece of a run ("无线蓝牙耳机": 无线,
    线蓝, 蓝牙, 牙耳, 耳机, of which those that recur across a group's titles, 耳机, name it) and a run of 3–4
    characters as a whole (保温杯)."""
    if not title:
        return set()
    words = {w for w in re.findall(r"[A-Z]{3,}", title.upper()) if w not in _STOP}
    for run in _CJK_RUN.findall(title):
        words |= {run[i:i + 2] for i in range(len(run) - 1)} | ({run} if 3 <= len(run) <= 4 else set())
    return words


def _word_scores(titles: list[str | None], background: Counter, n_background: int) -> dict[str, float]:
    """How telling each title word is of a group: its share of the group's titles p times log(p / its share of all
    grouped titles), so words common in the group and rare elsewhere score high, and colours found in every group
    do not. A word must name two titles in a group of 10+, and a Chinese, Japanese or Korean one always (a piece
    of one title is as likely half of two words: 线蓝 of 无线蓝牙)."""
    words = Counter(w for t in titles for w in _title_words(t))
    n = max(len(titles), 1)
    least = {w: 2 if len(titles) >= 10 or CJK.search(w) else 1 for w in words}
    share = {w: k / n for w, k in words.items() if k >= least[w] and k / n > background[w] / n_background}
    return {w: p * np.log(p * n_background / background[w]) for w, p in share.items()}


def _labels(groups: list[list[str | None]], background: Counter, n_background: int, top: int = 3) -> list[str]:
    """Each group's `top` most telling title words (`_word_scores`), led by one that tells it apart from the other
    groups: a word leads only the group it is most telling of ("pink" leading three of Online Retail's groups named
    none of them). A group with no such word is named by its first title."""
    scores = [_word_scores(titles, background, n_background) for titles in groups]
    home: dict[str, int] = {}
    for g, sc in enumerate(scores):
        for w, v in sc.items():
            if w not in home or v > scores[home[w]][w]:
                home[w] = g
    out = []
    for g, (titles, sc) in enumerate(zip(groups, scores)):
        best = sorted(sc, key=lambda w: (-sc[w], -len(w), w))
        lead = next((w for w in best if home[w] == g), None)
        best = ([lead] if lead else []) + [w for w in best if w != lead]
        first = next((" ".join(str(t).split())[:24] for t in titles if t), "(untitled)")
        out.append(" / ".join(w.lower() for w in best[:top]) if best else first)
    return out


def _distinct_rows(x: np.ndarray) -> int:
    """How many clusters K-Means can find in x: more than its distinct rows leaves some empty."""
    return len(np.unique(x, axis=0)) if len(x) else 0


def product_groups(data: InteractionData, n_clusters: int = 20, seed: int = 0) -> ProductGroups:
    """K-Means product groups over co-occurrence embeddings, with title-word labels."""
    emb, active = item_embeddings(data, seed=seed)
    k = max(1, min(n_clusters, _distinct_rows(emb[active])))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(emb[active])
    cluster = np.full(data.n_items, -1, dtype=np.int64)
    cluster[active] = km.labels_
    background = Counter(w for i in np.flatnonzero(active) for w in _title_words(data.titles[i]))
    labels = _labels([[data.titles[i] for i in np.flatnonzero(cluster == c)] for c in range(k)], background,
                     int(active.sum()))
    return ProductGroups(cluster, labels, np.bincount(km.labels_, minlength=k))


NO_DATES = "No purchase dates"
"""The segment of a customer whose purchases have no times: recency, and so an RFM segment, is unknown."""
RFM_SEGMENTS = (  # (name, condition on recency score r and frequency-monetary score fm, each 1..5)
    ("Champions", lambda r, fm: (r >= 4) & (fm >= 4)),
    ("Loyal customers", lambda r, fm: (r >= 3) & (fm >= 3)),
    ("New customers", lambda r, fm: (r >= 4) & (fm <= 1)),
    ("Promising", lambda r, fm: (r >= 3) & (fm <= 2)),
    ("At risk", lambda r, fm: (r <= 2) & (fm >= 3)),
    ("Hibernating", lambda r, fm: (r <= 2) & (fm == 2)),
    ("Lost", lambda r, fm: np.ones_like(r, dtype=bool)),
)


def _quintile(values: np.ndarray, higher_is_better: bool = True) -> np.ndarray:
    """Score 1–5 by quintile of rank; tied values share their mean rank, so customers alike in a measure (the many
    one-basket customers' frequency) get one score, not scores spread by the order of their ids."""
    from scipy.stats import rankdata

    ranks = rankdata(values if higher_is_better else -values, method="average") - 1
    return (1 + np.floor(ranks * 5 / max(len(values), 1))).astype(int)


def customer_segments(con: duckdb.DuckDBPyConnection, data: InteractionData, groups: ProductGroups,
                      n_behaviour: int = 6, seed: int = 0) -> dict[str, np.ndarray | list[str]]:
    """RFM segment and behaviour cluster for every user with purchases.

    Returns:
        dict with user_id, recency_days, frequency, monetary, r, f, m, segment, behaviour arrays.
    """
    # Days from each customer's last purchase to the last purchase of all; NULL (no purchase times) is unknown.
    # Frequency counts orders; a purchase without an order id (a review, a rating log) is an occasion of its own.
    rows = con.execute("""WITH p AS (SELECT * FROM events WHERE event = 'purchase' AND user_id IS NOT NULL)
        SELECT user_id, epoch((SELECT max(ts) FROM p)) - epoch(max(ts)) AS recency_s,
               count(DISTINCT basket_id) + count(*) FILTER (WHERE basket_id IS NULL) AS frequency,
               sum(coalesce(value, 0)) AS monetary
        FROM p GROUP BY user_id ORDER BY user_id""").fetchnumpy()
    users = rows["user_id"].astype(object)
    recency = np.ma.filled(np.ma.asarray(rows["recency_s"], dtype=np.float64), np.inf) / 86400.0
    freq = np.asarray(rows["frequency"], dtype=np.float64)
    money = np.asarray(rows["monetary"], dtype=np.float64)
    r, f, m = _quintile(recency, higher_is_better=False), _quintile(freq), _quintile(money)
    fm = np.rint((f + m) / 2).astype(int)
    segment = np.empty(len(users), dtype=object)
    segment[:] = None
    segment[np.isinf(recency)] = NO_DATES  # recency unknown: no RFM name would be true
    for name, cond in RFM_SEGMENTS:
        pick = (segment == None) & cond(r, fm)  # noqa: E711 - elementwise on an object array
        segment[pick] = name
    # Behaviour: share of each user's items per product group, clustered.
    uidx = data.users.indices(users.tolist())
    k = len(groups.labels)
    shares = np.zeros((len(users), k), dtype=np.float32)
    ok = uidx >= 0
    if ok.any() and k:
        ui = data.user_items[uidx[ok]].tocoo()
        g = groups.item_cluster[ui.col]
        valid = g >= 0
        np.add.at(shares, (np.flatnonzero(ok)[ui.row[valid]], g[valid]), ui.data[valid])
        shares /= shares.sum(axis=1, keepdims=True) + 1e-12
    nb = max(1, min(n_behaviour, _distinct_rows(shares)))
    behaviour = KMeans(n_clusters=nb, n_init=4, random_state=seed).fit_predict(shares) if len(users) else np.zeros(0, int)
    return {"user_id": users, "recency_days": recency, "frequency": freq, "monetary": money, "r": r, "f": f, "m": m,
            "segment": segment, "behaviour": behaviour}


def store_clusters(store_path: str, data: InteractionData, groups: ProductGroups, segments: dict) -> None:
    """Write `item_clusters` and `segments` tables into the store (replacing earlier ones)."""
    import pyarrow as pa

    items = pa.table({"item_id": data.items.ids.tolist(), "cluster": groups.item_cluster,
                      "cluster_label": [groups.labels[c] if c >= 0 else None for c in groups.item_cluster]})
    segs = pa.table({k: (v.tolist() if isinstance(v, np.ndarray) and v.dtype == object else v)
                     for k, v in segments.items()})
    with duckdb.connect(str(store_path)) as con:
        con.register("_items", items)
        con.register("_segs", segs)
        con.execute("CREATE OR REPLACE TABLE item_clusters AS SELECT * FROM _items")
        con.execute("CREATE OR REPLACE TABLE segments AS SELECT * FROM _segs")
