"""Evaluation protocols on real data: no leakage across the split, seeded, the documented shapes."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import duckdb
import numpy as np
import pytest

from itemaffinity.evaluation import protocols
from itemaffinity.evaluation.experiment import VS_BEST, build_task, parse_models, run_evaluation
from itemaffinity.evaluation.metrics import ratio_interval
from itemaffinity.evaluation.runner import evaluate_model
from itemaffinity.errors import InputError
from itemaffinity.models.registry import create_model
from itemaffinity.store.artifacts import latest_evaluations, record_evaluations

SPLIT = dt.datetime(2011, 10, 1)


@pytest.fixture(scope="module")
def or_con(or_store):
    store, _ = or_store
    con = duckdb.connect(str(store), read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def seed0_tasks(or_con):
    """The seed-0 tasks of 1,000 queries that several tests read, built once."""
    return {name: build_task(or_con, name, "2011-10-01", 1000, 0) for name in ("basket-completion", "cold-start")}


def test_basket_completion_has_no_leakage(or_con) -> None:
    task = protocols.basket_completion(or_con, SPLIT, n_queries=1000, seed=3)
    assert task.n_queries == 1000 and len(task.targets) == 1000
    assert task.train.basket_ts.max() < np.datetime64(SPLIT)
    for r in range(task.n_queries):
        query = set(task.queries[r].indices.tolist())
        assert len(query) >= 1 and task.targets[r][0] not in query
        assert task.train.item_baskets[task.targets[r][0]] > 0  # the hidden item is known to training
    again = protocols.basket_completion(or_con, SPLIT, n_queries=1000, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(task.targets, again.targets))
    other = protocols.basket_completion(or_con, SPLIT, n_queries=1000, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(task.targets, other.targets))


def test_validation_task_lies_inside_training_period(or_con) -> None:
    val = build_task(or_con, "basket-completion", SPLIT, 500, 0, validation=True)
    assert val.train.basket_ts.max() < np.datetime64(SPLIT - dt.timedelta(days=30))
    assert val.info["test_baskets"] > 0


def test_cold_start_targets_are_unseen_in_training(or_con) -> None:
    task = protocols.cold_start(or_con, SPLIT, n_queries=300)
    cold = set(task.candidates.tolist())
    assert all(task.train.item_events[i] == 0 for i in cold)
    assert all(t[0] in cold for t in task.targets)
    assert all(task.train.item_events[task.queries[r].indices].min() > 0 for r in range(task.n_queries))


def test_next_basket_targets_are_new_items(or_con) -> None:
    task = protocols.next_basket(or_con, SPLIT, n_queries=200)
    for r in range(task.n_queries):
        history = set(task.train.user_items[task.query_users[r]].indices.tolist())
        assert history and not history & set(task.targets[r].tolist())


def test_next_item_leave_last_out(shared_file, tmp_path) -> None:
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    src = shared_file("amazon_beauty", "interactions.parquet")
    store = tmp_path / "beauty.duckdb"
    ingest_file(str(src), resolve_mapping("amazon-beauty"), store)
    import pyarrow.parquet as pq

    raw = pq.read_table(src).to_pandas().sort_values(["user_id", "position"])
    seqs = raw.groupby("user_id")["item_id"].apply(list)
    with duckdb.connect(str(store), read_only=True) as con:
        test = protocols.next_item(con)
        val = protocols.next_item(con, holdout=2)
    assert test.n_queries == 22363
    for r in (0, 100, 5000):
        user = test.train.users.id(test.query_users[r])
        full = [str(i) for i in seqs[int(user)]]
        assert test.train.items.id(test.targets[r][0]) == full[-1]
        assert test.train.items.ids_of(test.train.sequence(test.query_users[r])) == full[:-1]
        vu = val.train.users.index(user)
        assert val.train.items.ids_of(val.train.sequence(vu)) == full[:-2]


def test_leaderboard_on_online_retail(or_store) -> None:
    store, _ = or_store
    rows, _ = run_evaluation(str(store), "basket-completion", parse_models("popularity,ease,itemknn"),
                             split_date="2011-10-01", n_queries=2000)
    by = {r["model"]: r for r in rows}
    assert rows[0]["model"] == "ease" and by["ease"]["NDCG@10"] > 0.15
    assert by["itemknn"]["NDCG@10"] > 3 * by["popularity"]["NDCG@10"]
    # against the leader, with a paired interval: the leader is 1 exactly, the others below it beyond noise
    assert [by["ease"][k] for k in ("NDCG@10_vs_best", "NDCG@10_vs_best_low", "NDCG@10_vs_best_high")] == [1, 1, 1]
    knn = by["itemknn"]
    assert knn["NDCG@10_vs_best"] == pytest.approx(knn["NDCG@10"] / by["ease"]["NDCG@10"], abs=1e-4)
    assert knn["NDCG@10_vs_best_low"] < knn["NDCG@10_vs_best"] < knn["NDCG@10_vs_best_high"] < 1
    assert "per_query" not in knn
    for r in rows:
        assert {"dataset", "split", "seed", "config", "fit_s", "eval_s"} <= set(r)
        assert 0 <= r["NDCG@10"] <= r["HR@10"] <= 1
        assert r["NDCG@10_vs_best_of"] == {"label": "ease", "NDCG@10": by["ease"]["NDCG@10"]}
    # NDCG@10 in thirds of the queries by the held-out item's training baskets: the same cuts for every model, and
    # the thirds (near-equal in size) average to the whole; popularity finds best sellers only
    thirds = {name: r["popularity_thirds"] for name, r in by.items()}
    assert all(t["cuts"] == thirds["ease"]["cuts"] and t["of"] == "baskets" for t in thirds.values())
    low, high = thirds["ease"]["cuts"]
    assert 10 < low < high < 1000
    for name, t in thirds.items():
        assert sum(t["NDCG@10"]) / 3 == pytest.approx(by[name]["NDCG@10"], abs=0.005)
    rare, _, best_sellers = thirds["popularity"]["NDCG@10"]
    assert rare < 0.005 < 0.03 < best_sellers
    assert thirds["itemknn"]["NDCG@10"][0] > 10 * rare + 0.05


def test_stored_leaderboard_keeps_only_ratios_to_its_own_leader(or_store, tmp_path) -> None:
    """The stored leaderboard shows each model's latest row; a row evaluated in a later run without the leader was
    compared with another model, so its "× best" would mislead beside the leader and is left out."""
    store, _ = or_store
    board = str(tmp_path / "board.duckdb")
    first, _ = run_evaluation(str(store), "basket-completion", parse_models("ease,itemknn"), split_date="2011-10-01",
                              n_queries=1000)
    record_evaluations(board, first)
    later, _ = run_evaluation(str(store), "basket-completion", parse_models("itemknn,popularity"),
                              split_date="2011-10-01", n_queries=1000)
    assert later[0]["model"] == "itemknn" and later[0]["NDCG@10_vs_best"] == 1  # the leader of its own run
    record_evaluations(board, later)
    with duckdb.connect(board, read_only=True) as con:
        by = {r["model"]: r for r in latest_evaluations(con)}
    assert [by["ease"][k] for k in VS_BEST] == [1, 1, 1]
    for name in ("itemknn", "popularity"):
        assert [by[name][k] for k in VS_BEST] == [None, None, None]
        assert by[name]["NDCG@10"] < by["ease"]["NDCG@10"]
    record_evaluations(board, first)  # evaluated again beside the leader: its ratios are shown again
    with duckdb.connect(board, read_only=True) as con:
        by = {r["model"]: r for r in latest_evaluations(con)}
    assert by["itemknn"]["NDCG@10_vs_best"] == next(r for r in first if r["model"] == "itemknn")["NDCG@10_vs_best"] < 1
    assert [by["popularity"][k] for k in VS_BEST] == [None, None, None]


def test_queries_name_their_customers(seed0_tasks) -> None:
    for task in seed0_tasks.values():
        groups = task.query_groups
        assert groups.shape == (task.n_queries,)
        # Online Retail's customers come back: fewer customers than baskets, but many of them
        assert task.n_queries / 10 < len(np.unique(groups)) < task.n_queries


def test_a_customer_has_one_code_in_every_task_seed(or_con, seed0_tasks) -> None:
    # seeds draw different baskets in a different order; pooling seeds' queries by customer needs equal codes.
    # A basket is known by its items (the query and its hidden item); a few distinct baskets hold the same items.
    for name in ("basket-completion", "cold-start"):
        codes = []
        for task in (seed0_tasks[name], build_task(or_con, name, "2011-10-01", 1000, 1)):
            baskets = [tuple(sorted(np.r_[task.queries[i].indices, task.targets[i]])) for i in range(task.n_queries)]
            once = {b for b, n in Counter(baskets).items() if n == 1}
            codes.append({b: g for b, g in zip(baskets, task.query_groups) if b in once})
        shared = codes[0].keys() & codes[1].keys()
        assert len(shared) > 100
        assert sum(codes[0][b] != codes[1][b] for b in shared) <= 0.01 * len(shared), name


def test_per_query_values_average_to_the_row(seed0_tasks) -> None:
    task = seed0_tasks["basket-completion"]
    model = create_model("itemknn")
    row = evaluate_model(model, task, per_query=True)
    for name in ("HR@10", "NDCG@10"):
        values = row["per_query"][name]
        assert values.shape == (task.n_queries,) and values.mean() == pytest.approx(row[name])
    other = evaluate_model(create_model("popularity"), task, per_query=True)
    ratio, lo, hi = ratio_interval(row["per_query"]["NDCG@10"], other["per_query"]["NDCG@10"])
    assert 1 < lo < ratio < hi  # itemknn beats popularity beyond the noise of 1,000 queries


def test_bad_split_date(or_con) -> None:
    with pytest.raises(InputError):
        protocols.basket_completion(or_con, "not-a-date")
    with pytest.raises(InputError):
        protocols.basket_completion(or_con, "2001-01-01")
