"""A store served before any analysis (ingested only): bought-together is counted from its baskets when asked, the
same lists the analysis would store, and model reads say that no model is fitted yet."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pytest

from itemaffinity.analysis import mine_tables
from itemaffinity.data.interactions import InteractionData
from itemaffinity.service import queries
from itemaffinity.service.online import OnlineState
from itemaffinity.service.queries import BadRequest, ItemFilter
from itemaffinity.service.snapshot import build_snapshot


def test_bought_together_before_any_analysis_is_what_the_analysis_stores(ingest, shared_file, tmp_path) -> None:
    fresh = tmp_path / "fresh.duckdb"
    ingest(shared_file("instacart", "order_products_sample.parquet"), cols=["basket_id=order_id", "item_id=product_id"],
           store=fresh)  # the orders alone: no catalog of 49,688 titles to vectorise
    mined = tmp_path / "mined.duckdb"
    shutil.copy(fresh, mined)
    mine_tables(str(mined), InteractionData.from_store(mined))
    answers = {}
    for name, store in (("fresh", fresh), ("mined", mined)):
        with duckdb.connect(str(store), read_only=True) as con:
            snap = build_snapshot(con, str(store), version=1, models={})
        online, plain = OnlineState(snap), ItemFilter()
        best = [snap.data.items.id(int(i)) for i in snap.popularity_order[:20]]
        answers[name] = [queries.bought_together(snap, online, i, n=50, filt=plain, explain=True)["items"]
                         for i in best]
        assert [queries.item_detail(snap, online, i)["partners"] for i in best] == [len(a) for a in answers[name]]
        if name == "fresh":
            assert not snap.pairs.mined
            with pytest.raises(BadRequest, match="no model is fitted for this store yet"):
                queries.similar(snap, online, best[0], model=None, n=5, filt=plain, explain=False)
    assert sum(map(len, answers["fresh"])) > 100
    for fresh_items, mined_items in zip(answers["fresh"], answers["mined"]):
        assert [(r["item_id"], r["evidence"]["co_count"]) for r in fresh_items] == \
            [(r["item_id"], r["evidence"]["co_count"]) for r in mined_items]
        assert np.allclose([r["score"] for r in fresh_items], [r["score"] for r in mined_items])
