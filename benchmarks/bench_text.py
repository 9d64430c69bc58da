"""Cold-start items on Online Retail: content models vs popularity (issue #5, the large-model layer).

The task (evaluation/protocols.py `cold_start`): train on everything before 2011-10-01; each later
basket holding an item first sold after the split (a cold item: a title in the catalog, no events)
and known items hides one cold item; the query is the basket's known items and the ranking is over
all cold items. Popularity cannot tell cold items apart (they have no sales), so it is the floor;
a random ranking would hit 10 / n_cold at HR@10.

Models: popularity, tfidf, content (pretrained all-MiniLM-L6-v2) and content-finetuned (the same
encoder fine-tuned inside fit on co-purchase pairs of the training period only, so nothing after
the split leaks). Also timed: encoding the catalog with and without the embedding cache.

Usage:
  python benchmarks/bench_text.py                  # defaults of the models
  python benchmarks/bench_text.py --threads 2      # torch threads (default 1: faster on a busy 2-core box)
  python benchmarks/bench_text.py --set learning_rate=1e-4 --set max_pairs=8000   # fine-tuning overrides
  python benchmarks/bench_text.py --keep out/ft    # keep the fine-tuned encoder folder
  python benchmarks/bench_text.py --seeds 0,1,2    # three fine-tuning seeds, ratio on their mean per query
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the hub

import duckdb  # noqa: E402
import numpy as np  # noqa: E402

from itemaffinity.data.ingest import ingest_file  # noqa: E402
from itemaffinity.data.mapping import resolve_mapping  # noqa: E402
from itemaffinity.evaluation.experiment import build_task, parse_value  # noqa: E402
from itemaffinity.evaluation.metrics import ratio_interval  # noqa: E402
from itemaffinity.evaluation.runner import evaluate_model  # noqa: E402
from itemaffinity.models.registry import create_model  # noqa: E402
from itemaffinity.text.encoders import item_texts  # noqa: E402

from bench_encode import time_encoding  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "online_retail.parquet"
SPLIT = dt.datetime(2011, 10, 1)



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="content-finetuned parameter (repeatable)")
    ap.add_argument("--keep", help="save the fine-tuned encoder to this folder (one sub-folder per seed with --seeds)")
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds, e.g. 0,1,2: each fine-tunes its own encoder; "
                    "the ratio is taken on the mean over seeds, per query")
    ap.add_argument("-v", "--verbose", action="store_true", help="log progress (fine-tuning loss, timings)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    import torch

    torch.set_num_threads(args.threads)
    tuned = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    seeds = [int(s) for s in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.duckdb")
        ingest_file(str(DATA), resolve_mapping("online-retail"), store)
        with duckdb.connect(store, read_only=True) as con:
            task = build_task(con, "cold-start", SPLIT, args.queries, 0)
        n_cold = int(task.info["cold_items"])
        print(f"task cold-start: {task.info}")
        print(f"torch {torch.__version__}, {args.threads} thread(s); random ranking HR@10 = {10 / n_cold:.4f}")
        cold_s, warm_s, n_texts = time_encoding(item_texts(task.train), store)
        print(f"encode catalog ({n_texts:,} distinct titles, all-MiniLM-L6-v2): {cold_s:.1f}s; "
              f"again from the cache: {warm_s:.2f}s")
        cache = {"embedding_cache": store}
        specs = [("popularity", {}, ""),
                 ("tfidf", {"aggregate": "max"}, ""), ("tfidf", {"aggregate": "mean"}, ""),
                 ("content", {"aggregate": "max", **cache}, ""), ("content", {"aggregate": "mean", **cache}, "")]
        keep = args.keep or str(Path(tmp) / "finetuned")
        labels = [""] if len(seeds) == 1 else [f"seed {seed}" for seed in seeds]
        for seed, label in zip(seeds, labels):  # fine-tuned inside fit; the mean row reuses the saved encoder
            out = str(Path(keep) / f"seed{seed}") if label else keep
            tune = {"output_dir": out, **cache, **tuned, "seed": seed}
            specs += [("content-finetuned", {"aggregate": "max", **tune}, label),
                      ("content-finetuned", {"aggregate": "mean", "finetuned_path": out, **cache}, label)]
        rows = {}
        print(f"\n{'model':<20}{'aggregate':<10}{'HR@10':>8}{'NDCG@10':>9}{'MRR@10':>8}{'fit s':>8}{'eval s':>8}")
        for name, params, label in specs:
            r = evaluate_model(create_model(name, **params), task, per_query=True)
            agg = params.get("aggregate", "")
            rows[name, agg, label] = r
            print(f"{name:<20}{agg:<10}{r['HR@10']:8.4f}{r['NDCG@10']:9.4f}{r['MRR@10']:8.4f}{r['fit_s']:8.1f}"
                  f"{r['eval_s']:8.1f}  {label}", flush=True)
        pop = rows["popularity", "", ""]
        print(f"\ncontent-finetuned fit (max row) = fine-tuning on the training period + encoding the catalog: "
              f"{np.mean([rows['content-finetuned', 'max', lb]['fit_s'] for lb in labels]):.0f}s")
        for agg in ("max", "mean"):
            pre = rows["content", agg, ""]
            per_seed = [rows["content-finetuned", agg, lb] for lb in labels]
            hr, nd = np.mean([ft["HR@10"] for ft in per_seed]), np.mean([ft["NDCG@10"] for ft in per_seed])
            over = f" (mean of seeds {args.seeds})" if len(seeds) > 1 else ""
            print(f"[{agg}] content-finetuned / content{over}: HR@10 {hr / pre['HR@10']:.2f}x, "
                  f"NDCG@10 {nd / pre['NDCG@10']:.2f}x (target >= 1.2x); / popularity: HR@10 "
                  f"{hr / max(pop['HR@10'], 1e-9):.1f}x (target >= 3x); / random: {hr / (10 / n_cold):.1f}x")
            # each query's HR@10 averaged over the fine-tuning seeds: the interval then covers the queries
            # drawn, with the seeds' training noise averaged out rather than picked by one seed
            pair = np.mean([ft["per_query"]["HR@10"] for ft in per_seed], axis=0), pre["per_query"]["HR@10"]
            ratio, lo, hi = ratio_interval(*pair)
            _, glo, ghi = ratio_interval(*pair, groups=task.query_groups)
            print(f"      HR@10 {ratio:.3f}x, 95% paired bootstrap interval over the {task.n_queries:,} queries "
                  f"{lo:.3f}–{hi:.3f}, over their {len(np.unique(task.query_groups)):,} customers {glo:.3f}–{ghi:.3f}")
        print(f"content-finetuned config: {rows['content-finetuned', 'max', labels[0]]['config']}")

if __name__ == "__main__":
    main()
