"""A store without orders (reviews, ratings, views: Amazon Beauty): what goes together is what the same customer
bought, as the analysis mines it. The service counts customers where a store with orders counts baskets, in its
numbers, its best sellers and the words of its reasons, and posted events join their customer's items."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from itemaffinity.analysis import mine_tables
from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import create_model
from itemaffinity.service import queries
from itemaffinity.service.online import OnlineState, PostedEvent
from itemaffinity.service.queries import ItemFilter
from itemaffinity.service.snapshot import build_snapshot

USERS = 3000


@pytest.fixture(scope="module")
def beauty(tmp_path_factory, shared_file):
    """The reviews of Amazon Beauty's first 3,000 customers, with the catalog's titles."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    folder = tmp_path_factory.mktemp("beauty")
    t = pq.read_table(shared_file("amazon_beauty", "interactions.parquet"))
    t = t.filter(pc.less(t["user_id"], USERS + 1))
    pq.write_table(t, folder / "interactions.parquet")
    store = folder / "beauty.duckdb"
    ingest_file(str(folder / "interactions.parquet"), resolve_mapping("amazon-beauty"), store,
                str(shared_file("amazon_beauty", "items.parquet")))
    data = InteractionData.from_store(store)
    mine_tables(str(store), data)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"itemknn": create_model("itemknn").fit(data)})
    pairs = t.select(["user_id", "item_id"]).to_pandas().drop_duplicates()
    return snap, pairs


def test_counts_are_of_customers(beauty):
    snap, pairs = beauty
    assert snap.data.n_baskets == 0 and snap.unit == "customer"
    assert snap.n_transactions == pairs.user_id.nunique() == USERS
    customers = pairs.groupby("item_id").user_id.nunique()
    by_id = customers.reindex([int(i) for i in snap.data.items.ids]).fillna(0).to_numpy()
    assert np.array_equal(snap.item_transactions, by_id)
    best = snap.data.items.id(int(snap.popularity_order[0]))  # not the first id in string order
    assert int(best) == customers.idxmax() and best != min(snap.data.items.ids)
    online, plain = OnlineState(snap), ItemFilter()
    fallback = queries.recommend(snap, online, model="itemknn", n=3, filt=plain, explain=True, history=["nope"])
    assert fallback["fallback"] == "popular" and fallback["items"][0]["item_id"] == best
    assert f"({customers.max():,} customers)" in fallback["items"][0]["evidence"]["reason"]


def test_similar_and_bought_together_tell_the_same_counts(beauty):
    snap, pairs = beauty
    online, plain = OnlineState(snap), ItemFilter()
    a = snap.data.items.id(int(snap.popularity_order[0]))
    together = queries.bought_together(snap, online, a, n=5, filt=plain, explain=True)
    assert together["items"] and together["baskets"] == USERS
    partner = together["items"][0]
    b = partner["item_id"]
    shared = len(set(pairs.user_id[pairs.item_id == int(a)]) & set(pairs.user_id[pairs.item_id == int(b)]))
    assert partner["evidence"]["co_count"] == shared >= 2
    assert partner["evidence"]["reason"].startswith(f"Both bought by {shared:,} customers: ")
    buyers = pairs.groupby("item_id").user_id.apply(set)
    similar = queries.similar(snap, online, a, model="itemknn", n=20, filt=plain, explain=True)["items"]
    assert len(similar) == 20
    for r in similar:  # the customers of both, as bought-together counts them; a best seller is never "not bought yet"
        ev = r["evidence"]
        assert ev["co_count"] == len(buyers[int(a)] & buyers[int(r["item_id"])])
        assert "not been bought" not in ev["reason"] and "basket" not in ev["reason"]
    assert any(r["evidence"]["co_count"] for r in similar)
    assert queries.item_detail(snap, online, a)["stats"]["baskets"] == snap.item_transactions[snap.item_index(a)]


def test_a_posted_event_joins_its_customers_items(beauty):
    snap, pairs = beauty
    online = OnlineState(snap)
    user = int(pairs.user_id.iloc[0])
    had = set(pairs.item_id[pairs.user_id == user])
    new = next(i for i in snap.data.items.ids if int(i) not in had)
    n_new = snap.item_index(new)
    before = {i: online.co_row(n_new)[snap.item_index(str(i))] for i in had}
    online.fold([PostedEvent(run_id=1, user_id=str(user), item_id=new, event="purchase", basket_id=None)])
    assert online.n_transactions == USERS  # a known customer: no new transaction
    assert online.item_transactions(n_new) == snap.item_transactions[n_new] + 1
    assert all(online.co_row(n_new)[snap.item_index(str(i))] == before[i] + 1 for i in had)
    online.fold([PostedEvent(run_id=2, user_id="new-customer", item_id=new, event="purchase", basket_id=None)])
    assert online.n_transactions == USERS + 1
