"""Hybrid fusion: the model contract, a learned ranker at least as good as its parts, save/load."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.synthetic import synthetic_events
from itemaffinity.models import create_model, load_model

COMPONENTS = ("ease", "itemknn", "rules")


@pytest.fixture(scope="module")
def split():
    """Synthetic baskets with planted groups: the first 2,500 to train, the last 500 to test."""
    events, catalog = synthetic_events(n_baskets=3000, n_items=60, planted=((1, 2), (3, 4, 5), (10, 11)),
                                       p_planted=0.5, seed=1)
    train = events.filter(pc.less(events["basket_id"], "b02500"))
    test = events.filter(pc.greater_equal(events["basket_id"], "b02500"))
    baskets: dict[str, list[str]] = {}
    for b, i in zip(test["basket_id"].to_pylist(), test["item_id"].to_pylist()):
        baskets.setdefault(b, []).append(i)
    return InteractionData.from_tables(train, catalog), [v for v in baskets.values() if len(v) >= 2]


@pytest.fixture(scope="module")
def hybrid(split):
    data, _ = split
    return create_model("hybrid", components=COMPONENTS, validation_share=0.3, hidden_per_basket=5,
                        n_estimators=100, component_params={"rules": {"min_support": 0.01}}).fit(data)


def _hit_rate(model, baskets, n=5) -> float:
    rng = np.random.default_rng(0)
    queries, targets = [], []
    for b in baskets:
        h = rng.integers(len(b))
        targets.append(b[h])
        queries.append(b[:h] + b[h + 1:])
    recs = model.recommend_batch(histories=queries, n=n)
    return float(np.mean([t in r.item_ids for t, r in zip(targets, recs)]))


def test_fusion_is_at_least_as_good_as_its_best_component(split, hybrid) -> None:
    data, baskets = split
    best = max(_hit_rate(create_model(c, **({"min_support": 0.01} if c == "rules" else {})).fit(data), baskets)
               for c in COMPONENTS)
    assert _hit_rate(hybrid, baskets) >= best - 0.02


def test_planted_partners_rank_high(hybrid) -> None:
    assert "i002" in hybrid.recommend(basket=["i001"], n=2).item_ids
    assert {"i004", "i005"} <= set(hybrid.recommend(basket=["i003"], n=3).item_ids)


def test_every_query_gets_an_answer(hybrid) -> None:
    assert len(hybrid.recommend(basket=["not-an-item"], n=5)) == 5
    assert len(hybrid.recommend("u001", n=5)) == 5


def test_save_load_round_trip(hybrid, tmp_path) -> None:
    hybrid.save(tmp_path / "hybrid")
    again = load_model(tmp_path / "hybrid")
    a = hybrid.recommend(basket=["i001", "i020"], n=8)
    b = again.recommend(basket=["i001", "i020"], n=8)
    assert a.item_ids == b.item_ids and np.allclose(a.scores, b.scores)
