"""The service finds items by the ids the store holds: with a case-folding mapping (item_id_case), a
request id in another letter case is the same item, as a posted event's would be."""

from __future__ import annotations

import duckdb

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
