"""Does the hybrid rank best sellers too low? A popularity bias added at serving time (issue #5).

`bench_hybrid.py --by-popularity` shows the hybrid far above EASE when the hidden item is rarely bought and
below it when the hidden item is a best seller. This script fits the hybrid once on the basket-completion
validation task (train before 2011-09-01, the baskets of September 2011; three task seeds) and scores:
- the hybrid's own ranking plus beta × the candidate's log(1 + baskets), standardised over the query's
  candidates (items no component proposes keep their fallback place), for a grid of beta;
- each of its two rankers alone (random slices, rolling origins), as a diagnostic;
each also in tertiles of the queries by the hidden item's training baskets.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/explore_popularity_bias.py [--test] [--betas -0.2,0,0.1,0.2,0.3,0.5]
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_hybrid import SPLIT, bounds_text, hidden_item_thirds, online_retail_store

from itemaffinity.evaluation.experiment import build_task
from itemaffinity.evaluation.metrics import ndcg
from itemaffinity.models.base import rank_top_n
from itemaffinity.models.hybrid import FALLBACK, _standardised
from itemaffinity.models.registry import create_model


def with_bias(scores: np.ndarray, log_pop: np.ndarray, beta: float) -> np.ndarray:
    """The scores plus beta × log popularity standardised over each query's candidates (score above FALLBACK / 2)."""
    if beta == 0:
        return scores
    cand = scores > FALLBACK / 2
    return np.where(cand, scores + beta * _standardised(np.broadcast_to(log_pop, scores.shape), cand), scores)


def ndcg_of(scores: np.ndarray, task) -> np.ndarray:
    top, _ = rank_top_n(scores.copy(), 10, task.exclude)
    return np.asarray(ndcg(top, task.targets, 10))


def ndcg_columns(per_task: list[np.ndarray], tasks, group: np.ndarray) -> str:
    """NDCG@10 of each task's scores as table cells: the mean over every task's queries, each task's, and each
    third of the queries (`group`, every task's queries one after another)."""
    values = [ndcg_of(s, task) for s, task in zip(per_task, tasks)]
    pooled = np.concatenate(values)
    return (f"{pooled.mean():8.4f}" + "".join(f"{v.mean():9.4f}" for v in values)
            + "".join(f"{pooled[group == g].mean():9.4f}" for g in range(3)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test", action="store_true", help="score the test task instead of the validation task")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--betas", default="-0.2,0,0.1,0.2,0.3,0.5,0.8")
    args = ap.parse_args()
    with online_retail_store() as con:
        tasks = [build_task(con, "basket-completion", SPLIT, 5000, int(s), validation=not args.test)
                 for s in args.seeds.split(",")]
    model = create_model("hybrid").fit(tasks[0].train)
    log_pop = np.log1p(tasks[0].train.item_baskets)[None, :].astype(np.float32)
    group, cuts = hidden_item_thirds(tasks)
    print(f"{tasks[0].info}; seeds {args.seeds}; hidden item's baskets tertiles {bounds_text(cuts)}")
    print(f"{'scoring':<28}{'mean':>8}" + "".join(f"{'seed ' + s:>9}" for s in args.seeds.split(","))
          + f"{'tail':>9}{'middle':>9}{'head':>9}")
    scores = [model.score(task.queries) for task in tasks]

    def report(label: str, per_task: list[np.ndarray]) -> None:
        print(f"{label:<28}" + ndcg_columns(per_task, tasks, group), flush=True)

    for beta in (float(b) for b in args.betas.split(",")):
        report(f"hybrid + {beta:g} × popularity", [with_bias(s, log_pop, beta) for s in scores])
    boosters = model._rankers  # the fitted rankers (loaded from the model strings), one per regime
    for k, name in enumerate(("random slices", "rolling origins")[:len(boosters)]):
        model._boosters = [boosters[k]]
        report(f"ranker of {name} alone", [model.score(task.queries) for task in tasks])
    model._boosters = boosters


if __name__ == "__main__":
    main()
