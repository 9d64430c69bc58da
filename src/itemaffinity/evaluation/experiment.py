"""One evaluation run as the CLI and the report use it: build the task, (tune,) fit, score, rank."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, Callable

import duckdb
import numpy as np

from itemaffinity.errors import InputError
from itemaffinity.evaluation import protocols
from itemaffinity.evaluation.metrics import ratio_interval
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.evaluation.tuning import tune
from itemaffinity.models.base import Recommender
from itemaffinity.models.registry import create_store_model, model_class

log = logging.getLogger(__name__)

TASKS = ("basket-completion", "next-item", "next-basket", "cold-start")
CLASSIC_MODELS = ("popularity", "itemknn", "lineknn", "userknn", "ease", "als", "bpr", "rules")
VALIDATION_DAYS = 30


@dataclass(frozen=True)
class ModelSpec:
    """A model name with parameters, parsed from `name:key=value:key=value`."""

    name: str
    params: dict[str, Any]

    @property
    def label(self) -> str:
        def text(v: Any) -> str:
            return "+".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

        return self.name + "".join(f":{k}={text(v)}" for k, v in self.params.items())


def parse_value(text: str) -> Any:
    """A command-line parameter value: int, float, true/false, none, a list `a+b+c` of those (for
    example the hybrid's components=ease+sasrec+graph), else the string."""
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    if "+" in text:
        return [parse_value(part) for part in text.split("+")]
    return {"true": True, "false": False, "none": None}.get(text.lower(), text)


def parse_models(text: str | None, default: tuple[str, ...] = CLASSIC_MODELS) -> list[ModelSpec]:
    specs = []
    for part in (text.split(",") if text else default):
        name, *kvs = part.strip().split(":")
        cls = model_class(name)
        params = {}
        for kv in kvs:
            k, sep, v = kv.partition("=")
            if not sep:
                raise InputError(f"bad model parameter {kv!r} in {part!r}; use name:key=value")
            params[k] = parse_value(v)
        try:
            cls(**params)
        except Exception as exc:  # pydantic ValidationError
            raise InputError(f"bad parameters for {name}: {str(exc).splitlines()[0]}") from None
        specs.append(ModelSpec(name, params))
    return specs


def default_split_date(con: duckdb.DuckDBPyConnection) -> dt.datetime:
    """The day at which 80 % of purchase baskets lie before (a time split when none is given); the moment itself
    when the baskets' first day would leave none before it (data of a single day)."""
    row = con.execute("""SELECT quantile_disc(ts, 0.8), min(ts) FROM (SELECT min(ts) AS ts FROM events
                         WHERE event = 'purchase' AND basket_id IS NOT NULL AND ts IS NOT NULL GROUP BY basket_id)""").fetchall()[0]
    if row is None or row[0] is None:
        raise InputError("the data has no timestamps: give a task that needs none (next-item)")
    day = dt.datetime.combine(row[0].date(), dt.time())
    return day if day > row[1] else row[0]


def build_task(con: duckdb.DuckDBPyConnection, task: str, split_date: dt.datetime | None, n_queries: int,
               seed: int, validation: bool = False) -> protocols.Task:
    """The test task, or with `validation` the task cut from the training period for tuning."""
    if task == "next-item":
        return protocols.next_item(con, holdout=2 if validation else 1, n_queries=n_queries, seed=seed,
                                   name=task + ("-validation" if validation else ""))
    split = split_date or default_split_date(con)
    if task == "basket-completion":
        if validation:
            return protocols.basket_completion(con, split - dt.timedelta(days=VALIDATION_DAYS), n_queries=n_queries,
                                               seed=seed, test_until=split, name=task + "-validation")
        return protocols.basket_completion(con, split, n_queries=n_queries, seed=seed)
    if task == "cold-start":
        if validation:
            return protocols.cold_start(con, split - dt.timedelta(days=VALIDATION_DAYS), n_queries=n_queries,
                                        seed=seed, test_until=split, name=task + "-validation")
        return protocols.cold_start(con, split, n_queries=n_queries, seed=seed)
    if task == "next-basket":
        if validation:
            raise InputError("--tune is not available for next-basket yet; tune on basket-completion")
        return protocols.next_basket(con, split, n_queries=n_queries, seed=seed)
    raise InputError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")


def run_evaluation(store_path: str, task: str, specs: list[ModelSpec], *, split_date: str | None = None,
                   n_queries: int = 5000, seed: int = 0, do_tune: bool = False, sampled_negatives: int | None = None,
                   progress: Callable[[str], None] | None = None) -> tuple[list[dict[str, Any]], dict[str, Recommender]]:
    """Evaluate every spec on the task; returns leaderboard rows (best first) and the fitted models."""
    say = progress or (lambda _m: None)
    split = protocols._parse_date(split_date) if split_date else None
    with duckdb.connect(str(store_path), read_only=True) as con:
        say(f"building task {task}")
        test = build_task(con, task, split, n_queries, seed)
        val = build_task(con, task, split, n_queries, seed, validation=True) if do_tune else None
    rows, fitted = [], {}
    for spec in specs:
        params = dict(spec.params)
        if val is not None:
            say(f"tuning {spec.name} on the validation split")
            params, _ = tune(spec.name, val, params)
        say(f"fitting and scoring {spec.name}")
        model = create_store_model(spec.name, store_path, **params)
        row = evaluate_model(model, test, sampled_negatives=sampled_negatives, per_query=True)
        row["label"] = ModelSpec(spec.name, params).label if (params or do_tune) else spec.name
        row["tuned"] = do_tune
        rows.append(row)
        fitted[row["label"]] = model
    rows.sort(key=lambda r: -r["NDCG@10"])
    compare_to_best(rows, test.query_groups)
    return rows, fitted


VS_BEST = ("NDCG@10_vs_best", "NDCG@10_vs_best_low", "NDCG@10_vs_best_high")
"""A leaderboard row's NDCG@10 over its run's leader (`NDCG@10_vs_best_of`: that leader's label and NDCG@10)."""


def compare_to_best(rows: list[dict[str, Any]], groups: np.ndarray | None = None) -> None:
    """Each row's NDCG@10 over the best row's, with a 95 % paired bootstrap interval (over the task's customers
    when `groups` names them, else over queries), so the leaderboard says which models the test cannot tell
    from the leader; then drops the per-query values. Each row names the leader it was compared with, so that a
    leaderboard gathered from several runs can tell which ratios still refer to its own leader."""
    if not rows:
        return
    best = rows[0]["per_query"]["NDCG@10"]
    leader = {"label": rows[0].get("label", rows[0]["model"]), "NDCG@10": rows[0]["NDCG@10"]}
    for r in rows:
        values = r.pop("per_query")["NDCG@10"]
        ratio = ratio_interval(values, best, groups=groups) if best.any() else (None, None, None)
        r.update(zip(VS_BEST, (None if v is None else round(v, 4) for v in ratio)))
        r["NDCG@10_vs_best_of"] = dict(leader)
