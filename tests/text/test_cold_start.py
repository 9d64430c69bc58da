"""Content models on the real cold-start task (Online Retail, split 2011-10-01): slow."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from itemaffinity.evaluation.experiment import build_task
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.models import create_model


@pytest.mark.slow
def test_content_models_rank_cold_items(or_store, sentence_model) -> None:
    store, _ = or_store
    with duckdb.connect(str(store), read_only=True) as con:
        task = build_task(con, "cold-start", dt.datetime(2011, 10, 1), 1000, 0)
    random_hr = 10 / task.info["cold_items"]
    row = evaluate_model(create_model("popularity"), task)
    popularity = row["HR@10"]
    assert "popularity_thirds" not in row  # no held-out item sold before the split: no thirds by popularity
    for name in ("tfidf", "content"):
        hr = evaluate_model(create_model(name, aggregate="max"), task)["HR@10"]
        assert hr > 3 * random_hr and hr > 3 * popularity, (name, hr, random_hr, popularity)
