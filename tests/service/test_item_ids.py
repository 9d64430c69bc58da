"""The service finds items by the ids the store holds: with a case-folding mapping (item_id_case), a
request id in another letter case is the same item, as a posted event's would be."""

from __future__ import annotations

import duckdb

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import create_model
from itemaffinity.service import queries
from itemaffinity.service.online import OnlineState
from itemaffinity.service.queries import ItemFilter
from itemaffinity.service.snapshot import build_snapshot

CSV = ("order,sku,when\n"
       "o1,85123A,2024-01-01 10:00:00\n"
       "o1,22423,2024-01-01 10:00:00\n"
       "o2,85123a,2024-01-02 10:00:00\n"
       "o2,22423,2024-01-02 10:00:00\n")
COLS = ["basket_id=order", "item_id=sku", "ts=when"]


def _snapshot(write, ingest, tmp_path, case: str):
    store = tmp_path / f"{case}.duckdb"
    ingest(write("events.csv", CSV), cols=COLS, store=store, item_id_case=case)
    with duckdb.connect(str(store), read_only=True) as con:
        return build_snapshot(con, str(store), version=1, models={})


def test_request_ids_are_folded_like_the_store(write, ingest, tmp_path):
    snap = _snapshot(write, ingest, tmp_path, "upper")
    assert snap.data.n_items == 2
    heart = snap.item_index("85123A")
    assert heart >= 0 and snap.item_index("85123a") == heart
    assert snap.item_indices(["85123a", "22423", "nope"]).tolist() == [heart, snap.item_index("22423"), -1]
    keep = ItemFilter(exclude=("85123a",)).mask(snap)
    assert not keep[heart] and keep.sum() == 1


def test_without_folding_the_spellings_stay_two_items(write, ingest, tmp_path):
    snap = _snapshot(write, ingest, tmp_path, "keep")
    assert snap.data.n_items == 3
    assert snap.item_index("85123a") != snap.item_index("85123A") and snap.item_index("85123a") >= 0


def test_every_read_folds_the_request_id(write, ingest, cli, tmp_path):
    """A lower-case id in an upper-folded store gets the answers of the stored spelling: the model's similar items,
    a basket's completion, the rules of either side and the item's rule count (not an empty list)."""
    store = tmp_path / "upper.duckdb"
    ingest(write("events.csv", CSV + "o3,22423,2024-01-03 10:00:00\no3,11111,2024-01-03 10:00:00\n"), cols=COLS,
           store=store, item_id_case="upper")
    assert cli("rules", "--store", store, "--min-support", "0.3").returncode == 0
    data = InteractionData.from_store(store)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={"itemknn": create_model("itemknn").fit(data)})
    online, plain = OnlineState(snap), ItemFilter()

    def answers(heart: str) -> list:
        similar = queries.similar(snap, online, heart, model="itemknn", n=5, filt=plain, explain=True)
        basket = queries.recommend(snap, online, model="itemknn", n=5, filt=plain, explain=True, history=[heart],
                                   mode="basket")
        rules = [queries.list_rules(snap, antecedent=a, consequent=c, category=None, min_support=0,
                                    min_confidence=0, min_lift=None, sort="lift", limit=10, offset=0)["items"]
                 for a, c in ((heart, None), (None, heart))]
        return [similar["items"], basket["items"], basket["unknown_items"], rules,
                queries.item_detail(snap, online, heart)["rules"]]

    stored = answers("85123A")
    assert stored[0] and stored[1] and all(stored[3]) and stored[4] == 2
    assert answers("85123a") == stored


def test_a_product_page_shows_an_html_description_as_text(write, ingest, tmp_path):
    catalog = write("products.csv", 'sku,name,body\n85123A,Heart holder,"<p>White <b>heart</b>&nbsp;holder</p>"\n')
    store = tmp_path / "html.duckdb"
    ingest(write("events.csv", CSV), cols=COLS, catalog=catalog, catalog_cols=["item_id=sku", "title=name",
                                                                            "description=body"], store=store)
    with duckdb.connect(str(store), read_only=True) as con:
        snap = build_snapshot(con, str(store), version=1, models={})
    assert queries.item_detail(snap, OnlineState(snap), "85123A")["description"] == "White heart holder"
