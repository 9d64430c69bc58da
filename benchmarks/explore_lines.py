"""How much neighbouring lines of an order add to EASE, outside the hybrid (issue #5).

On the basket-completion validation task (train before 2011-09-01, the baskets of September 2011;
three task seeds) it scores NDCG@10 of:
- blends of EASE λ 30 with lineknn or itemknn, each model's scores standardised per query and
  added with weight w: how complementary each neighbourhood model is to EASE;
- EASE over a Gram matrix of the baskets plus beta × the Gram of windows of w neighbouring lines
  (every run of w consecutive lines of an order is a pseudo-basket, so the sum stays a Gram matrix):
  EASE told that neighbouring lines go together more than the rest of a long order.

Usage:
  OMP_NUM_THREADS=2 python benchmarks/explore_lines.py [--test]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import scipy.sparse as sp

from itemaffinity.data.ingest import ingest_file
from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.mapping import resolve_mapping
from itemaffinity.evaluation.experiment import build_task
from itemaffinity.evaluation.metrics import ndcg
from itemaffinity.models.base import rank_top_n
from itemaffinity.models.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "online_retail.parquet"
SPLIT = dt.datetime(2011, 10, 1)


def line_windows(data: InteractionData, width: int) -> sp.csr_matrix:
    """(windows, items) 0/1: every run of `width` consecutive lines of an order (a shorter order: all of it)."""
    lines = data.basket_lines
    rows = np.repeat(np.arange(lines.shape[0]), np.diff(lines.indptr))
    order = np.lexsort((lines.data, rows))
    rows, items = rows[order], lines.indices[order]
    size = np.diff(lines.indptr)
    start = np.repeat(lines.indptr[:-1], size)
    pos, length = np.arange(len(rows)) - start, size[rows]
    # A window starts at each line that has width − 1 lines after it, or at the first line of a short order.
    first = np.flatnonzero((pos + width <= length) | ((pos == 0) & (length < width)))
    r, c = [], []
    for w, s in enumerate(first):
        end = min(s + width, s - pos[s] + length[s])
        r.append(np.full(end - s, w))
        c.append(items[s:end])
    win = sp.csr_matrix((np.ones(sum(len(x) for x in r)), (np.concatenate(r), np.concatenate(c))),
                        shape=(len(first), data.n_items))
    win.data[:] = 1.0
    return win


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    g = gram.copy()
    g[np.diag_indices_from(g)] += lam
    p = np.linalg.inv(g)
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", action="store_true", help="score the test task instead of the validation task")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "lines.duckdb")
        ingest_file(str(DATA), resolve_mapping("online-retail"), store)
        with duckdb.connect(store, read_only=True) as con:
            tasks = [build_task(con, "basket-completion", SPLIT, 5000, seed, validation=not args.test)
                     for seed in (0, 1, 2)]
    train = tasks[0].train

    def scored(name: str, per_task) -> None:
        values = []
        for t in tasks:
            top, _ = rank_top_n(np.asarray(per_task(t), dtype=np.float64), 10, t.exclude)
            values.append(float(ndcg(top, t.targets, 10).mean()))
        print(f"{name:<50}{' '.join(f'{v:.4f}' for v in values)}  mean {np.mean(values):.4f}", flush=True)

    def z(s: np.ndarray) -> np.ndarray:
        s = np.asarray(s, dtype=np.float64)
        return (s - s.mean(axis=1, keepdims=True)) / (s.std(axis=1, keepdims=True) + 1e-9)

    models = {name: create_model(name, **params).fit(train)
              for name, params in [("ease", {"lam": 30.0}), ("lineknn", {}), ("itemknn", {})]}
    print(f"{'NDCG@10 (' + ('test' if args.test else 'validation') + ' task)':<50}seed 0 / 1 / 2")
    for other in ("lineknn", "itemknn"):
        for w in (0.0, 0.1, 0.2, 0.3, 0.5):
            scored(f"ease λ 30 + {w} × {other}",
                   lambda t, w=w, other=other: z(models["ease"].score(t.queries)) + w * z(models[other].score(t.queries)))
    x = sp.csr_matrix(train.basket_items, dtype=np.float64)
    gram = (x.T @ x).toarray()
    for width in (2, 3, 5, 10):
        win = line_windows(train, width)
        extra = (win.T @ win).toarray()
        for beta in (0.3, 1.0):
            b = ease_weights(gram + beta * extra, 30.0)
            scored(f"ease λ 30, baskets + {beta} × windows of {width} lines", lambda t, b=b: t.queries @ b)


if __name__ == "__main__":
    main()
