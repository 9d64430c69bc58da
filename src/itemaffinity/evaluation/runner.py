"""Run models through a Task and collect one result row per model (the leaderboard).

Every row records the task, dataset hash, split, seed, model config and the time taken, so a
number can always be traced back to what produced it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from itemaffinity.evaluation.metrics import (RANKING_METRICS, catalog_coverage, intra_list_diversity,
                                             popularity_bias, popularity_thirds)
from itemaffinity.evaluation.protocols import Task
from itemaffinity.models.base import Recommender, rank_top_n

log = logging.getLogger(__name__)

CUTOFFS = (10, 20)
BATCH = 1000


def score_task(model: Recommender, task: Task, k: int = max(CUTOFFS)) -> np.ndarray:
    """(q, k) top item indices for every query of the task, in batches to bound memory."""
    out = np.full((task.n_queries, k), -1, dtype=np.int64)
    for s in range(0, task.n_queries, BATCH):
        e = min(s + BATCH, task.n_queries)
        if task.query_users is not None:
            try:
                scores = model.score_users(task.query_users[s:e])
            except NotImplementedError:
                scores = model.score(task.queries[s:e])
        else:
            scores = model.score(task.queries[s:e])
        exclude = task.exclude[s:e] if task.exclude is not None else None
        top, _ = rank_top_n(scores, k, exclude, task.candidates)
        out[s:e, :top.shape[1]] = top
    return out


def sampled_metrics(model: Recommender, task: Task, n_negatives: int = 100, seed: int = 0,
                    k: int = 10) -> dict[str, float]:
    """The papers' protocol (SASRec, S3-Rec): rank the target among n uniformly sampled negatives
    the user has not interacted with. Reported beside full ranking and labelled as sampled."""
    rng = np.random.default_rng(seed)
    hits, ndcgs = [], []
    n_items = task.train.n_items
    for s in range(0, task.n_queries, BATCH):
        e = min(s + BATCH, task.n_queries)
        scores = (model.score_users(task.query_users[s:e]) if task.query_users is not None
                  else model.score(task.queries[s:e]))
        for r in range(e - s):
            target = task.targets[s + r][0]
            seen = set(task.queries[s + r].indices.tolist()) | {target}
            negs = []
            while len(negs) < n_negatives:
                cand = rng.integers(n_items, size=n_negatives * 2)
                negs.extend(c for c in cand.tolist() if c not in seen)
            negs = np.asarray(negs[:n_negatives])
            rank = int((scores[r, negs] > scores[r, target]).sum())
            hits.append(rank < k)
            ndcgs.append(1.0 / np.log2(rank + 2) if rank < k else 0.0)
    return {f"sampled{n_negatives}_HR@{k}": float(np.mean(hits)), f"sampled{n_negatives}_NDCG@{k}": float(np.mean(ndcgs))}


def evaluate_model(model: Recommender, task: Task, *, fit: bool = True,
                   sampled_negatives: int | None = None, per_query: bool = False) -> dict[str, Any]:
    """Fit (unless already fitted) and score one model; returns a leaderboard row. With `per_query`,
    row["per_query"] holds each query's HR@10 and NDCG@10 (for `metrics.ratio_interval`)."""
    t0 = time.perf_counter()
    if fit:
        model.fit(task.train)
    t1 = time.perf_counter()
    top = score_task(model, task)
    t2 = time.perf_counter()
    row: dict[str, Any] = {"model": model.name, "task": task.name}
    values = {f"{mname}@{kk}": fn(top, task.targets, kk) for kk in CUTOFFS for mname, fn in RANKING_METRICS.items()}
    row.update({name: float(np.mean(v)) for name, v in values.items()})
    if per_query:
        row["per_query"] = {name: values[name] for name in ("HR@10", "NDCG@10")}
    top10 = top[:, :10]
    if task.train.n_baskets:  # how often each item sold: baskets, else users on data without baskets
        popularity, popularity_of = task.train.item_baskets, "baskets"
    else:
        popularity, popularity_of = np.asarray(task.train.user_items.getnnz(axis=0)).ravel(), "users"
    row["coverage@10"] = catalog_coverage(top10, task.train.n_items)
    row["popularity_bias@10"] = popularity_bias(top10, popularity)
    thirds = popularity_thirds(popularity, task.targets)
    if thirds is not None:  # NDCG@10 where the held-out item is rarely bought, in between, a best seller
        third, cuts = thirds
        ndcg10 = values["NDCG@10"]
        row["popularity_thirds"] = {"NDCG@10": [round(float(ndcg10[third == g].mean()), 4) for g in range(3)],
                                    "cuts": [float(c) for c in cuts], "of": popularity_of}
    row["diversity@10"] = intra_list_diversity(top10, task.train.categories)
    if sampled_negatives:
        row.update(sampled_metrics(model, task, sampled_negatives))
    row.update({"fit_s": round(t1 - t0, 3), "eval_s": round(t2 - t1, 3), "queries": task.n_queries,
                "config": model.config.model_dump(), **{k: v for k, v in task.info.items() if k != "queries"}})
    log.info("%s on %s: NDCG@10 %.4f (fit %.1fs, eval %.1fs)", model.name, task.name, row["NDCG@10"], t1 - t0, t2 - t1)
    return row

