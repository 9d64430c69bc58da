"""What a hybrid refresh costs and saves against a full fit (Online Retail basket completion).

`Hybrid.refresh(data)` keeps the learnt rankers and refits only the components and item statistics, which is
what the service's rebuild does by default and `analyze --refresh-hybrid` serves. This measures that choice on the test task
of bench_hybrid.py (fitted on the baskets before 2011-10-01, 5,000 test baskets, full ranking):

- refreshed: the hybrid fitted on the baskets before 2011-09-01 (`--gap-days 30`; its rankers a month staler than
  the test task's), then refreshed on the test task's training data;
- full: the hybrid fitted on the test task's training data, as bench_hybrid.py does;
- `ease:lam=30:lines=3`, the best classic model there, for scale.

Prints each model's NDCG@10 per task seed, the refresh / full ratio with a 95 % interval over customers (the
seeds pooled), and the seconds of the full fit against the refresh.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/bench_refresh.py --seeds 0,1,2 [--gap-days 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

import numpy as np

from bench_hybrid import SPLIT, online_retail_store
from itemaffinity.data.interactions import InteractionData
from itemaffinity.evaluation.experiment import build_task
from itemaffinity.evaluation.metrics import ratio_interval
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.models.registry import create_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--seeds", default="0,1,2", help="task seeds (which item each test basket hides)")
    ap.add_argument("--gap-days", type=int, default=30, help="how much earlier the rankers' data end")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    with online_retail_store() as con:
        tests = [build_task(con, "basket-completion", SPLIT, args.queries, seed) for seed in seeds]
        earlier = InteractionData.from_store(con, until=SPLIT - dt.timedelta(days=args.gap_days))
    print(f"task basket-completion: {tests[0].info}, seeds {args.seeds}")
    print(f"the earlier fit's data: {earlier.n_baskets:,} baskets; the test task's: {tests[0].train.n_baskets:,}")

    t0 = time.perf_counter()
    stale = create_model("hybrid").fit(earlier)
    t1 = time.perf_counter()
    refreshed = stale.refresh(tests[0].train)
    seconds = {"hybrid refreshed": time.perf_counter() - t1}
    print(f"earlier hybrid fit {t1 - t0:.0f} s; refresh {seconds['hybrid refreshed']:.0f} s", flush=True)
    models = {"hybrid refreshed": refreshed, "hybrid full fit": create_model("hybrid"),
              "ease:lam=30:lines=3": create_model("ease", lam=30, lines=3)}
    ndcg, per_query = {}, {}
    for label, model in models.items():
        for k, task in enumerate(tests):
            fit = label != "hybrid refreshed" and k == 0  # the refreshed hybrid is fitted above
            r = evaluate_model(model, task, fit=fit, per_query=True)
            if fit:
                seconds[label] = r["fit_s"]
            ndcg.setdefault(label, []).append(r["NDCG@10"])
            per_query.setdefault(label, []).append(r["per_query"]["NDCG@10"])
        print(f"{label:<22} NDCG@10 " + " / ".join(f"{v:.4f}" for v in ndcg[label])
              + f"  mean {np.mean(ndcg[label]):.4f}  fit {seconds[label]:.0f} s", flush=True)
    groups = np.concatenate([task.query_groups for task in tests])
    pair = [np.concatenate(per_query[label]) for label in ("hybrid refreshed", "hybrid full fit")]
    ratio, lo, hi = ratio_interval(*pair, groups=groups)
    print(f"\nrefreshed / full fit NDCG@10 {ratio:.3f}, 95% interval over {len(np.unique(groups)):,} customers "
          f"{lo:.3f}–{hi:.3f}; full fit {seconds['hybrid full fit']:.0f} s against refresh "
          f"{seconds['hybrid refreshed']:.0f} s ({seconds['hybrid full fit'] / seconds['hybrid refreshed']:.1f}×)")
    best = np.mean(ndcg["ease:lam=30:lines=3"])
    print(f"against ease:lam=30:lines=3: refreshed {np.mean(ndcg['hybrid refreshed']) / best:.3f}×, "
          f"full fit {np.mean(ndcg['hybrid full fit']) / best:.3f}×")


if __name__ == "__main__":
    main()
