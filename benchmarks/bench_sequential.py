"""Sequential and graph models against published numbers and EASE, in one run (issue #5).

--dataset games: SASRec on the paper's own Video Games data (SASRec, ICDM 2018, Table III) with the
    paper's protocol — leave-last-out, the last item ranked against 100 uniformly sampled items
    the user has not interacted with, HR@10 and NDCG@10 — beside full ranking. The paper reports
    NDCG@10 0.5360 (pmixer/SASRec.pytorch re-ran it at 0.5308); the goal is within 3 % (≥ 0.520).
--dataset beauty: SASRec (cross-entropy loss) and LightGCN against EASE on Amazon Beauty, next item
    leave-last-out over the full catalogue; published full-ranking SASRec NDCG@10 is 0.0318.
    `ease-recency` is EASE scoring histories weighted towards their latest items, the decay picked
    on the validation task (each user's second-to-last item), never on the test items.

Both use the project's harness, `build_task(con, "next-item", None, None, 0)` and
`evaluate_model` (full rankings exclude the user's history). Its training data hold every item
but each user's last, so the second to last is a training target too; the paper also holds that
item out of training. `--paper-split` (games) fits on the validation task's training data instead
and ranks each user's last item given everything before it, as the paper does.

Usage:
  python benchmarks/bench_sequential.py --dataset games [--paper-split]
  python benchmarks/bench_sequential.py --dataset beauty [--models ease,ease-recency,sasrec,graph]
  add --set key=value (SASRec parameters, repeatable; e.g. --set negatives=1 --set epochs=200)
  and -v to log every epoch.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import duckdb
import numpy as np

from itemaffinity.data.ingest import ingest_file
from itemaffinity.data.mapping import resolve_mapping
from itemaffinity.evaluation.experiment import build_task
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.models.registry import create_model

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PAPER_GAMES = {"HR@10": 0.7410, "NDCG@10": 0.5360}
PUBLISHED_BEAUTY_SASREC = 0.0318

# The paper's architecture and optimiser (hidden 50, 2 blocks, 1 head, dropout 0.5, max_len 50,
# batch 128, Adam lr 0.001 β2 0.98) with 16 sampled negatives per position instead of 1: 40 epochs
# instead of the paper's 200, a third of the CPU time. With 1 negative, 60 epochs reached only
# about 0.50 and lr 0.004 was worse than 0.001 at every epoch. `--paper-split --set negatives=1
# --set epochs=200` runs the paper's exact loss and schedule (0.5280 here, 15 CPU minutes).
GAMES_SASREC = {"loss": "bce", "negatives": 16, "epochs": 40}
BEAUTY_MODELS = {
    "ease": {"lam": 100.0},
    "ease-recency": {"lam": 100.0},
    # Softmax over the target and 1,024 uniform items shared by the batch: 7x cheaper per epoch
    # on this CPU than the full softmax over 12,101 items.
    "sasrec": {"loss": "ce", "negatives": 1024, "hidden": 64, "epochs": 40},
    # reg 1e-3 (0.0296) edged out the authors' 1e-4 (0.0290) and 1e-2 (0.0274).
    "graph": {"factors": 64, "layers": 3, "epochs": 60, "lr": 0.01, "batch_size": 8192, "reg": 1e-3},
}
DATASETS = {"games": ("sasrec_games", "sasrec-games"), "beauty": ("amazon_beauty", "amazon-beauty")}


def _value(text: str) -> int | float | str:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def load_tasks(dataset: str, validation: bool = False):
    """The next-item test task, and with `validation` also the task one item earlier."""
    folder, preset = DATASETS[dataset]
    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.duckdb")
        ingest_file(str(SHARED / folder / "interactions.parquet"), resolve_mapping(preset), store)
        # One connection per task: protocols.dataset_name leaves a fetchone() result open, and
        # DuckDB then refuses the next query on that connection.
        with duckdb.connect(store, read_only=True) as con:
            test = build_task(con, "next-item", None, None, 0)
        if not validation:
            return test, None
        with duckdb.connect(store, read_only=True) as con:
            return test, build_task(con, "next-item", None, None, 0, validation=True)


def sampled_rank(scores: np.ndarray, seen: list[np.ndarray], targets: np.ndarray, rng: np.random.Generator,
                 n_negatives: int = 100, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per row: is the target in the top k among n uniform items not in `seen`, and its NDCG@k."""
    n_items = scores.shape[1]
    hits, ndcgs = np.zeros(len(targets)), np.zeros(len(targets))
    for r, t in enumerate(targets):
        excluded = set(seen[r].tolist()) | {int(t)}
        negs: list[int] = []
        while len(negs) < n_negatives:
            negs.extend(c for c in rng.integers(n_items, size=2 * n_negatives).tolist() if c not in excluded)
        rank = int((scores[r, negs[:n_negatives]] > scores[r, t]).sum())
        hits[r], ndcgs[r] = rank < k, (1.0 / np.log2(rank + 2)) if rank < k else 0.0
    return hits, ndcgs


