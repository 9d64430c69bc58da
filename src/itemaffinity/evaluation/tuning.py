"""Hyper-parameter tuning on a validation task cut from the training period — never the test split."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable

from itemaffinity.evaluation.protocols import Task
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.models.registry import create_model

log = logging.getLogger(__name__)

GRIDS: dict[str, dict[str, list[Any]]] = {
    "itemknn": {"similarity": ["cosine", "asymmetric_cosine", "jaccard"], "weighting": ["none", "bm25"],
                "source": ["baskets", "users"], "k": [50, 200]},
    "lineknn": {"window": [1, 3, 10], "k": [100, 300]},
    "userknn": {"k": [20, 50, 100, 200]},
    "ease": {"lam": [10.0, 30.0, 100.0, 300.0, 1000.0], "source": ["baskets", "users"], "lines": [0, 3]},
    "als": {"factors": [64, 128], "regularization": [0.05, 0.5], "alpha": [2.0, 10.0]},
    "bpr": {"factors": [64, 128], "learning_rate": [0.01, 0.05]},
    "popularity-recent": {"recent_days": [7.0, 30.0, 90.0]},
    "rules": {"min_support": [0.001, 0.002], "min_confidence": [0.05, 0.1], "max_len": [2, 3]},
}
"""Search spaces per model (full grids; each point is one fit + one validation run)."""


def tune(name: str, validation: Task, base: dict[str, Any] | None = None,
         on_trial: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grid-search `name` on the validation task by NDCG@10.

    Returns:
        (best_params, trials): the best parameters (merged over `base`) and every trial's row.
    """
    grid = GRIDS.get(name, {})
    keys = list(grid)
    trials = []
    best, best_score = dict(base or {}), -1.0
    for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
        params = {**(base or {}), **dict(zip(keys, values))}
        try:
            row = evaluate_model(create_model(name, **params), validation)
        except ValueError as exc:  # e.g. a source the data does not have
            log.warning("%s %s skipped: %s", name, params, exc)
            continue
        row["params"] = params
        trials.append(row)
        if on_trial:
            on_trial(row)
        if row["NDCG@10"] > best_score:
            best, best_score = params, row["NDCG@10"]
    log.info("tuned %s: %s (validation NDCG@10 %.4f)", name, best, best_score)
    return best, trials
