"""UserKNN over users vs over single past baskets (session KNN): a known answer."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import create_model
from itemaffinity.models.base import query_matrix


def _data() -> InteractionData:
    # Every customer buys {a, b} in one basket and {c, d} in another: a goes with b, not with c or d.
    rows = {"basket_id": [], "user_id": [], "item_id": [], "ts": []}
    for u in range(5):
        for b, items in enumerate((["a", "b"], ["c", "d"])):
            for i in items:
                rows["basket_id"].append(f"u{u}b{b}")
                rows["user_id"].append(f"u{u}")
                rows["item_id"].append(i)
                rows["ts"].append(dt.datetime(2024, 1, 1 + b))
    return InteractionData.from_tables(pa.table(rows))


def test_basket_neighbours_keep_what_was_bought_together() -> None:
    data = _data()
    by_basket = create_model("userknn", neighbours="baskets", k=3).fit(data)
    by_user = create_model("userknn", k=3).fit(data)
    a, b, c, d = data.items.indices(["a", "b", "c", "d"])
    query = query_matrix([[a]], data.n_items)
    basket, user = by_basket.score(query)[0], by_user.score(query)[0]
    # The three nearest baskets are {a, b} baskets (cosine 1/√2); no {c, d} basket shares an item.
    assert np.isclose(basket[b], 3 / np.sqrt(2)) and basket[c] == 0 and basket[d] == 0
    # Each customer's whole history holds a, b, c and d: user neighbours cannot tell b from c.
    assert user[b] > 0 and np.isclose(user[b], user[c]) and np.isclose(user[c], user[d])
    recs = by_basket.recommend(basket=["a"], n=1)
    assert list(recs.item_ids) == ["b"]
