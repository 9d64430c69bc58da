"""Complement vs substitute on real baskets (the Instacart sample, with its aisles as categories)."""

from __future__ import annotations

import numpy as np

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.explain import Explainer, text_vectors


def test_a_substitute_is_alike_and_bought_together_no_more_than_chance(ingest, shared_file, tmp_path) -> None:
    """Bananas go with the other fruit of their aisle that baskets hold above chance (strawberries: 20 baskets,
    1.7×): related or complements, never substitutes; the fruit of the aisle they are never bought with are."""
    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    data = InteractionData.from_store(store)
    banana = data.items.index("24852")
    assert data.titles[banana] == "Banana"
    aisle = np.flatnonzero((data.categories == data.categories[banana]) & (data.item_baskets > 0))
    aisle = aisle[aisle != banana]
    stats = Explainer(data, text_vectors(data)).pair_stats(banana, aisle)
    above = stats["lift"] > 1
    assert above.sum() >= 10 and (~above).sum() >= 10  # fresh fruit of both kinds
    assert not (stats["relation"][above] == "substitute").any()
    assert (stats["relation"][~above] == "substitute").all()
    strawberries = int(np.flatnonzero(aisle == data.items.index("21137"))[0])
    assert stats["co_count"][strawberries] == 20 and 1.5 < stats["lift"][strawberries] < 2
    assert stats["relation"][strawberries] == "related"
