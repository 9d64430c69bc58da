"""How much neighbouring lines of an order add to EASE, outside the hybrid (issue #5).

On the basket-completion validation task (train before 2011-09-01, the baskets of September 2011;
three task seeds) it scores NDCG@10 of:
- blends of EASE λ 30 with lineknn or itemknn, each model's scores standardised per query and
  added with weight w: how complementary each neighbourhood model is to EASE;
- EASE over a Gram matrix of the baskets plus beta × the Gram of windows of w neighbouring lines
  (`ease:lines=w:line_weight=beta`): EASE told that neighbouring lines go together more than the rest
  of a long order.

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

from itemaffinity.data.ingest import ingest_file
from itemaffinity.data.mapping import resolve_mapping
from itemaffinity.evaluation.experiment import build_task
from itemaffinity.evaluation.metrics import ndcg
from itemaffinity.models.base import rank_top_n
from itemaffinity.models.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "online_retail.parquet"
SPLIT = dt.datetime(2011, 10, 1)


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
    for width in (2, 3, 5, 10):
        for beta in (0.3, 1.0):
            model = create_model("ease", lam=30.0, lines=width, line_weight=beta).fit(train)
            scored(f"ease λ 30, baskets + {beta} × windows of {width} lines", lambda t, m=model: m.score(t.queries))


if __name__ == "__main__":
    main()
