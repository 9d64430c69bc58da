"""A product nobody has bought yet (in the catalog, not in any basket): the service's answers for it come from its
text, and say so."""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pytest

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


def test_a_co_purchase_models_answers_for_a_new_product_are_the_fallbacks_and_say_so(ingest, shared_file, tmp_path):
    """EASE has no score for Crystal Pacifier, in none of Instacart's sample baskets: its basket and its similar
    items come from the cold-start chain (its text; it was a list of zero-score products presented as EASE's),
    flagged and explained as such; a customer with no history gets the chain's last step, the best sellers."""
    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    ease = create_model("ease").fit(InteractionData.from_store(store))
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"ease": ease})
    online = OnlineState(snap)
    basket = queries.recommend(snap, online, model="ease", n=3, filt=ItemFilter(), explain=True, history=["44203"],
                               mode="basket")
    assert basket["fallback"] == "text" and basket["history_size"] == 1
    assert [r["title"] for r in basket["items"]][:2] == ["Start Silicone Pacifier",
                                                          "6-18 Months Natural Shape Orthodontic Silicone Pacifier"]
    assert basket["items"][0]["evidence"]["reason"] == ("The ease model has nothing to go on for the items in this "
                                                        "basket yet, so this is one of the products whose texts are "
                                                        "most like theirs (text search score 0.67).")
    stranger = queries.recommend(snap, online, model="ease", n=3, filt=ItemFilter(), explain=True, user_id="nobody")
    assert stranger["fallback"] == "popular" and stranger["history_size"] == 0
    assert [r["title"] for r in stranger["items"]] == ["Banana", "Bag of Organic Bananas", "Organic Strawberries"]
    assert stranger["items"][0]["evidence"]["reason"] == ("Nothing to go on yet, so this is one of the most bought "
                                                          "products (139 baskets).")
    similar = queries.similar(snap, online, "44203", model="ease", n=3, filt=ItemFilter(), explain=True)
    assert similar["fallback"] == "text" and similar["note"] == (
        "the ease model has nothing on this product: it has no score for a product never bought; shown instead: the "
        "products whose texts are most like its text")
    assert [r["title"] for r in similar["items"]][:2] == ["Start Silicone Pacifier",
                                                           "6-18 Months Natural Shape Orthodontic Silicone Pacifier"]
    first = similar["items"][0]["evidence"]
    assert first["model_score"] is None and first["relation"] == "substitute"
    assert first["reason"].startswith("The ease model has nothing on this product, so the answer is the products whose "
                                      "texts are most like its text (text search score 0.67).")


@pytest.mark.parametrize("name", ["rules", "usermix"])
def test_models_with_a_popularity_floor_say_when_it_is_all_they_have(name, ingest, shared_file, tmp_path):
    """rules and usermix score every product for any basket (rules' popularity floor below their rules; usermix's
    customers, who for a never-bought product are whoever bought least), so the service showed Banana (rules) or
    Strawberries and Soda (usermix) as "similar" to Instacart's Crystal Pacifier, unflagged. Now the floor alone
    counts as nothing: the cold-start chain answers, from its text, and says so; Banana's answers stay the model's."""
    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    model = create_model(name).fit(InteractionData.from_store(store))
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={name: model})
    online = OnlineState(snap)
    similar = queries.similar(snap, online, "44203", model=name, n=3, filt=ItemFilter(), explain=True)
    assert similar["fallback"] == "text" and "Pacifier" in similar["items"][0]["title"]
    assert similar["note"].startswith(f"the {name} model has nothing on this product")
    basket = queries.recommend(snap, online, model=name, n=3, filt=ItemFilter(), explain=True, history=["44203"],
                               mode="basket")
    assert basket["fallback"] == "text" and "Pacifier" in basket["items"][0]["title"]
    banana = queries.similar(snap, online, "24852", model=name, n=3, filt=ItemFilter(), explain=True)
    assert "fallback" not in banana and len(banana["items"]) == 3
    assert banana["items"][0]["evidence"]["model"] == name