def run_games_paper_split(params: dict) -> None:
    """The paper's split exactly: fit without each user's last two items, then rank the last item
    given every item before it (the validation item included) against 100 sampled negatives."""
    test, val = load_tasks("games", validation=True)
    print(f"paper split: fit on {val.train.n_users:,} users' items before the last two; SASRec {params}")
    cpu = time.process_time()
    t0 = time.perf_counter()
    model = create_model("sasrec", **params).fit(val.train)
    fit_s = time.perf_counter() - t0
    vocab, full = model.items_, test.train
    targets = vocab.indices(full.items.ids_of(np.array([t[0] for t in test.targets])))
    seqs = [vocab.indices(full.items.ids_of(full.sequence(u))) for u in test.query_users]
    seqs = [q[q >= 0] for q in seqs]
    keep = np.flatnonzero((targets >= 0) & np.array([len(q) > 0 for q in seqs]))
    rng = np.random.default_rng(0)
    hits, ndcgs = [], []
    for s in range(0, len(keep), 1000):
        rows = keep[s:s + 1000]
        lens = np.array([len(seqs[r]) for r in rows])
        scores = model.score_sequences(np.concatenate([[0], np.cumsum(lens)]), np.concatenate([seqs[r] for r in rows]))
        h, n = sampled_rank(scores, [seqs[r] for r in rows], targets[rows], rng)
        hits.append(h)
        ndcgs.append(n)
    hr, nd = float(np.concatenate(hits).mean()), float(np.concatenate(ndcgs).mean())
    print(f"{len(keep):,} test users; sampled, 100 negatives: HR@10 {hr:.4f} NDCG@10 {nd:.4f} "
          f"(paper 0.7410 / 0.5360: {nd / PAPER_GAMES['NDCG@10'] - 1:+.1%}); training {fit_s:.0f}s, "
          f"CPU time {time.process_time() - cpu:.0f}s")


def run_games(overrides: dict) -> None:
    task, _ = load_tasks("games")
    params = {**GAMES_SASREC, **overrides}
    print(f"task {task.name}: {task.info}; {task.train.n_users:,} users, {task.train.n_items:,} items")
    print(f"SASRec {params}")
    cpu = time.process_time()
    row = evaluate_model(create_model("sasrec", **params), task, sampled_negatives=100)
    cpu = time.process_time() - cpu
    hr, nd = row["sampled100_HR@10"], row["sampled100_NDCG@10"]
    print(f"\n{'protocol':<36}{'HR@10':>8}{'NDCG@10':>9}")
    print(f"{'sampled, 100 negatives (paper)':<36}{hr:8.4f}{nd:9.4f}")
    print(f"{'paper (SASRec, Table III)':<36}{PAPER_GAMES['HR@10']:8.4f}{PAPER_GAMES['NDCG@10']:9.4f}")
    print(f"{'full ranking (all items)':<36}{row['HR@10']:8.4f}{row['NDCG@10']:9.4f}")
    gap = nd / PAPER_GAMES["NDCG@10"] - 1
    verdict = "met" if gap >= -0.03 else "missed"
    print(f"\nsampled NDCG@10 vs the paper: {gap:+.1%} (goal: no more than 3 % below, ≥ 0.520: {verdict}); "
          f"training {row['fit_s']:.0f}s ({row['fit_s'] / params['epochs']:.1f}s/epoch), scoring {row['eval_s']:.0f}s; "
          f"CPU time of fit + evaluation {cpu:.0f}s")


RECENCY_DECAYS = (0.9, 0.8, 0.7, 0.6, 0.5)


def pick_recency_decay(validation) -> float:
    """The EASE recency decay with the best validation NDCG@10 (fitted on the validation task)."""
    scores = {d: evaluate_model(create_model("ease", lam=100.0, recency_decay=d), validation)["NDCG@10"]
              for d in RECENCY_DECAYS}
    print("ease-recency validation NDCG@10: " + ", ".join(f"{d}: {v:.4f}" for d, v in scores.items()), flush=True)
    return max(scores, key=scores.get)


def run_beauty(models: list[str], overrides: dict) -> None:
    task, validation = load_tasks("beauty", validation="ease-recency" in models)
    print(f"task {task.name}: {task.info}; {task.train.n_users:,} users, {task.train.n_items:,} items")
    rows = {}
    print(f"{'model':<14}{'HR@10':>8}{'NDCG@10':>9}{'Recall@20':>10}{'fit s':>8}{'eval s':>8}{'CPU s':>8}  config",
          flush=True)
    for name in models:
        params = {**BEAUTY_MODELS[name], **(overrides if name == "sasrec" else {})}
        cpu = time.process_time()
        if name == "ease-recency":
            params["recency_decay"] = pick_recency_decay(validation)
        r = evaluate_model(create_model(name.removesuffix("-recency"), **params), task)
        cpu = time.process_time() - cpu
        rows[name] = r
        print(f"{name:<14}{r['HR@10']:8.4f}{r['NDCG@10']:9.4f}{r['Recall@20']:10.4f}{r['fit_s']:8.0f}{r['eval_s']:8.0f}"
              f"{cpu:8.0f}  {params}", flush=True)
    print()
    ease = rows.get("ease")
    for name, r in rows.items():
        vs_ease = f"{r['NDCG@10'] / ease['NDCG@10']:.3f}× EASE" if ease else ""
        print(f"{name:<14}NDCG@10 {r['NDCG@10']:.4f}: {r['NDCG@10'] / PUBLISHED_BEAUTY_SASREC:.3f}× published "
              f"SASRec 0.0318; {vs_ease}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=list(DATASETS), required=True)
    ap.add_argument("--models", default="ease,ease-recency,sasrec,graph", help="beauty only: models to run, in order")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="SASRec parameter override")
    ap.add_argument("--paper-split", action="store_true",
                    help="games only: fit without the validation item too, as the paper does")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every epoch")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s")
    overrides = {k: _value(v) for k, _, v in (s.partition("=") for s in args.set)}
    t0 = time.perf_counter()
    if args.dataset == "games" and args.paper_split:
        run_games_paper_split({**GAMES_SASREC, **overrides})
    elif args.dataset == "games":
        run_games(overrides)
    else:
        run_beauty(args.models.split(","), overrides)
    print(f"total wall time {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
