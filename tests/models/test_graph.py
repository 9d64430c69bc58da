"""LightGCN on small synthetic data: planted co-purchases come first, the contract, the graph."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from itemaffinity.data.interactions import InteractionData  # noqa: E402
from itemaffinity.data.synthetic import synthetic_events  # noqa: E402
from itemaffinity.models import create_model, load_model  # noqa: E402
from itemaffinity.models.graph import LightGCN, normalized_adjacency  # noqa: E402

SMALL = {"factors": 16, "layers": 2, "epochs": 40, "batch_size": 1024, "lr": 0.05}


@pytest.fixture(scope="module")
def planted() -> InteractionData:
    events, catalog = synthetic_events(n_baskets=600, n_items=40, n_users=60, p_planted=0.4, seed=0)
    return InteractionData.from_tables(events, catalog)


@pytest.fixture(scope="module")
def by_baskets(planted: InteractionData) -> LightGCN:
    return LightGCN(**SMALL, graph="baskets").fit(planted)


def test_normalized_adjacency_matches_the_formula() -> None:
    r = np.array([[1, 1, 0], [0, 1, 0]], dtype=np.float32)
    a = np.block([[np.zeros((2, 2)), r], [r.T, np.zeros((3, 3))]])
    deg = a.sum(axis=1)
    inv = np.where(deg > 0, deg, 1.0) ** -0.5 * (deg > 0)  # item 2 has no edge: a zero row
    expected = inv[:, None] * a * inv[None, :]
    assert np.allclose(normalized_adjacency(r).toarray(), expected)


def _rank_of(recs_ids: tuple[str, ...], item: str) -> int:
    return recs_ids.index(item) if item in recs_ids else len(recs_ids)


def test_planted_partners_rank_above_random_items(by_baskets: LightGCN, planted: InteractionData) -> None:
    # i001+i002 and i003+i004+i005 are bought together far more often than chance.
    sims = by_baskets.similar_items(["i002", "i004"], n=planted.n_items - 1)
    assert _rank_of(sims[0].item_ids, "i001") < 3
    assert max(_rank_of(sims[1].item_ids, "i003"), _rank_of(sims[1].item_ids, "i005")) < 4
    recs = by_baskets.recommend(basket=["i003", "i004"], n=3)
    assert "i005" in recs.item_ids


def test_user_graph_and_contract(planted: InteractionData, by_baskets: LightGCN, tmp_path) -> None:
    model = create_model("graph", **SMALL).fit(planted)
    assert model.row_vectors_.shape == (planted.n_users, SMALL["factors"])
    assert by_baskets.row_vectors_.shape == (planted.n_baskets, SMALL["factors"])
    user = planted.users.id(0)
    seen = set(planted.items.ids_of(planted.user_items[0].indices))
    for m in (model, by_baskets):
        recs = m.recommend(user, n=5)
        assert len(recs) == 5 and not seen & set(recs.item_ids)
        assert np.all(np.diff(recs.scores) <= 1e-6)
        m.save(tmp_path / m.config.graph)
        loaded = load_model(tmp_path / m.config.graph)
        assert isinstance(loaded, LightGCN)
        again = loaded.recommend(user, n=5)
        assert again.item_ids == recs.item_ids and np.array_equal(again.scores, recs.scores)
        basket = ["i001", "i010"]
        assert loaded.recommend(basket=basket, n=5).item_ids == m.recommend(basket=basket, n=5).item_ids
        assert loaded.similar_items(["i002"], n=5)[0].item_ids == m.similar_items(["i002"], n=5)[0].item_ids


def test_deterministic_with_a_seed(planted: InteractionData) -> None:
    fit = lambda seed: LightGCN(**{**SMALL, "epochs": 3}, seed=seed).fit(planted)  # noqa: E731
    a, b, c = fit(1), fit(1), fit(2)
    assert np.array_equal(a.item_vectors_, b.item_vectors_)
    assert not np.array_equal(a.item_vectors_, c.item_vectors_)
