"""Hybrid fusion vs every classic model on Online Retail basket completion, in one run (issue #5).

The acceptance point: the hybrid's NDCG@10 is at least 1.10× the best classic model's in the same
run. Classic models: popularity, itemknn, lineknn (itemknn over neighbouring lines of an order),
userknn, ease at its default λ = 100 and at λ = 30 (the value tuned on the validation split, see
bench_models.py), ease λ 30 with windows of 3 neighbouring lines added to its Gram matrix, als, bpr,
rules. All are fitted on the baskets before 2011-10-01 and score the
same 5,000 seeded test baskets (one hidden item each, basket contents only, full ranking over all
items) with the same metric code. The hybrid's candidate recall is the share of test queries whose
hidden item is among its candidates.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/bench_hybrid.py
  add --models ease:lam=30,hybrid to run a subset; parameters go after the name, for example
  --models ease:lam=30,hybrid:validation_slices=1:validation_share=0.15.
  add --seeds 0,1,2 to score each fitted model on three tasks that differ in the item each basket
  hides (a steadier figure than one seed);
  add --validation to score the validation task instead (baskets of the 30 days before the split,
  everything fitted on what came before them), for choosing between hybrid settings without
  looking at the test baskets; with --split 2011-09-01 too, the validation window a month earlier
  (August 2011), a second period to check a choice on.
  add --by-popularity to print each model's NDCG@10 in three equal groups of queries by how often the
  hidden item, and the query's items, were bought in the training data (the long tail against the best
  sellers: does the fusion hold its lead where co-purchase counts are thin).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb
import numpy as np

from itemaffinity.data.ingest import ingest_file
from itemaffinity.data.mapping import resolve_mapping
from itemaffinity.evaluation.experiment import build_task, parse_models
from itemaffinity.evaluation.metrics import popularity_thirds, ratio_interval, thirds
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.models.registry import create_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "online_retail.parquet"
SPLIT = dt.datetime(2011, 10, 1)
CLASSIC = ("popularity,itemknn,lineknn,userknn,userknn:neighbours=baskets:k=100,ease,ease:lam=30,ease:lam=30:lines=3,"
           "als,bpr,rules")


@contextmanager
def online_retail_store() -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a fresh store of the bundled Online Retail data, removed afterwards."""
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.duckdb")
        ingest_file(str(DATA), resolve_mapping("online-retail"), store)
        with duckdb.connect(store, read_only=True) as con:
            yield con


def candidate_recall(model, task) -> float:
    """Share of the task's queries whose target is among the hybrid's candidates."""
    hits = 0
    for s in range(0, task.n_queries, 1000):
        cand = model.candidates(task.queries[s:s + 1000])
        targets = np.array([t[0] for t in task.targets[s:s + 1000]])
        hits += int((cand == targets[:, None]).any(axis=1).sum())
    return hits / task.n_queries


def worker_memory() -> str:
    """This process's loky workers (the hybrid's fold workers) and their resident memory."""
    import psutil

    rss = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "LokyProcess" in " ".join(child.cmdline()):
                rss.append(child.memory_info().rss / 2**20)
        except psutil.NoSuchProcess:  # exited while we looked
            pass
    return f"{len(rss)}" + (f" ({', '.join(f'{r:.0f}' for r in rss)} MiB resident)" if rss else "")


def bounds_text(cuts: np.ndarray, unit: str = "{:.0f}") -> str:
    """The three thirds' bounds as text, from the two cut points."""
    lo, hi = unit.format(cuts[0]), unit.format(cuts[1])
    return f"≤ {lo}, {lo}–{hi}, > {hi}"


def hidden_item_thirds(tasks) -> tuple[np.ndarray, np.ndarray]:
    """Each query's third by its hidden item's training baskets, every task's queries one after another, and the
    cut points (`metrics.popularity_thirds`, as the leaderboard's)."""
    return popularity_thirds(tasks[0].train.item_baskets, [t for task in tasks for t in task.targets])


