"""lineknn and ease:lines: item neighbours from neighbouring lines of an order, not from anywhere in it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.registry import create_model


def _orders() -> InteractionData:
    # Every order lists x, y, three fillers, then z: x and y are always next to each other, x and z
    # never, but all three share every basket, so basket co-occurrence cannot tell y from z.
    rows: dict[str, list[str]] = {"basket_id": [], "item_id": []}
    for b in range(6):
        for item in ["x", "y", f"f{b}a", f"f{b}b", f"f{b}c", "z"]:
            rows["basket_id"].append(f"o{b}")
            rows["item_id"].append(item)
    return InteractionData.from_tables(pa.table(rows))


def test_neighbouring_lines_link_items_that_the_basket_cannot_tell_apart() -> None:
    data = _orders()
    basket = create_model("itemknn", weighting="none").fit(data).similar_items(["x"], n=10)[0]
    lines = create_model("lineknn").fit(data).similar_items(["x"], n=10)[0]
    by_basket = dict(zip(basket.item_ids, basket.scores))
    assert by_basket["y"] == by_basket["z"]
    assert lines.item_ids[0] == "y" and "z" not in lines.item_ids
    wider = create_model("lineknn", window=5).fit(data).similar_items(["x"], n=10)[0]
    scores = dict(zip(wider.item_ids, wider.scores))
    assert scores["y"] > scores["z"] > 0, "a pair five lines apart counts, weighted 1 / 5"


def test_ease_with_line_windows_prefers_the_neighbouring_line() -> None:
    data = _orders()
    x, y, z = (data.items.index(i) for i in "xyz")
    plain = create_model("ease", lam=1.0).fit(data).weights_
    lines = create_model("ease", lam=1.0, lines=2, line_weight=1.0).fit(data).weights_
    assert abs(plain[x, y] - plain[x, z]) < 1e-6, "over whole baskets y and z are alike to x"
    assert lines[x, y] > lines[x, z] + 0.01


def test_without_orders_neighbouring_events_of_a_history_count() -> None:
    # No basket ids: each user's history, in time order, takes the place of an order's lines.
    rows: dict[str, list] = {"user_id": [], "item_id": [], "ts": []}
    for u in range(6):
        for k, item in enumerate(["x", "y", f"f{u}a", f"f{u}b", "z"]):
            rows["user_id"].append(f"u{u}")
            rows["item_id"].append(item)
            rows["ts"].append(dt.datetime(2024, 1, 1 + u, k))
    data = InteractionData.from_tables(pa.table(rows))
    assert data.n_baskets == 0
    lines = create_model("lineknn").fit(data).similar_items(["x"], n=10)[0]
    assert lines.item_ids[0] == "y" and "z" not in lines.item_ids
