"""InteractionData built from a real store: frozen, consistent shapes, weights, decay, time windows."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
import scipy.sparse as sp

from itemaffinity.data.interactions import InteractionData, sequence_windows

EVENTS = """\
who,what,did,when,basket
u1,a,view,2024-01-10 10:00:00,
u1,b,fav,2024-01-10 10:01:00,
u1,c,cart,2024-01-10 10:02:00,
u1,d,purchase,2024-01-10 10:03:00,k1
u1,d,purchase,2024-01-12 09:00:00,k2
u1,e,purchase,2024-01-12 09:00:00,k2
u1,e,return,2024-01-13 09:00:00,r1
u2,a,purchase,2024-01-20 12:00:00,k3
u2,a,click,2024-01-20 12:01:00,
u2,a,view,2024-01-20 12:02:00,
,e,purchase,2024-01-21 08:00:00,k4
,a,purchase,2024-01-21 08:00:00,k4
"""
COLS = ["user_id=who", "item_id=what", "event=did", "ts=when", "basket_id=basket"]


@pytest.fixture
def store(write, ingest, tmp_path):
    catalog = write("products.csv", "item_id,title,category,price\na,Apple,Fruit > Pome,0.5\n"
                                    "e,Eggs,Dairy,2.0\nz,Zucchini,Veg,1.0\n")
    res = ingest(write("events.csv", EVENTS), cols=COLS, catalog=catalog)
    assert (res.accepted, res.rejected) == (12, {})
    return tmp_path / "store.duckdb"


@pytest.fixture
def data(store) -> InteractionData:
    return InteractionData.from_store(store)


def _weights(data: InteractionData, user: str) -> dict[str, float]:
    row = data.user_items[data.users.index(user)]
    return {data.items.id(int(i)): float(w) for i, w in zip(row.indices, row.data)}


def test_is_frozen(data):
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.user_items = None
    arrays = [v for v in vars(data).values() if isinstance(v, np.ndarray)]
    assert len(arrays) >= 15
    for m in (data.basket_items, data.user_items):
        arrays += [m.data, m.indices, m.indptr]
    arrays += [data.items.ids, data.users.ids, data.baskets.ids]
    for a in arrays:
        assert not a.flags.writeable
    with pytest.raises(ValueError):
        data.user_items.data[0] = 99.0
    with pytest.raises(ValueError):
        data.seq_items[0] = 0


def test_shapes_match_the_vocabularies(data):
    # Items: every item with events plus catalog-only `z`; users: the two named ones.
    assert data.items.ids.tolist() == ["a", "b", "c", "d", "e", "z"]
    assert data.users.ids.tolist() == ["u1", "u2"]
    assert data.baskets.ids.tolist() == ["k1", "k2", "k3", "k4"]  # by time; the return r1 is no basket
    assert isinstance(data.basket_items, sp.csr_matrix) and isinstance(data.user_items, sp.csr_matrix)
    assert data.basket_items.shape == (data.n_baskets, data.n_items)
    assert data.user_items.shape == (data.n_users, data.n_items)
    assert data.basket_items.dtype == np.float32 and data.user_items.dtype == np.float32
    for a in (data.basket_user, data.basket_ts):
        assert a.shape == (data.n_baskets,)
    for a in (data.item_baskets, data.item_users, data.item_events, data.item_returns, data.item_first_seen,
              data.item_last_seen, data.titles, data.categories, data.brands, data.prices):
        assert a.shape == (data.n_items,)
    assert data.seq_indptr.shape == (data.n_users + 1,)
    assert data.seq_indptr[-1] == len(data.seq_items) == len(data.seq_ts)
    assert data.seq_items.max() < data.n_items


def test_baskets_items_and_users(data):
    idx = data.items.index
    basket = lambda b: sorted(data.items.ids_of(data.basket_items[data.baskets.index(b)].indices))  # noqa: E731
    assert basket("k2") == ["d", "e"] and basket("k4") == ["a", "e"]
    assert data.basket_items.data.tolist() == [1.0] * data.basket_items.nnz
    assert data.basket_user.tolist() == [0, 0, 1, -1]
    assert data.item_baskets[idx("a")] == 2 and data.item_baskets[idx("d")] == 2
    assert data.item_returns[idx("e")] == 1 and data.item_returns[idx("a")] == 0
    assert data.item_events[idx("a")] == 5 and data.item_events[idx("z")] == 0
    assert data.titles[idx("a")] == "Apple" and data.categories[idx("a")] == "Fruit > Pome"
    assert data.title(idx("z")) == "Zucchini" and data.titles[idx("b")] is None
    assert data.prices[idx("e")] == 2.0
    assert data.item_first_seen[idx("a")] == np.datetime64("2024-01-10T10:00:00")
    assert data.item_last_seen[idx("a")] == np.datetime64("2024-01-21T08:00:00")


def test_line_positions_follow_the_file_and_give_neighbouring_pairs(data):
    ids = lambda a: list(data.items.ids_of(a))  # noqa: E731
    k4 = data.basket_lines[data.baskets.index("k4")]
    assert dict(zip(ids(k4.indices), k4.data.tolist())) == {"e": 1.0, "a": 2.0}, "k4 lists e, then a"
    assert (data.basket_lines > 0).toarray().tolist() == (data.basket_items > 0).toarray().tolist()
    a, b, dist = data.adjacent_pairs(1)
    assert sorted(zip(ids(a), ids(b))) == [("d", "e"), ("e", "a")] and dist.tolist() == [1, 1]
    assert len(data.adjacent_pairs(3)[0]) == 2, "no basket has items three lines apart"
    sub = data.restrict(np.array([False, True, False, False]), np.ones(len(data.seq_items), bool))
    assert list(zip(*[ids(x) for x in sub.adjacent_pairs(1)[:2]])) == [("d", "e")], "only k2 is kept"


def test_sequence_windows_are_runs_of_neighbouring_places():
    owners = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
    items = np.array([0, 1, 2, 3, 4, 5, 6, 7, 6])
    win = sequence_windows(owners, items, 3, 8)
    assert [sorted(win[r].indices.tolist()) for r in range(win.shape[0])] == [
        [0, 1, 2], [1, 2, 3], [4, 5], [6, 7]], "a short run is one window; a repeat counts once"
    assert win.data.tolist() == [1.0] * win.nnz
    assert sequence_windows(owners[:0], items[:0], 3, 8).shape == (0, 8)


def test_line_windows_follow_each_order(data):
    ids = lambda a: list(data.items.ids_of(a))  # noqa: E731
    win = data.line_windows(2)
    baskets = {tuple(sorted(ids(win[r].indices))) for r in range(win.shape[0])}
    assert ("a", "e") in baskets and ("d", "e") in baskets


def test_user_weights_follow_event_weights_and_returns_cancel(data):
    # view 1, fav 2, cart 3, purchase 4 (twice: 8); e bought once and returned: gone.
    assert _weights(data, "u1") == {"a": 1.0, "b": 2.0, "c": 3.0, "d": 8.0}
    # purchase 4 + click 1 + view 1.
    assert _weights(data, "u2") == {"a": 6.0}


def test_custom_event_weights(store):
    data = InteractionData.from_store(store, event_weights={"view": 0.5, "purchase": 10.0})
    # The return now cancels a purchase of weight 10.
    assert _weights(data, "u1") == {"a": 0.5, "b": 2.0, "c": 3.0, "d": 20.0}
    assert data.event_weights["purchase"] == 10.0 and data.event_weights["cart"] == 3.0


def test_sequences_are_chronological_without_returns(data):
    u1 = data.items.ids_of(data.sequence(data.users.index("u1")))
    assert u1 == ["a", "b", "c", "d", "d", "e"]
    assert np.all(np.diff(data.seq_ts[data.seq_indptr[0]:data.seq_indptr[1]]).astype(int) >= 0)
    assert data.items.ids_of(data.sequence(data.users.index("u2"))) == ["a", "a", "a"]


def test_recency_history_weights_each_item_by_its_latest_position(data):
    hist = data.recency_history(0.5)
    row = hist[data.users.index("u1")]
    got = {data.items.id(int(i)): float(w) for i, w in zip(row.indices, row.data)}
    # u1's sequence a b c d d e: e is last, d's latest occurrence is one event earlier.
    assert got == {"e": 1.0, "d": 0.5, "c": 0.125, "b": 0.0625, "a": 0.03125}
    u2 = hist[data.users.index("u2")]
    assert u2.nnz == 1 and float(u2.data[0]) == 1.0
    flat = data.recency_history(1.0)
    assert set(flat.data) == {1.0} and flat.nnz == sum(len(set(data.sequence(u))) for u in range(data.n_users))


def test_half_life_halves_a_weight_one_half_life_older(write, ingest, tmp_path):
    ingest(write("d.csv", "who,what,when\n"
                          "u1,new,2024-03-31 00:00:00\n"
                          "u1,old,2024-03-21 00:00:00\n"
                          "u1,older,2024-03-11 00:00:00\n"
                          "u2,half,2024-03-26 00:00:00\n"), cols=["user_id=who", "item_id=what", "ts=when"])
    store = tmp_path / "store.duckdb"
    data = InteractionData.from_store(store, half_life_days=10)
    assert data.half_life_days == 10
    w = _weights(data, "u1")
    assert w["new"] == pytest.approx(4.0)
    assert w["old"] == pytest.approx(2.0)
    assert w["older"] == pytest.approx(1.0)
    assert _weights(data, "u2")["half"] == pytest.approx(4.0 * 0.5 ** 0.5)
    assert _weights(InteractionData.from_store(store), "u1") == {"new": 4.0, "old": 4.0, "older": 4.0}


def test_since_until_window(store):
    data = InteractionData.from_store(store, since=dt.datetime(2024, 1, 12), until=dt.datetime(2024, 1, 21))
    # Kept: u1's Jan 12 purchases and Jan 13 return, u2's Jan 20 events; not Jan 10, not Jan 21 (until is exclusive).
    assert data.baskets.ids.tolist() == ["k2", "k3"]
    assert _weights(data, "u1") == {"d": 4.0}
    assert _weights(data, "u2") == {"a": 6.0}
    # Catalog items stay in the vocabulary without events in the window; other items go.
    assert data.items.ids.tolist() == ["a", "d", "e", "z"]
    assert data.item_events[data.items.index("e")] == 1 and data.item_returns[data.items.index("e")] == 1
    assert data.item_events[data.items.index("z")] == 0

    only_until = InteractionData.from_store(store, until=dt.datetime(2024, 1, 11))
    assert only_until.users.ids.tolist() == ["u1"] and only_until.baskets.ids.tolist() == ["k1"]
    only_since = InteractionData.from_store(store, since=dt.datetime(2024, 1, 21))
    assert only_since.n_users == 0 and only_since.baskets.ids.tolist() == ["k4"]


def test_window_drops_rows_without_time(write, ingest, tmp_path):
    ingest(write("n.csv", "who,what\nu1,a\nu1,b\n"), cols=["user_id=who", "item_id=what"])
    store = tmp_path / "store.duckdb"
    assert InteractionData.from_store(store).user_items.nnz == 2
    windowed = InteractionData.from_store(store, since=dt.datetime(2000, 1, 1))
    assert windowed.user_items.nnz == 0 and windowed.n_users == 0
