"""Choose the fine-tuning settings on a validation cold-start task, never on the test task (issue #5).

The test task of bench_text.py ranks items first sold after 2011-10-01. The validation task is the
same protocol one step earlier and entirely inside the training period: train before 2011-08-01,
rank the items first sold in August and September 2011 (two months: one gives only ~650 queries);
validation_early is the same two months earlier (train before 2011-06-01, June and July), and
`--task validation,validation_early` pools the two (each fine-tuned on its own training data). A grid of
`content-finetuned` settings is scored on it (HR@10 / NDCG@10 over the cold items, the `max`
aggregation of bench_text.py), beside the pretrained encoder; the best setting is then run once
on the test task by bench_text.py.

`prepare` reads the store and writes the tasks to one .npz (catalog texts, training baskets,
queries, targets, cold items), so `run` needs no database and can run on another machine (a GPU).

Usage:
  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/sweep_finetune.py run out/sweep.npz --grid "max_per_item=3,5,10;epochs=1,2,3" \\
      [--seeds 0,1] [--device cuda] [--model PATH] [--task validation|validation_early|test|validation,validation_early]
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "online_retail.parquet"
SPLIT = dt.datetime(2011, 10, 1)
VALIDATION_DAYS = 61
TASKS = ("validation", "validation_early", "test")
"""validation: train before SPLIT − 61 days, rank the items first sold in the next 61 days; validation_early:
the same 61 days earlier (a second, disjoint set of queries: pooled with the first, one standard error
of HR@10 shrinks by about √2); test: bench_text's."""



def prepare(path: str, n_queries: int) -> None:
    import duckdb

    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping
    from itemaffinity.evaluation.protocols import cold_start
    from itemaffinity.text.encoders import item_texts

    arrays = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "sweep.duckdb")
        ingest_file(str(DATA), resolve_mapping("online-retail"), store)
        with duckdb.connect(store, read_only=True) as con:
            for name in TASKS:
                windows_back = {"validation": 1, "validation_early": 2}.get(name, 0)
                start = SPLIT - dt.timedelta(days=VALIDATION_DAYS * windows_back)
                until = start + dt.timedelta(days=VALIDATION_DAYS)
                task = (cold_start(con, start, n_queries=n_queries, test_until=until, name=f"cold-start-{name}")
                        if windows_back else cold_start(con, SPLIT, n_queries=n_queries))
                x = sp.csr_matrix(task.train.basket_lines)  # the items' line positions (pair_lines)
                q = sp.csr_matrix(task.queries, dtype=np.float32)
                arrays.update({
                    f"{name}_texts": np.array(item_texts(task.train), dtype=str),
                    f"{name}_baskets_indptr": x.indptr, f"{name}_baskets_indices": x.indices,
                    f"{name}_baskets_shape": np.array(x.shape), f"{name}_baskets_data": x.data,
                    f"{name}_baskets_ts": task.train.basket_ts.astype("datetime64[s]").astype(np.int64),
                    f"{name}_queries_indptr": q.indptr, f"{name}_queries_indices": q.indices,
                    f"{name}_targets": np.array([t[0] for t in task.targets]),
                    f"{name}_cold": task.candidates})
                print(f"{name}: {task.info}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}")


def _csr(z, prefix: str, n_items: int, values: bool = False) -> sp.csr_matrix:
    """0/1 rows, or with `values` the values stored with them (the baskets' line positions)."""
    indptr, indices = z[f"{prefix}_indptr"], z[f"{prefix}_indices"]
    data = z[f"{prefix}_data"] if values else np.ones(len(indices), np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, n_items))


def load_task(path: str, task: str, lines: bool = False) -> tuple[list[str], sp.csr_matrix, sp.csr_matrix,
                                                                  np.ndarray, np.ndarray, np.ndarray]:
    """One task of a `prepare`d .npz: item texts, training baskets (0/1, or with `lines` the items' line
    positions), queries, targets, cold items, basket times."""
    z = np.load(path)
    texts = z[f"{task}_texts"].tolist()
    return (texts, _csr(z, f"{task}_baskets", len(texts), values=lines), _csr(z, f"{task}_queries", len(texts)),
            z[f"{task}_targets"], z[f"{task}_cold"], z[f"{task}_baskets_ts"].astype("datetime64[s]"))


