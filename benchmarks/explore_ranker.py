"""Do the hybrid's rankers gain from starting at a prior instead of zero? Ranker-only refits (issue #5).

The hybrid's two LambdaRank rankers learn from zero, and on the validation task they rank below EASE on the
queries whose hidden item is a best seller (`bench_hybrid.py --by-popularity`). This script fits the hybrid once
on the basket-completion validation task (train before 2011-09-01, the baskets of September 2011), keeps the
rankers' rows of every fold, and learns the two rankers again for each variant and ranker seed on those same
rows, so that only the ranker changes:
- `base`: the hybrid's rankers, learnt again (ranker seed 0: the fitted hybrid's, up to LightGBM's threads);
- `ease:W`: LightGBM's initial score W × the EASE component's score standardised over the query's candidates, so
  the trees learn corrections to EASE; at serving the same prior is added to each ranker's output;
- `components:W`: the same with the mean of every component's standardised score (the hybrid's no-ranker order);
- `linear`: linear models in the leaves (`linear_tree`).
Each is scored on three task seeds (NDCG@10 over the 1,699 baskets of September 2011 each), also by thirds of
the hidden item's training baskets.

Usage:
  OMP_NUM_THREADS=1 python benchmarks/explore_ranker.py [--variants base,ease:1,linear] [--ranker-seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import time

import lightgbm as lgb
import numpy as np
from bench_hybrid import SPLIT, bounds_text, hidden_item_thirds, online_retail_store
from explore_popularity_bias import ndcg_columns

from itemaffinity.evaluation.experiment import build_task
from itemaffinity.models.hybrid import Hybrid, standardised_score_columns

ROWS: list[tuple[list[np.ndarray], list[np.ndarray]]] = []  # each regime's ranker rows, in the order learnt


class Recording(Hybrid):
    """The hybrid, keeping its rankers' rows (in ROWS, outside the model, which fold workers receive pickled) and
    the serving features of each query matrix it scores (scored again for every variant)."""

    def _ranker_rows(self, folds):
        rows = super()._ranker_rows(folds)
        ROWS.append(rows)
        return rows

    def _features(self, comps, stats, queries, users, at):
        if stats is not None:
            return super()._features(comps, stats, queries, users, at)
        key = hashlib.sha1(queries.indptr.tobytes() + queries.indices.tobytes()).hexdigest()
        cache = vars(self).setdefault("_served", {})
        if key not in cache:
            cache[key] = super()._features(comps, stats, queries, users, at)
        return cache[key]


class WithPrior:
    """A booster whose scores add the prior (a function of the feature rows) to its own, as at training."""

    def __init__(self, booster: lgb.Booster, prior) -> None:
        self.booster, self.prior = booster, prior

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.booster.predict(x) + self.prior(x)


def prior_of(variant: str, model: Hybrid):
    """(the function of a feature matrix giving each row's initial score, or None; LightGBM parameters)."""
    kind, _, weight = variant.partition(":")
    if kind == "linear":
        return None, {"linear_tree": True}
    if kind == "base":
        return None, {}
    w = float(weight or 1)
    columns = standardised_score_columns(len(model.config.components))
    if kind == "ease":
        col = columns.start + list(model.config.components).index("ease")
        return (lambda x: w * x[:, col].astype(np.float64)), {}
    if kind == "components":
        return (lambda x: w * x[:, columns].mean(axis=1).astype(np.float64)), {}
    raise ValueError(variant)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2", help="task seeds")
    ap.add_argument("--ranker-seeds", default="0,1,2")
    ap.add_argument("--variants", default="base,ease:0.5,ease:1,ease:2,components:1,linear")
    ap.add_argument("--threads", type=int, default=2, help="LightGBM's threads for the refits")
    args = ap.parse_args()
    with online_retail_store() as con:
        tasks = [build_task(con, "basket-completion", SPLIT, 5000, int(s), validation=True)
                 for s in args.seeds.split(",")]
    t0 = time.perf_counter()
    model = Recording().fit(tasks[0].train)
    print(f"{tasks[0].info}; hybrid fit {time.perf_counter() - t0:.0f} s; rows of {len(ROWS)} rankers")
    group, cuts = hidden_item_thirds(tasks)
    print(f"hidden item's baskets thirds {bounds_text(cuts)}")
    print(f"{'variant':<16}{'ranker seed':>12}{'mean':>8}" + "".join(f"{'seed ' + s:>9}" for s in args.seeds.split(","))
          + f"{'rare':>9}{'middle':>9}{'best':>9}{'rounds':>12}{'s':>6}", flush=True)

    def report(label: str, seed: int | str, rounds: str, seconds: float) -> None:
        scores = [model.score(task.queries) for task in tasks]  # Hybrid.score makes the float32 CSR itself
        print(f"{label:<16}{seed:>12}" + ndcg_columns(scores, tasks, group) + f"{rounds:>12}{seconds:6.0f}", flush=True)

    report("the hybrid", "fit", "/".join(str(b.current_iteration()) for b in model._rankers), 0)
    variants = {v: prior_of(v, model) for v in args.variants.split(",")}
    for seed in (int(s) for s in args.ranker_seeds.split(",")):  # every variant for one seed, then the next seed
        model.config = model.config.model_copy(update={"seed": seed})
        for variant, (prior, params) in variants.items():
            t1 = time.perf_counter()
            boosters, rounds = [], []
            for feats, labels in ROWS:
                init = None if prior is None else [prior(f) for f in feats]
                text, n = model._train_ranker(feats, labels, init, n_jobs=args.threads, **params)
                boosters.append(lgb.Booster(model_str=text))
                rounds.append(n)
            model._boosters = boosters if prior is None else [WithPrior(b, prior) for b in boosters]
            report(variant, seed, "/".join(map(str, rounds)), time.perf_counter() - t1)


if __name__ == "__main__":
    main()
