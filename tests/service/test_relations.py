"""The relation filter labels a model's whole ranking at once, as the evidence labels each pair of it."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import numpy as np

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import create_model
from itemaffinity.models.explain import RELATION_SCAN
from itemaffinity.service import queries
from itemaffinity.service.online import OnlineState, PostedEvent
from itemaffinity.service.snapshot import build_snapshot


def test_a_ranking_gets_the_relations_its_pairs_get_one_by_one(store):
    """Online Retail's best seller and the 2,000 items itemknn finds most similar to it (what a relation filter walks
    for a rare relation): the batch labels equal `_pair_facts`' label of each pair, with a shared category, and after
    posted baskets make one of its substitutes a complement."""
    data = InteractionData.from_store(store.path)
    model = create_model("itemknn").fit(data)
    with duckdb.connect(str(store.path), read_only=True) as con:
        snap = build_snapshot(con, str(store.path), version=1, models={"itemknn": model})
    online = OnlineState(snap)
    a = int(np.argmax(snap.item_transactions))
    ranking = model.similar_items([data.items.id(a)], n=RELATION_SCAN)[0]
    b = data.items.indices(ranking.item_ids)
    assert len(b) == RELATION_SCAN and (b >= 0).all()

    def one_by_one() -> list[str]:
        return [queries._pair_facts(snap, online, a, int(j))[3] for j in b]

    def labels(snapshot) -> list[str]:  # the batch labels, chunk after chunk
        return np.concatenate(list(queries._relations_to(snapshot, online, a, b))).tolist()

    before = one_by_one()
    assert labels(snap) == before
    assert set(before) == {"complement", "substitute", "related"}

    assert all(c is None for c in snap.data.categories)  # Online Retail has none
    cats = snap.data.categories.copy()  # a category shared by the item and half its ranking
    cats[a], cats[b[::2]] = "mugs", "mugs"
    with_category = replace(snap, data=replace(snap.data, categories=cats))
    shared = [queries._pair_facts(with_category, online, a, int(j))[3] for j in b]
    assert labels(with_category) == shared
    assert shared.count("substitute") > before.count("substitute"), "the same category and no lift: a substitute"

    substitute = int(b[before.index("substitute")])
    online.fold(PostedEvent(0, None, data.items.id(i), "purchase", f"posted-{k}")
                for k in range(200) for i in (a, substitute))
    after = one_by_one()
    assert after[before.index("substitute")] == "complement"
    assert labels(snap) == after
