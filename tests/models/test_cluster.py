"""Product groups on the real Online Retail store."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.cluster import item_embeddings, product_groups


def test_product_groups_do_not_depend_on_the_number_of_threads(or_store) -> None:
    """analyze and the service's rebuild run with different thread pools; the same data must give the same groups
    (a last-bit difference in the SVD used to send K-Means to other groups, with other names)."""
    data = InteractionData.from_store(str(or_store[0]))
    runs = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads):
            runs.append((item_embeddings(data)[0], product_groups(data)))
    (emb_1, groups_1), (emb_2, groups_2) = runs
    assert np.array_equal(emb_1, emb_2)
    assert np.array_equal(groups_1.item_cluster, groups_2.item_cluster) and groups_1.labels == groups_2.labels
    assert len(set(groups_1.labels)) > 1 and (groups_1.item_cluster >= 0).sum() > 0.5 * data.n_items


COLOURS = {"red", "pink", "blue", "green", "white", "black", "gold", "silver"}


def test_group_labels_name_what_sets_a_group_apart(or_store) -> None:
    """Colours run through every Online Retail group; a label leads with what is common in its group and rare
    in the others (two labels led by a colour at most; before, "pink" and "blue" led four of the 20)."""
    groups = product_groups(InteractionData.from_store(str(or_store[0])))
    assert sum(label.split(" / ")[0] in COLOURS for label in groups.labels) <= 2


def test_chinese_titles_name_their_groups() -> None:
    """Chinese titles have no spaces between words: a group is named by the two-character words its titles
    share (耳机 in 无线蓝牙耳机 and 头戴式耳机), not left "(untitled)" as when only Latin words counted."""
    titles = {"P1": "无线蓝牙耳机", "P2": "头戴式耳机 降噪", "P3": "耳机收纳盒", "P4": "耳机转接头",
              "T1": "西湖龙井绿茶", "T2": "明前绿茶 礼盒", "T3": "绿茶茶包", "T4": "紫砂茶杯 套装"}
    baskets = [("P1", "P2", "P3"), ("P1", "P3", "P4"), ("P2", "P4"), ("T1", "T2", "T4"), ("T2", "T3"),
               ("T1", "T3", "T4")] * 5
    events = pa.table({"basket_id": [f"b{b}" for b, items in enumerate(baskets) for _ in items],
                       "item_id": [i for items in baskets for i in items]})
    catalog = pa.table({"item_id": list(titles), "title": list(titles.values())})
    data = InteractionData.from_tables(events, catalog)
    groups = product_groups(data, n_clusters=2)
    by_item = {data.items.ids[i]: groups.labels[c] for i, c in enumerate(groups.item_cluster)}
    assert by_item["P1"] == by_item["P4"] != by_item["T1"] == by_item["T4"]
    assert by_item["P1"].startswith("耳机") and by_item["T1"].startswith("绿茶")


def test_a_label_is_never_a_piece_of_one_title() -> None:
    """A two-character piece seen in one title is as likely half of two words (线蓝 of 无线蓝牙): a Chinese word
    names a group only when two of its titles share it, and a group whose titles share none is named by its
    first title (it was "(untitled)", or a fragment)."""
    from collections import Counter

    from itemaffinity.models.cluster import _labels, _title_words

    titles = ["无线蓝牙耳机", "头戴式耳机", "紫砂茶杯 套装", "保温杯"]
    background = Counter(w for t in titles for w in _title_words(t))
    assert _labels([titles[:2], titles[:1], titles[2:]], background, len(titles)) == \
        ["耳机", "无线蓝牙耳机", "紫砂茶杯 套装"]


def test_customers_alike_in_a_measure_get_one_rfm_score(or_store) -> None:
    """Online Retail's one-basket customers (about a third) share one frequency score, and customers with equal
    recency, frequency and spend share a segment: the scores used to spread ties by the order of the ids."""
    import duckdb

    from itemaffinity.models.cluster import customer_segments

    data = InteractionData.from_store(str(or_store[0]))
    with duckdb.connect(str(or_store[0]), read_only=True) as con:
        seg = customer_segments(con, data, product_groups(data))
    once = seg["frequency"] == 1
    assert 0.2 < once.mean() < 0.5 and len(set(seg["f"][once].tolist())) == 1
    key = np.stack([seg["recency_days"], seg["frequency"], seg["monetary"]], axis=1)
    _, first, group = np.unique(key, axis=0, return_index=True, return_inverse=True)
    assert (seg["segment"] == seg["segment"][first][group.ravel()]).all()
    assert set(seg["segment"].tolist()) >= {"Champions", "Loyal customers", "At risk", "Lost"}


def test_customers_without_purchase_times_get_no_rfm_name() -> None:
    """Without purchase times recency is unknown (Instacart's sample): those customers are "No purchase dates", not
    "Loyal customers" as ties in every measure made all 974 of them; customers with times are named as before."""
    import duckdb

    from itemaffinity.models.cluster import NO_DATES, customer_segments

    events = pa.table({"user_id": ["u1", "u1", "u2", "u3", "u4"], "basket_id": ["b1", "b2", "b3", "b4", "b5"],
                       "item_id": ["A", "B", "A", "B", "A"], "event": ["purchase"] * 5, "value": [5.0, 3.0, 1.0, 2.0, 9.0],
                       "ts": pa.array([None, None, None, "2024-03-01", "2024-01-01"], pa.string()).cast(pa.timestamp("s"))})
    data = InteractionData.from_tables(events)
    con = duckdb.connect()
    con.register("events", events)
    seg = customer_segments(con, data, product_groups(data))
    named = dict(zip(seg["user_id"].tolist(), seg["segment"].tolist()))
    assert named["u1"] == named["u2"] == NO_DATES
    assert NO_DATES not in (named["u3"], named["u4"]) and named["u3"] != named["u4"]


def test_purchases_without_an_order_id_count_one_occasion_each() -> None:
    """A review or rating log has no orders: each purchase is an occasion (frequency was 0 for every customer);
    lines of one order stay one."""
    import duckdb

    from itemaffinity.models.cluster import customer_segments

    events = pa.table({"user_id": ["u1", "u1", "u1", "u2", "u2", "u2"], "basket_id": [None, None, None, "b1", "b1", None],
                       "item_id": ["A", "B", "C", "A", "B", "C"], "event": ["purchase"] * 6,
                       "value": [1.0] * 6, "ts": pa.array([None] * 6, pa.timestamp("s"))})
    data = InteractionData.from_tables(events)
    con = duckdb.connect()
    con.register("events", events)
    seg = customer_segments(con, data, product_groups(data))
    assert dict(zip(seg["user_id"].tolist(), seg["frequency"].tolist())) == {"u1": 3, "u2": 2}


def test_a_shop_with_fewer_kinds_of_product_than_groups_gets_no_empty_group() -> None:
    """Four customers of two products bought apart: no pair beats chance, so every product embeds alike. K-Means
    was asked for more groups than distinct points: empty groups, and sklearn's warnings in a
    user's output. Groups and behaviour clusters are now capped by the distinct points."""
    import warnings

    import duckdb

    from itemaffinity.models.cluster import customer_segments

    events = pa.table({"user_id": ["u1", "u1", "u2", "u3", "u4"], "basket_id": ["b1", "b2", "b3", "b4", "b5"],
                       "item_id": ["A", "B", "A", "B", "A"], "event": ["purchase"] * 5, "value": [5.0, 3.0, 1.0, 2.0, 9.0],
                       "ts": pa.array(["2024-01-01", "2024-02-01", "2024-01-05", "2024-03-01", "2024-01-01"],
                                      pa.string()).cast(pa.timestamp("s"))})
    data = InteractionData.from_tables(events)
    con = duckdb.connect()
    con.register("events", events)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        groups = product_groups(data)
        seg = customer_segments(con, data, groups)
    assert len(groups.labels) == 1 and groups.sizes.tolist() == [2]
    assert set(groups.item_cluster.tolist()) == {0}
    assert len(seg["behaviour"]) == 4 and set(seg["behaviour"].tolist()) == {0}
