"""A product nobody has bought yet (in the catalog, not in any basket): the service's answers for it come from its
text, and say so."""

from __future__ import annotations

import math

import duckdb
import numpy as np

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import create_model
from itemaffinity.service import queries
from itemaffinity.service.online import OnlineState
from itemaffinity.service.queries import ItemFilter
from itemaffinity.service.snapshot import build_snapshot

NEW = {"z1": "enamel camping kettle green", "z2": "enamel camping kettle green large", "z3": "linen apron"}


def test_a_new_product_is_completed_and_explained_by_its_name(write, ingest, tmp_path):
    rng = np.random.default_rng(0)
    rows = ["order,sku,title"]
    for b in range(300):  # two halves of 10 widgets each, bought together within their half
        rows += [f"o{b},w{k + 10 * (b % 2):02d},widget {k + 10 * (b % 2)}" for k in rng.choice(10, 3, replace=False)]
    catalog = write("catalog.csv", "item_id,title\n" + "".join(f"{i},{t}\n" for i, t in NEW.items()))
    store = tmp_path / "shop.duckdb"
    ingest(write("orders.csv", "\n".join(rows) + "\n"), cols=["basket_id=order", "item_id=sku"], catalog=catalog,
           store=store)
    data = InteractionData.from_store(store)
    hybrid = create_model("hybrid", components=("ease", "itemknn"), n_candidates=5, validation="random",
                          validation_slices=1, validation_share=0.3, n_estimators=20, text_model=None).fit(data)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"hybrid": hybrid})
    online = OnlineState(snap)

    basket = queries.recommend(snap, online, model="hybrid", n=2, filt=ItemFilter(), explain=True, history=["z1"],
                               mode="basket")
    first = basket["items"][0]
    assert first["item_id"] == "z2" and first["evidence"]["text_similarity"] >= 0.5
    assert "its name is like enamel camping kettle green (z1)'s" in first["evidence"]["reason"]

    similar = queries.similar(snap, online, "z1", model="hybrid", n=2, filt=ItemFilter(), explain=True,
                              relation="substitute")
    assert [i["item_id"] for i in similar["items"]][:1] == ["z2"], "a look-alike nobody has bought: a substitute"
    assert math.isnan(similar["items"][0]["evidence"]["lift"]), "the lift of products never bought is undefined"
    assert "enamel camping kettle green has not been bought yet, so the answer comes from its text and category " \
           "(text similarity" in similar["items"][0]["evidence"]["reason"]


def test_a_text_models_answers_for_a_new_product_say_they_come_from_text(ingest, shared_file, tmp_path):
    """Instacart's Crystal Pacifier is in none of the sample's baskets: every product the tfidf model completes its
    basket with is ranked by text, also those whose names are less alike than a substitute's (all but the first), and
    the reason says so instead of claiming links through other products or shoppers."""
    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    data = InteractionData.from_store(store)
    tfidf = create_model("tfidf").fit(data)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"tfidf": tfidf})
    basket = queries.recommend(snap, OnlineState(snap), model="tfidf", n=5, filt=ItemFilter(), explain=True,
                               history=["44203"], mode="basket")
    evidence = [r["evidence"] for r in basket["items"]]
    assert len(evidence) == 5 and not basket["fallback"]
    assert all(ev["reason"].startswith("No item in the basket was bought with it yet; the tfidf model ranks products "
                                       "by how alike their texts are, and its name is most like Crystal Pacifier "
                                       "(44203)'s (text similarity") for ev in evidence)
    assert [ev["text_similarity"] < 0.5 for ev in evidence] == [False, True, True, True, True]


def test_a_co_purchase_models_answer_for_a_new_product_is_the_best_sellers_and_says_so(ingest, shared_file, tmp_path):
    """EASE has no score for Crystal Pacifier, in none of Instacart's sample baskets: its basket is completed with the
    best sellers, flagged as the fallback and explained as such (it was a list of zero-score products presented as
    EASE's), and EASE finds nothing similar to it."""
    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    ease = create_model("ease").fit(InteractionData.from_store(store))
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"ease": ease})
    online = OnlineState(snap)
    basket = queries.recommend(snap, online, model="ease", n=3, filt=ItemFilter(), explain=True, history=["44203"],
                               mode="basket")
    assert basket["fallback"] == "popular" and basket["history_size"] == 1
    assert [r["title"] for r in basket["items"]] == ["Banana", "Bag of Organic Bananas", "Organic Strawberries"]
    assert basket["items"][0]["evidence"]["reason"] == ("The ease model has nothing to go on for the items in this "
                                                        "basket yet, so this is one of the most bought products "
                                                        "(139 baskets).")
    similar = queries.similar(snap, online, "44203", model="ease", n=3, filt=ItemFilter(), explain=True)
    assert similar["items"] == [] and similar["note"] == (
        "the ease model has nothing similar to it: it has no score for a product never bought; the content and "
        "hybrid models answer from its text")
