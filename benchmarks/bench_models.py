"""Classic models vs peer implementations on the same split, in one run (issue #4).

Peers: implicit's CosineRecommender, BM25Recommender and AlternatingLeastSquares (its own fit and
its own `recommend` with recalculate_user for fold-in), and EASE computed directly with numpy
(float64 inverse, Steck 2019). Ours go through `itemaffinity.evaluation`. Every model is scored
on the same queries and targets with the same metric code.

Usage:
  python benchmarks/bench_models.py --task basket-completion   # Online Retail, split 2011-10-01
  python benchmarks/bench_models.py --task next-item            # Amazon Beauty, leave-last-out
  add --tune to grid-search our models on the validation split first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import duckdb
import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from itemaffinity.data.ingest import ingest_file
from itemaffinity.data.mapping import resolve_mapping
from itemaffinity.evaluation.experiment import build_task, parse_models
from itemaffinity.evaluation.metrics import RANKING_METRICS
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.evaluation.tuning import tune
from itemaffinity.models.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
DATASETS = {
    "basket-completion": (ROOT / "data" / "online_retail.parquet", "online-retail", "2011-10-01"),
    "next-item": (SHARED / "amazon_beauty" / "interactions.parquet", "amazon-beauty", None),
}


def peer_top(task, name: str, k: int = 20) -> tuple[np.ndarray, float]:
    """Top-k of a peer implementation for every query of the task, and its fit+score time."""
    import implicit.nearest_neighbours as nn
    from implicit.cpu.als import AlternatingLeastSquares

    train = task.train
    x = sp.csr_matrix(train.basket_items if task.query_users is None and train.n_baskets else
                      (train.user_items > 0), dtype=np.float32)
    q = sp.csr_matrix(task.queries, dtype=np.float32)
    t0 = time.perf_counter()
    with threadpool_limits(1, "blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "numpy EASE":
            g = (x.T @ x).toarray().astype(np.float64)
            g[np.diag_indices_from(g)] += 100.0
            p = np.linalg.inv(g)
            b = p / (-np.diag(p))
            np.fill_diagonal(b, 0.0)
            scores = np.asarray(q @ b)
            scores[q.nonzero()] = -np.inf
            top = np.argsort(-scores, axis=1)[:, :k]
            return top, time.perf_counter() - t0
        model = {"implicit cosine": lambda: nn.CosineRecommender(K=100),
                 "implicit bm25": lambda: nn.BM25Recommender(K=100),
                 "implicit als": lambda: AlternatingLeastSquares(factors=64, regularization=0.05, alpha=10.0,
                                                                 iterations=15, random_state=0)}[name]()
        model.fit(x, show_progress=False) if "als" in name else model.fit(x, show_progress=False)
        ids, _ = model.recommend(np.arange(q.shape[0]), q, N=k, filter_already_liked_items=True,
                                 recalculate_user="als" in name)
    return np.asarray(ids), time.perf_counter() - t0


def metric_row(top: np.ndarray, task) -> dict[str, float]:
    return {f"{m}@{kk}": float(np.mean(RANKING_METRICS[m](top, task.targets, kk)))
            for m, kk in (("HR", 10), ("NDCG", 10), ("MRR", 10), ("Recall", 20))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=list(DATASETS), default="basket-completion")
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--tune", action="store_true")
    ap.add_argument("--models", default="popularity,itemknn,userknn,ease,als,bpr")
    args = ap.parse_args()
    path, preset, split = DATASETS[args.task]
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.duckdb")
        ingest_file(str(path), resolve_mapping(preset), store)
        with duckdb.connect(store, read_only=True) as con:
            n_q = args.queries if args.task != "next-item" else None
            test = build_task(con, args.task, split and np.datetime64(split).astype(object), n_q or 0, 0) \
                if args.task != "next-item" else build_task(con, args.task, None, None, 0)
            val = build_task(con, args.task, split and np.datetime64(split).astype(object), n_q or 0, 0,
                             validation=True) if args.tune else None
    t_all = time.perf_counter()
    print(f"task {args.task}: {test.info}")
    print(f"{'implementation':<44}{'HR@10':>8}{'NDCG@10':>9}{'MRR@10':>8}{'Rec@20':>8}{'time s':>8}")
    rows = []
    for spec in parse_models(args.models):
        params = dict(spec.params)
        if val is not None:
            params, _ = tune(spec.name, val, params)
        r = evaluate_model(create_model(spec.name, **params), test)
        label = "ours " + spec.name + ("" if not params else " " + ",".join(f"{k}={v}" for k, v in params.items()))
        rows.append((label, r["HR@10"], r["NDCG@10"], r["MRR@10"], r["Recall@20"], r["fit_s"] + r["eval_s"]))
        print(f"{label:<44}{r['HR@10']:8.4f}{r['NDCG@10']:9.4f}{r['MRR@10']:8.4f}{r['Recall@20']:8.4f}{rows[-1][5]:8.1f}", flush=True)
    for peer in ("implicit cosine", "implicit bm25", "implicit als", "numpy EASE"):
        top, secs = peer_top(test, peer)
        m = metric_row(top, test)
        rows.append(("peer " + peer, m["HR@10"], m["NDCG@10"], m["MRR@10"], m["Recall@20"], secs))
        print(f"{'peer ' + peer:<44}{m['HR@10']:8.4f}{m['NDCG@10']:9.4f}{m['MRR@10']:8.4f}{m['Recall@20']:8.4f}{secs:8.1f}", flush=True)
    ours = max((r for r in rows if r[0].startswith("ours")), key=lambda r: r[2])
    peers = max((r for r in rows if r[0].startswith("peer")), key=lambda r: r[2])
    print(f"\nbest ours: {ours[0]} NDCG@10 {ours[2]:.4f}; best peer: {peers[0]} NDCG@10 {peers[2]:.4f}; "
          f"ratio {ours[2] / peers[2]:.3f}")
    print(f"total wall time {time.perf_counter() - t_all:.1f}s")


if __name__ == "__main__":
    main()
