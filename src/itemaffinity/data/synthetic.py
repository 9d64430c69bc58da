"""Small synthetic event logs with planted associations, for unit tests with a known answer.

Items are `i000`, `i001`, …; users `u000`, …. Each basket draws a few random items by a Zipf-like
popularity; with probability `p_planted` it also contains one planted group whole (e.g. the pair
`i001`+`i002`), so the planted groups are the strongest associations by lift.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa


def synthetic_events(n_baskets: int = 400, n_items: int = 40, n_users: int = 60,
                     planted: tuple[tuple[int, ...], ...] = ((1, 2), (3, 4, 5)), p_planted: float = 0.3,
                     basket_size: int = 3, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """Purchase events and a catalog with planted item groups.

    Args:
        n_baskets, n_items, n_users: sizes.
        planted: groups of item indices bought together.
        p_planted: chance that a basket contains one planted group.
        basket_size: random items per basket (before the planted group).
        seed: random seed; the same arguments always give the same data.

    Returns:
        (events, catalog): events with columns basket_id, user_id, item_id, event, ts; the catalog
        with item_id, title, category (one category per planted group, "other" for the rest), price.
    """
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_items + 1) ** 0.8
    pop /= pop.sum()
    start = dt.datetime(2024, 1, 1)
    rows: dict[str, list] = {"basket_id": [], "user_id": [], "item_id": [], "event": [], "ts": []}
    for b in range(n_baskets):
        items = set(rng.choice(n_items, size=basket_size, replace=False, p=pop).tolist())
        if planted and rng.random() < p_planted:
            items |= set(planted[rng.integers(len(planted))])
        user = f"u{rng.integers(n_users):03d}"
        ts = start + dt.timedelta(hours=int(b))
        for i in sorted(items):
            rows["basket_id"].append(f"b{b:05d}")
            rows["user_id"].append(user)
            rows["item_id"].append(f"i{i:03d}")
            rows["event"].append("purchase")
            rows["ts"].append(ts)
    events = pa.table(rows)
    group_of = {i: g for g, grp in enumerate(planted) for i in grp}
    catalog = pa.table({
        "item_id": [f"i{i:03d}" for i in range(n_items)],
        "title": [f"product {i}" + (f" of set {group_of[i]}" if i in group_of else "") for i in range(n_items)],
        "category": [f"set {group_of[i]}" if i in group_of else "other" for i in range(n_items)],
        "price": [float(1 + i % 7) for i in range(n_items)],
    })
    return events, catalog