def test_the_cold_start_chain_falls_back_from_text_to_category_to_best_sellers(ingest, shared_file, tmp_path):
    """A product with a text is answered by the closest texts; one without, by its category's best sellers; one
    without either (or with a category nobody buys from), by the best sellers: Instacart's sample."""
    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={})
    pacifier = snap.item_index("44203")
    text = "Crystal Pacifier. babies > baby accessories"  # its catalog text: title and category
    idx, scores, step = queries.cold_start_neighbours(snap, None, [text], [None], 5, items=[pacifier])
    assert step == "text" and pacifier not in idx and "Pacifier" in snap.title(int(idx[0]))
    assert np.all(np.diff(scores) <= 0) and scores[0] > 0.5
    category = snap.data.categories[pacifier]
    idx, scores, step = queries.cold_start_neighbours(snap, None, [""], [category], 5, items=[pacifier])
    counts = snap.item_transactions
    in_category = np.flatnonzero((np.asarray(snap.data.categories, dtype=object) == category) & (counts > 0))
    assert step == "category" and set(idx) <= set(in_category) and pacifier not in idx
    assert list(scores) == sorted(counts[in_category], reverse=True)[:len(idx)] and len(idx) == min(5, len(in_category))
    idx, scores, step = queries.cold_start_neighbours(snap, None, [], ["no such aisle"], 3)
    assert step == "popular" and [snap.title(int(i)) for i in idx] == ["Banana", "Bag of Organic Bananas",
                                                                      "Organic Strawberries"]


def test_products_posted_during_a_rebuild_stay_served_until_a_snapshot_holds_them(ingest, shared_file, tmp_path):
    """A rebuild's snapshot may have read the catalog before a product was posted: the swap keeps serving such a
    product from its text, and drops those the new snapshot holds."""
    from itemaffinity.service.settings import Settings
    from itemaffinity.service.state import ServiceState

    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={})
        rebuilt = build_snapshot(con, str(store), version=2, models={})
    state = ServiceState(Settings(store_path=store, semantic="off"))
    state.current = state._serving(snap)
    state.current.new_products.update({"LATE-9": {"item_id": "LATE-9", "title": "Crystal Pacifier Blue",
                                                  "category": "babies > baby accessories"},
                                       "44203": {"item_id": "44203", "title": "Crystal Pacifier"}})
    state.swap(rebuilt)
    assert state.current.snap is rebuilt and list(state.current.new_products) == ["LATE-9"]
    late = queries.similar(rebuilt, state.current.online, "LATE-9", model=None, n=3, filt=ItemFilter(),
                           explain=True, new_products=state.current.new_products)
    assert late["fallback"] == "text" and late["item"]["title"] == "Crystal Pacifier Blue"
    assert late["items"][0]["item_id"] == "44203", "its look-alike, by the snapshot's TF-IDF (no text search here)"
    evidence = late["items"][0]["evidence"]
    assert (evidence["same_category"], evidence["same_brand"], evidence["relation"]) == (True, None, "substitute")
    assert evidence["reason"].startswith("Crystal Pacifier Blue was added to the catalog after the live snapshot and "
                                         "nothing was bought with it yet, so the answer is the products whose texts "
                                         "are most like its text (text search score ")
    assert "Same category (babies > baby accessories)." in evidence["reason"]


def test_evidence_names_the_category_and_brand_a_product_shares(write, ingest, tmp_path):
    """Bought-together, similar and basket evidence say whether a product has the category and brand of the one
    asked about (of one of the basket's): a small shop whose catalog has both."""
    catalog = write("catalog.csv", "item_id,title,category,brand\n"
                                   "a,Stoneware mug blue,Kitchen > Mugs,Acme\nb,Stoneware mug red,Kitchen > Mugs,Acme\n"
                                   "c,Enamel mug,Kitchen > Mugs,Zed\nd,Tea towel,,\n")
    rows = ["order,sku"] + [f"o{k},{x}" for k in range(40) for x in ("a", "b", "c", "d")[:2 + k % 3]]
    store = tmp_path / "shop.duckdb"
    ingest(write("orders.csv", "\n".join(rows) + "\n"), cols=["basket_id=order", "item_id=sku"], catalog=catalog,
           store=store)
    ease = create_model("ease").fit(InteractionData.from_store(store))
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"ease": ease}, pair_min_count=1)
    online = OnlineState(snap)
    together = queries.bought_together(snap, online, "a", n=5, filt=ItemFilter(), explain=True)
    shared = {r["item_id"]: (r["evidence"]["same_category"], r["evidence"]["same_brand"]) for r in together["items"]}
    assert shared == {"b": (True, True), "c": (True, False), "d": (None, None)}
    b = next(r for r in together["items"] if r["item_id"] == "b")["evidence"]["reason"]
    assert b.endswith("Same category (Kitchen > Mugs) and brand (Acme).")
    similar = queries.similar(snap, online, "a", model="ease", n=5, filt=ItemFilter(), explain=True)
    c = next(r for r in similar["items"] if r["item_id"] == "c")["evidence"]
    assert (c["same_category"], c["same_brand"]) == (True, False) and "Same category (Kitchen > Mugs)." in c["reason"]
    basket = queries.recommend(snap, online, model="ease", n=2, filt=ItemFilter(), explain=True, history=["d", "a"],
                               mode="basket")
    by_id = {r["item_id"]: r["evidence"] for r in basket["items"]}
    assert set(by_id) == {"b", "c"} and by_id["b"]["same_brand"] and by_id["c"]["same_brand"] is False
    assert by_id["b"]["reason"].endswith("Same category (Kitchen > Mugs) and brand (Acme) as Stoneware mug blue (a).")


