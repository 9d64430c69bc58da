"""Ranking metrics over full rankings (DESIGN §6).

All functions take `top`: (q, K) item indices ranked best first (−1 = empty slot) and `targets`:
a list of q arrays of relevant item indices. They return per-query values; the runner averages.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def _hits(top: np.ndarray, targets: list[np.ndarray], k: int) -> np.ndarray:
    """(q, k) boolean: is the item at each rank relevant?"""
    top = top[:, :k]
    out = np.zeros(top.shape, dtype=bool)
    for r, t in enumerate(targets):
        if len(t):
            out[r] = np.isin(top[r], t)
    return out


def hit_rate(top, targets, k):
    return _hits(top, targets, k).any(axis=1).astype(np.float64)


def recall(top, targets, k):
    n = np.array([max(len(t), 1) for t in targets], dtype=np.float64)
    return _hits(top, targets, k).sum(axis=1) / n


def precision(top, targets, k):
    return _hits(top, targets, k).sum(axis=1) / float(k)


def ndcg(top, targets, k):
    h = _hits(top, targets, k)
    disc = 1.0 / np.log2(np.arange(2, h.shape[1] + 2))
    dcg = (h * disc).sum(axis=1)
    ideal = np.array([disc[:min(len(t), h.shape[1])].sum() for t in targets])
    return np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0)


def mrr(top, targets, k):
    h = _hits(top, targets, k)
    first = np.where(h.any(axis=1), h.argmax(axis=1) + 1, 0)
    return np.divide(1.0, first, out=np.zeros(len(first)), where=first > 0)


def average_precision(top, targets, k):
    h = _hits(top, targets, k).astype(np.float64)
    prec_at = np.cumsum(h, axis=1) / np.arange(1, h.shape[1] + 1)
    denom = np.array([min(len(t), h.shape[1]) or 1 for t in targets], dtype=np.float64)
    return (prec_at * h).sum(axis=1) / denom


RANKING_METRICS: dict[str, Callable[[np.ndarray, list[np.ndarray], int], np.ndarray]] = {
    "HR": hit_rate, "Recall": recall, "Precision": precision, "NDCG": ndcg, "MRR": mrr, "MAP": average_precision,
}


def ratio_interval(a: np.ndarray, b: np.ndarray, *, groups: np.ndarray | None = None, level: float = 0.95,
                   n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) / mean(b) and its paired bootstrap percentile interval.

    `a` and `b` are two models' per-query values on the same queries: resampling the queries together
    keeps their correlation, so the interval says whether a goal like "≥ 1.10× the best classic model"
    is met beyond the noise of which queries the test happened to draw. With `groups` (a code per query,
    e.g. its customer) whole groups are resampled, since queries of one group are not independent.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or not len(a) or (groups is not None and len(groups) != len(a)):
        raise ValueError("ratio_interval needs two non-empty per-query arrays (and groups) of the same length")
    if groups is None:
        sum_a, sum_b = a, b  # each query its own group
    else:
        codes = np.unique(groups, return_inverse=True)[1]
        sum_a, sum_b = np.bincount(codes, weights=a), np.bincount(codes, weights=b)
    rng = np.random.default_rng(seed)
    ratios = []
    for s in range(0, n_boot, 200):
        idx = rng.integers(0, len(sum_a), size=(min(200, n_boot - s), len(sum_a)))
        ratios.append(sum_a[idx].sum(axis=1) / np.maximum(sum_b[idx].sum(axis=1), 1e-12))
    lo, hi = np.quantile(np.concatenate(ratios), [(1 - level) / 2, (1 + level) / 2])
    return float(a.sum() / max(b.sum(), 1e-12)), float(lo), float(hi)


def catalog_coverage(top: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list."""
    shown = np.unique(top[top >= 0])
    return len(shown) / max(n_items, 1)


def popularity_bias(top: np.ndarray, popularity: np.ndarray) -> float:
    """Mean popularity percentile (0 = rarest, 1 = most popular) of recommended items."""
    ranks = np.argsort(np.argsort(popularity, kind="stable"), kind="stable") / max(len(popularity) - 1, 1)
    vals = top[top >= 0]
    return float(ranks[vals].mean()) if len(vals) else float("nan")


def popularity_thirds(popularity: np.ndarray, targets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
    """(q,) third of each query by its held-out item's training popularity, 0 (the least bought third) to 2
    (best sellers), and the two cut points; None unless every query holds out one item whose popularity takes at
    least three values (not a cold-start task, where none of them sold). NDCG in each third says whether a model
    finds rarely bought items or only best sellers, which one mean over all queries hides."""
    if not targets or any(len(t) != 1 for t in targets):
        return None
    value = np.asarray(popularity, dtype=np.float64)[np.array([t[0] for t in targets])]
    return thirds(value) if len(np.unique(value)) >= 3 else None


def thirds(value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each value's third, 0–2; the two cut points, values that occur): three groups as near equal in size as ties
    allow, none empty, a value at a cut in the group below it (≤ cut). Tertiles of counts with many ties (most
    products of a small shop sold once) would put all of them above a cut, or leave a group empty.

    Raises:
        ValueError: fewer than three distinct values.
    """
    value = np.asarray(value, dtype=np.float64)
    distinct, counts = np.unique(value, return_counts=True)
    if len(distinct) < 3:
        raise ValueError("thirds need at least three distinct values")
    share = np.cumsum(counts) / len(value)  # share of the values at or below each distinct value
    low = int(np.argmin(np.abs(share[:-2] - 1 / 3)))
    high = low + 1 + int(np.argmin(np.abs(share[low + 1:-1] - 2 / 3)))
    cuts = distinct[[low, high]]
    return np.searchsorted(cuts, value, side="left"), cuts


def intra_list_diversity(top: np.ndarray, categories: np.ndarray) -> float:
    """Mean share of item pairs within a list that have different categories (NaN without categories)."""
    if categories is None or all(c is None for c in categories[: min(len(categories), 1000)]):
        return float("nan")
    codes = {c: i for i, c in enumerate(set(categories.tolist()))}
    cat = np.array([codes[c] for c in categories.tolist()])
    vals = []
    for row in top:
        row = row[row >= 0]
        if len(row) < 2:
            continue
        c = cat[row]
        diff = (c[:, None] != c[None, :]).sum() / (len(c) * (len(c) - 1))
        vals.append(diff)
    return float(np.mean(vals)) if vals else float("nan")