def evaluate_scores(scores: np.ndarray, queries: sp.csr_matrix, targets: np.ndarray,
                    cold: np.ndarray) -> tuple[float, float]:
    """HR@10 and NDCG@10 of (q, n_items) scores, ranked over the cold items."""
    from itemaffinity.evaluation.metrics import hit_rate, ndcg
    from itemaffinity.models.base import rank_top_n

    top, _ = rank_top_n(scores, 10, queries, cold)
    t = [np.array([x]) for x in targets]
    return float(hit_rate(top, t, 10).mean()), float(ndcg(top, t, 10).mean())


def evaluate(vectors: np.ndarray, queries: sp.csr_matrix, targets: np.ndarray, cold: np.ndarray) -> tuple[float, float]:
    """HR@10 and NDCG@10 of the max-cosine content ranking over the cold items."""
    from itemaffinity.text.models import content_scores

    return evaluate_scores(content_scores(queries, vectors, "max"), queries, targets, cold)


def pooled_hr(by_task: dict[str, float], n_queries: dict[str, int]) -> float:
    """HR@10 over the queries of all the tasks (each task weighted by its queries)."""
    return sum(by_task[k] * n_queries[k] for k in by_task) / sum(n_queries[k] for k in by_task)


def run(args: argparse.Namespace) -> None:
    from itemaffinity.text.encoders import DEFAULT_MODEL, SentenceEncoder, load_sentence_model
    from itemaffinity.evaluation.experiment import parse_value
    from itemaffinity.text.finetune import (FinetuneConfig, co_purchase_text_pairs, false_negative_mask,
                                            finetune_encoder, interpolate_weights)

    base = load_sentence_model(args.model or DEFAULT_MODEL, args.device)
    tasks = {}
    for name in args.task.split(","):
        texts, baskets, queries, targets, cold, basket_ts = load_task(args.prep, name, lines=True)
        print(f"task {name}: {len(targets)} queries, {len(cold)} cold items, {baskets.shape[0]} training baskets")
        tasks[name] = (texts, baskets, queries, targets, cold, basket_ts)

    def encode(model, texts: list[str]) -> np.ndarray:
        return SentenceEncoder(model, device=args.device).encode(texts)

    def pooled(by_task: dict[str, float]) -> float:
        return pooled_hr(by_task, {name: len(tasks[name][3]) for name in by_task})

    pretrained, hr0s = {}, {}
    for name, (texts, _, queries, targets, cold, _) in tasks.items():
        pretrained[name] = encode(base, texts)
        hr0s[name], nd0 = evaluate(pretrained[name], queries, targets, cold)
        print(f"{'pretrained [' + name + ']':<60}{hr0s[name]:8.4f}{nd0:9.4f}", flush=True)
    hr0 = pooled(hr0s)
    if len(tasks) > 1:
        print(f"{'pretrained [pooled]':<60}{hr0:8.4f}", flush=True)
    blends = [float(b) for b in args.blend.split(",")] if args.blend else []
    alphas = [float(a) for a in args.interpolate.split(",")] if args.interpolate else []
    axes = [(k, [parse_value(v) for v in vals.split(",")])
            for k, vals in (part.split("=", 1) for part in args.grid.split(";") if part)]
    fixed = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for combo in itertools.product(*[vals for _, vals in axes]):
        setting = {**fixed, **dict(zip([k for k, _ in axes], combo))}
        label = " ".join(f"{k}={v}" for k, v in setting.items()) or "defaults"
        hrs, nds, n_pairs, t0 = {}, {}, {}, time.perf_counter()
        for name, (texts, baskets, queries, targets, cold, basket_ts) in tasks.items():
            by_alpha, seed_vectors = {}, []
            for seed in seeds:
                cfg = FinetuneConfig(**setting, seed=seed)
                pairs = co_purchase_text_pairs(baskets, texts, cfg, basket_ts=basket_ts, vectors=pretrained[name])
                n_pairs[name] = len(pairs)
                model = finetune_encoder(base, pairs, cfg, related=false_negative_mask(baskets, texts, cfg))
                tuned = encode(model, texts)
                seed_vectors.append(tuned)
                hr, nd = evaluate(tuned, queries, targets, cold)
                hrs.setdefault(name, []).append(hr)
                nds.setdefault(name, []).append(nd)
                for a in alphas:  # weights = a·tuned + (1 − a)·pretrained (the `interpolate` setting, post hoc)
                    ahr, and_ = evaluate(encode(interpolate_weights(base, model, a), texts), queries, targets, cold)
                    by_alpha.setdefault(a, []).append(ahr)
                    print(f"  seed {seed} interpolate {a:.2f}: HR@10 {ahr:.4f} NDCG@10 {and_:.4f}", flush=True)
                for w in blends:  # cosine = w·cos(tuned) + (1 − w)·cos(pretrained)
                    mixed = np.hstack([np.sqrt(w) * tuned, np.sqrt(1 - w) * pretrained[name]]).astype(np.float32)
                    bhr, bnd = evaluate(mixed, queries, targets, cold)
                    print(f"  seed {seed} blend {w:.2f} tuned + {1 - w:.2f} pretrained: HR@10 {bhr:.4f} "
                          f"NDCG@10 {bnd:.4f}", flush=True)
            if len(seed_vectors) > 1:  # cosine = the mean of the seeds' cosines
                ens = np.hstack(seed_vectors).astype(np.float32) / np.sqrt(len(seed_vectors))
                ehr, end = evaluate(ens, queries, targets, cold)
                print(f"  {label} [{name}] ensemble of the {len(seed_vectors)} seeds: HR@10 {ehr:.4f} "
                      f"NDCG@10 {end:.4f}", flush=True)
            for a, ahrs in by_alpha.items():
                print(f"  {label} [{name}] interpolate={a}: HR@10 {np.mean(ahrs):.4f} (mean over seeds)", flush=True)
            if len(tasks) > 1:
                print(f"{label + ' [' + name + ']':<60}{np.mean(hrs[name]):8.4f}{np.mean(nds[name]):9.4f}  "
                      f"(HR@10 per seed {' '.join(f'{h:.4f}' for h in hrs[name])})", flush=True)
        per_seed = [pooled({name: hrs[name][k] for name in tasks}) for k in range(len(seeds))]
        nd_mean = pooled({name: float(np.mean(nds[name])) for name in tasks})
        results.append((float(np.mean(per_seed)), nd_mean, label))
        print(f"{label + (' [pooled]' if len(tasks) > 1 else ''):<60}{np.mean(per_seed):8.4f}{nd_mean:9.4f}  "
              f"({' / '.join(str(n) for n in n_pairs.values())} pairs, "
              f"HR@10 per seed {' '.join(f'{h:.4f}' for h in per_seed)}, {time.perf_counter() - t0:.0f}s)", flush=True)
    if results:
        hr, nd, label = max(results)
        print(f"\nbest on {args.task}: {label}: HR@10 {hr:.4f} = {hr / hr0:.3f}x pretrained, NDCG@10 {nd:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="write the validation and test tasks to an .npz")
    p.add_argument("out")
    p.add_argument("--queries", type=int, default=5000)
    r = sub.add_parser("run", help="score a grid of fine-tuning settings")
    r.add_argument("prep")
    r.add_argument("--task", default="validation", help=(
        f"one of {', '.join(TASKS)}, or several joined by commas: each fine-tuned on its own training data, "
        "HR@10 pooled over their queries"))
    r.add_argument("--grid", default="", help='axes "key=v1,v2;key2=v1,v2" (FinetuneConfig fields)')
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="fixed setting (repeatable)")
    r.add_argument("--seeds", default="0", help="comma-separated seeds; results are their mean")
    r.add_argument("--device", default=None, help="torch device (cuda, cpu)")
    r.add_argument("--model", default=None, help="encoder name or folder (default all-MiniLM-L6-v2)")
    r.add_argument("--blend", default="", help="also score w·tuned + (1−w)·pretrained cosines for these w")
    r.add_argument("--interpolate", default="", help="also score weight interpolations a·tuned + (1−a)·pretrained")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.command == "run" and not set(args.task.split(",")) <= set(TASKS):
        ap.error(f"--task: each of {args.task!r} must be one of {', '.join(TASKS)}")
    if args.command == "prepare":
        prepare(args.out, args.queries)
        return
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run(args)


if __name__ == "__main__":
    main()