def popularity_groups(tasks, per_query: dict[str, list[np.ndarray]]) -> None:
    """Each model's NDCG@10 in tertiles of the queries (every seed pooled) by the training baskets of the
    hidden item, and by the mean over the query's items of log(1 + their baskets)."""
    log_baskets = np.log1p(tasks[0].train.item_baskets.astype(np.float64))
    query = np.concatenate([((task.queries > 0) @ log_baskets) / np.maximum((task.queries > 0).sum(axis=1).A1, 1)
                            for task in tasks])
    for name, (group, cuts), unit in (("hidden item's baskets", hidden_item_thirds(tasks), "{:.0f}"),
                                      ("query items' mean log(1 + baskets)", thirds(query), "{:.2f}")):
        print(f"\nNDCG@10 by {name} (tertiles of the queries: {bounds_text(cuts, unit)}; "
              f"{', '.join(str(int((group == g).sum())) for g in range(3))} queries)")
        for label, values in per_query.items():
            v = np.concatenate(values)
            print(f"  {label:<34}" + "".join(f"{v[group == g].mean():9.4f}" for g in range(3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--models", default=CLASSIC + ",hybrid")
    ap.add_argument("--validation", action="store_true", help="score the validation task, not the test task")
    ap.add_argument("--split", type=dt.date.fromisoformat, default=SPLIT.date(), help=(
        "the test split (default 2011-10-01); an earlier one only with --validation, which never reaches the "
        "test baskets"))
    ap.add_argument("--seeds", default="0", help=(
        "task seeds (which item each test basket hides); each model is fitted once and scored on every "
        "seed's task, the ratio taken on the mean over seeds"))
    ap.add_argument("--by-popularity", action="store_true", help=(
        "also print each model's NDCG@10 by how popular the hidden item and the query's items are"))
    ap.add_argument("--verbose", action="store_true", help="log the models' progress and timings to stderr")
    args = ap.parse_args()
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    split = dt.datetime.combine(args.split, dt.time())
    if split > SPLIT or (split < SPLIT and not args.validation):
        ap.error(f"a split after {SPLIT:%Y-%m-%d} trains on the test baskets, and an earlier one scores them unless "
                 "--validation is given")
    seeds = [int(s) for s in args.seeds.split(",")]
    with online_retail_store() as con:
        tasks = [build_task(con, "basket-completion", split, args.queries, seed, validation=args.validation)
                 for seed in seeds]
    t_all = time.perf_counter()
    print(f"task basket-completion: {tasks[0].info}" + (f", seeds {args.seeds}" if len(seeds) > 1 else ""))
    print(f"{'model':<22}{'HR@10':>8}{'NDCG@10':>9}{'MRR@10':>8}{'Rec@20':>8}{'fit s':>8}{'eval s':>8}")
    ndcgs, per_query = {}, {}
    for spec in parse_models(args.models):
        model = create_model(spec.name, **spec.params)
        for k, task in enumerate(tasks):
            r = evaluate_model(model, task, fit=k == 0, per_query=True)
            ndcgs.setdefault(spec.label, []).append(r["NDCG@10"])
            per_query.setdefault(spec.label, []).append(r["per_query"]["NDCG@10"])
            label = spec.label + (f" [seed {seeds[k]}]" if len(seeds) > 1 else "")
            print(f"{label:<22}{r['HR@10']:8.4f}{r['NDCG@10']:9.4f}{r['MRR@10']:8.4f}{r['Recall@20']:8.4f}"
                  f"{r['fit_s']:8.1f}{r['eval_s']:8.1f}", flush=True)
        if len(seeds) > 1:
            print(f"{spec.label + ' [mean]':<22}{'':8}{np.mean(ndcgs[spec.label]):9.4f}", flush=True)
        if spec.name == "hybrid":
            print(f"  fold workers still running after the hybrid's fit and scoring: {worker_memory()}", flush=True)
            print(f"  hybrid candidate recall: {'validation' if args.validation else 'test'} task "
                  f"{candidate_recall(model, tasks[0]):.3f}, the ranker's own validation queries "
                  f"{float(model.candidate_recall_):.3f}", flush=True)
    mean = {label: float(np.mean(v)) for label, v in ndcgs.items()}
    classic = {label: v for label, v in mean.items() if not label.startswith("hybrid")}
    hybrid = [label for label in mean if label.startswith("hybrid")]
    if classic and hybrid:
        best = max(classic, key=classic.get)
        print(f"\nbest classic: {best} NDCG@10 {classic[best]:.4f}; hybrid NDCG@10 {mean[hybrid[0]]:.4f}; "
              f"ratio {mean[hybrid[0]] / classic[best]:.3f} (goal ≥ 1.10)"
              + (f"; per seed {' '.join(f'{h / c:.3f}' for h, c in zip(ndcgs[hybrid[0]], ndcgs[best]))}"
                 if len(seeds) > 1 else ""))
        # the queries of one seed are paired across models: one interval per seed over queries, and over customers
        # (a customer's baskets are alike, so that one is the honest width); then the seeds pooled by customer
        for k, seed in enumerate(seeds):
            pair = per_query[hybrid[0]][k], per_query[best][k]
            ratio, lo, hi = ratio_interval(*pair)
            _, glo, ghi = ratio_interval(*pair, groups=tasks[k].query_groups)
            print(f"  seed {seed}: hybrid / {best} NDCG@10 {ratio:.3f}, 95% paired bootstrap interval over its "
                  f"{len(pair[0]):,} queries {lo:.3f}–{hi:.3f}, over its {len(np.unique(tasks[k].query_groups)):,} "
                  f"customers {glo:.3f}–{ghi:.3f}")
        if len(seeds) > 1:  # the seeds' queries pooled, a customer's queries of every seed resampled together
            pair = [np.concatenate(per_query[label]) for label in (hybrid[0], best)]
            groups = np.concatenate([task.query_groups for task in tasks])
            ratio, lo, hi = ratio_interval(*pair, groups=groups)
            print(f"  seeds pooled: hybrid / {best} NDCG@10 {ratio:.3f}, 95% interval over its "
                  f"{len(np.unique(groups)):,} customers {lo:.3f}–{hi:.3f}")
    if args.by_popularity:
        popularity_groups(tasks, per_query)
    print(f"total wall time {time.perf_counter() - t_all:.1f}s")


if __name__ == "__main__":
    main()