def test_baskets_posted_with_a_new_product_give_its_partners_before_a_rebuild(ingest, shared_file, tmp_path):
    """A product posted to the catalog and then sold: its bought-together list counts the baskets posted with it
    (it was empty, with a note to wait for a rebuild), with the measures and reasons of every pair; its page counts
    them; its similar items say no model knows it yet. Instacart's sample, three new orders and one of the sample's
    orders it joins."""
    from itemaffinity.service.online import PostedEvent

    store = tmp_path / "instacart.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), preset="instacart", store=store)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={})
    online = OnlineState(snap)
    new = {"NEW-1": {"item_id": "NEW-1", "title": "Organic Banana Chips", "category": "snacks > chips pretzels"}}
    x = snap.transactions
    order = snap.data.baskets.id(0)  # one of the sample's orders, and its products
    in_order = x.indices[x.indptr[0]:x.indptr[1]]
    bought = [("p1", "NEW-1"), ("p1", "24852"), ("p1", "21903"), ("p2", "24852"), ("p2", "NEW-1"), ("p2", "21903"),
              ("p3", "NEW-1"), ("p3", "24852"), ("p4", "NEW-1"), (order, "NEW-1"), ("p1", "NEW-1")]
    online.fold(PostedEvent(1, None, item, "purchase", basket) for basket, item in bought)
    assert online.n_transactions == snap.n_transactions + 4, "p1–p4 are new baskets; the sample's order is not"
    assert online.new_item_transactions("NEW-1") == 5 and online.item_transactions(snap.item_index("24852")) == \
        snap.item_transactions[snap.item_index("24852")] + 3
    assert (online.new_item_co_row("NEW-1")[in_order] == 1).all()

    together = queries.new_product_bought_together(snap, online, "NEW-1", new, n=5, filt=ItemFilter(), explain=True)
    assert [(r["title"], r["evidence"]["co_count"]) for r in together["items"]] == [("Banana", 3),
                                                                                 ("Organic Baby Spinach", 2)]
    banana = next(r["evidence"] for r in together["items"] if r["item_id"] == "24852")
    assert (banana["co_count"], banana["item_baskets"], banana["confidence"]) == (3, 5, 0.6)
    assert banana["reason"] == ("Bought together in 3 baskets: 60% of baskets with Organic Banana Chips (NEW-1) "
                                "also have Banana (24852), 4.1× as often as chance would give.")
    assert together["online_changes"] == 5 and "5 baskets posted with it since" in together["note"]
    produce = queries.new_product_bought_together(snap, online, "NEW-1", new, n=5, explain=False,
                                                  filt=ItemFilter(exclude_category=("produce > fresh fruits",)))
    assert [r["item_id"] for r in produce["items"]] == ["21903"], "Banana's aisle left out; spinach's is another"

    detail = queries.item_detail(snap, online, "NEW-1", new)
    assert (detail["stats"]["baskets"], detail["partners"], detail["added_since_snapshot"]) == (5, 2, True)
    similar = queries.similar(snap, online, "NEW-1", model=None, n=3, filt=ItemFilter(), explain=True,
                              new_products=new)
    assert similar["note"].startswith("this product was added to the catalog after the live snapshot and no model "
                                      "knows it yet; shown instead: the products whose texts are most like its text")
