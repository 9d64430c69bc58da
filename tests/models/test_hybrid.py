"""Hybrid fusion: the model contract, a learned ranker at least as good as its parts, save/load."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pyarrow.compute as pc
import pytest
import scipy.sparse as sp

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.synthetic import synthetic_events
from itemaffinity.errors import InputError
from itemaffinity.models import create_model, load_model
from itemaffinity.models.base import query_matrix
from itemaffinity.models.hybrid import _largest_over_query, _Pairs, _standardised
from itemaffinity.models.registry import create_store_model
from itemaffinity.store.artifacts import load_saved_model, save_model
from itemaffinity.text.encoders import EmbeddingCache, item_texts

COMPONENTS = ("ease", "itemknn", "rules")


@pytest.fixture(scope="module")
def split():
    """Synthetic baskets with planted groups: the first 2,500 to train, the last 500 to test."""
    events, catalog = synthetic_events(n_baskets=3000, n_items=60, planted=((1, 2), (3, 4, 5), (10, 11)),
                                       p_planted=0.5, seed=1)
    train = events.filter(pc.less(events["basket_id"], "b02500"))
    test = events.filter(pc.greater_equal(events["basket_id"], "b02500"))
    baskets: dict[str, list[str]] = {}
    for b, i in zip(test["basket_id"].to_pylist(), test["item_id"].to_pylist()):
        baskets.setdefault(b, []).append(i)
    return InteractionData.from_tables(train, catalog), [v for v in baskets.values() if len(v) >= 2]


@pytest.fixture(scope="module")
def hybrid(split):
    data, _ = split
    return create_model("hybrid", components=COMPONENTS, validation_share=0.3, hidden_per_basket=5,
                        n_estimators=100, component_params={"rules": {"min_support": 0.01}}).fit(data)


def _hit_rate(model, baskets, n=5) -> float:
    rng = np.random.default_rng(0)
    queries, targets = [], []
    for b in baskets:
        h = rng.integers(len(b))
        targets.append(b[h])
        queries.append(b[:h] + b[h + 1:])
    recs = model.recommend_batch(histories=queries, n=n)
    return float(np.mean([t in r.item_ids for t, r in zip(targets, recs)]))


def test_fusion_is_at_least_as_good_as_its_best_component(split, hybrid) -> None:
    data, baskets = split
    best = max(_hit_rate(create_model(c, **({"min_support": 0.01} if c == "rules" else {})).fit(data), baskets)
               for c in COMPONENTS)
    assert _hit_rate(hybrid, baskets) >= best - 0.02


def test_planted_partners_rank_high(hybrid) -> None:
    assert "i002" in hybrid.recommend(basket=["i001"], n=2).item_ids
    assert {"i004", "i005"} <= set(hybrid.recommend(basket=["i003"], n=3).item_ids)


def test_every_query_gets_an_answer(hybrid) -> None:
    assert len(hybrid.recommend(basket=["not-an-item"], n=5)) == 5
    assert len(hybrid.recommend("u001", n=5)) == 5


def test_save_load_round_trip(hybrid, tmp_path) -> None:
    from itemaffinity.service.routes.system import rankers_learnt_until

    hybrid.save(tmp_path / "hybrid")
    again = load_model(tmp_path / "hybrid")
    # only hybrids have rankers, though content-finetuned can refresh too (it keeps its encoder)
    refreshing = create_model("content-finetuned")
    assert rankers_learnt_until({"hybrid": again, "ease": again.components_[0], "cf": refreshing}) == {
        "hybrid": str(hybrid.rankers_until_)}
    del again.rankers_until_  # an artifact saved before the date was recorded
    assert rankers_learnt_until({"hybrid": again}) == {"hybrid": None}
    again = load_model(tmp_path / "hybrid")
    a = hybrid.recommend(basket=["i001", "i020"], n=8)
    b = again.recommend(basket=["i001", "i020"], n=8)
    assert a.item_ids == b.item_ids and np.allclose(a.scores, b.scores)


def test_old_artifact_without_text_features_is_refused(hybrid, tmp_path) -> None:
    hybrid.save(tmp_path / "hybrid")
    npz = tmp_path / "hybrid.npz"
    with np.load(npz) as z:
        arrays = {k: z[k] for k in z.files if not k.startswith("text_vectors_")}
    np.savez(npz, **arrays)
    meta_file = tmp_path / "hybrid.json"
    meta = json.loads(meta_file.read_text())
    meta["sparse"].remove("text_vectors_")
    meta["artifact_version"] = 1  # what hybrids were saved with before the text features
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(InputError, match="older"):
        load_model(tmp_path / "hybrid")


def test_largest_over_query_known_answer() -> None:
    # 4 items; baskets with each: 10, 5, 4, 2; co-purchases: 0–1 in 4, 0–2 in 1, 1–2 in 2, 2–3 in 2.
    counts = np.array([10, 5, 4, 2], np.float32)
    co = sp.csr_matrix(np.array([[0, 4, 1, 0], [4, 0, 2, 0], [1, 2, 0, 2], [0, 0, 2, 0]], np.float32))
    tfidf = sp.csr_matrix(np.eye(4, dtype=np.float32))
    sentence = np.eye(4, dtype=np.float32)[:, :3]  # item 3 has no sentence vector
    queries = query_matrix([np.array([0, 1]), np.array([], np.int64), np.array([3])], 4)
    cand = np.array([[2, 3], [0, 1], [2, 0]])
    # one query item per block, or all at once; pair tables dense, or products over the candidates
    for max_rows, dense_max in ((1, 0), (2048, 0), (1, 4), (2048, 4)):
        (conf, rconf, lift, jac, tf, sen), _ = _largest_over_query(
            queries, cand, _Pairs(co, tfidf, sentence, dense_max), counts, 20.0, max_rows=max_rows)
        assert np.allclose(conf[0], [max(1 / 10, 2 / 5), 0]) and np.allclose(conf[2], [2 / 2, 0])
        assert np.allclose(rconf[0], [max(1 / 4, 2 / 4), 0])
        assert np.allclose(lift[0, 0], np.log1p(2 * 20 / (5 * 4)))
        assert np.allclose(jac[2], [2 / (2 + 4 - 2), 0])
        assert not conf[1].any() and not tf[1].any(), "an empty query has no links"
        assert not tf[0].any() and not sen[2].any()


def test_largest_over_query_takes_products_over_the_candidates_only(or_store) -> None:
    """Above DENSE_PAIRS_MAX items the link features multiply each query item by the block's candidates, not by
    the whole catalog (which can be 50 times larger); below, they gather from dense item-pair tables. On Online
    Retail both are what the products over every item give, bit for bit."""
    from itemaffinity.mining import transactions
    from itemaffinity.models.hybrid import _ItemStats
    from itemaffinity.text.encoders import tfidf_vectors

    data = InteractionData.from_store(or_store[0])
    stats, tfidf = _ItemStats.of(data), tfidf_vectors(item_texts(data))
    rng = np.random.default_rng(0)
    sentence = rng.standard_normal((data.n_items, 16)).astype(np.float32)  # stands in for sentence vectors
    x = sp.csr_matrix(transactions(data) > 0, dtype=np.float32)
    queries = x[rng.choice(x.shape[0], 400, replace=False)]
    cand = np.sort(rng.choice(data.n_items, (400, 60)), axis=1)
    largest, means = _largest_over_query(queries, cand, _Pairs(stats.cooccur, tfidf, sentence, dense_max=0),
                                         stats.counts, float(stats.n_transactions), max_rows=256)
    dense = _Pairs(stats.cooccur, tfidf, sentence)
    assert dense.dense is not None
    for f, (got, want) in enumerate(zip(sum(_largest_over_query(queries, cand, dense, stats.counts,
                                                                float(stats.n_transactions), max_rows=256), []),
                                        [*largest, *means])):
        if f in (5, 7):  # sentence cosines: float32 products of other shapes round otherwise (BLAS; 8e-7 seen
            # with numpy 2.4 / scipy 1.17 on a 16-term sum of values up to 4, a few float32 steps)
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
        else:
            np.testing.assert_array_equal(got, want)
    cnt = np.maximum(stats.counts, 1.0).astype(np.float32)
    for r in range(0, 400, 40):
        items, c = queries.indices[queries.indptr[r]:queries.indptr[r + 1]], cand[r]
        co = stats.cooccur[items].toarray()[:, c]
        ci, cc = cnt[items][:, None], cnt[c][None, :]
        text = (tfidf[items] @ tfidf.T).toarray()[:, c]
        whole = (co / ci, co / cc, np.log1p(co * float(stats.n_transactions) / ci / cc), co / (ci + cc - co), text)
        for got, want in zip(largest, whole):
            np.testing.assert_array_equal(got[r], want.max(axis=0))
        np.testing.assert_allclose(largest[5][r], (sentence[items] @ sentence.T)[:, c].max(axis=0), rtol=1e-5)
        np.testing.assert_allclose(means[0][r], text.mean(axis=0), rtol=1e-5, atol=1e-7)


def test_standardised_over_each_querys_candidates_only() -> None:
    """Mean 0 and sd 1 over a query's real candidates; the padding neither counts nor gets a value."""
    x = np.array([[1.0, 2.0, 3.0, 99.0], [5.0, 5.0, 5.0, 5.0], [7.0, 0.0, 0.0, 0.0]], np.float32)
    valid = np.array([[True, True, True, False], [True] * 4, [False] * 4])
    z = _standardised(x, valid)
    np.testing.assert_allclose(z[0], [-np.sqrt(1.5), 0.0, np.sqrt(1.5), 0.0], atol=1e-5)
    np.testing.assert_array_equal(z[1], 0.0)  # all equal: no candidate stands out
    np.testing.assert_array_equal(z[2], 0.0)  # no candidates at all


def test_rolling_origin_folds_see_only_the_past(split) -> None:
    data, _ = split
    model = create_model("hybrid", components=COMPONENTS, validation="latest", validation_slices=3,
                         validation_days=5)
    folds = model._validation(data, "latest")
    assert len(folds) == 3
    ends = []
    for fold in folds:
        seen_until = fold.sub.basket_ts.max()
        assert (fold.at > seen_until).all(), "every query lies after all the data its components see"
        assert (fold.at - seen_until).max() <= np.timedelta64(5 * 86400, "s") + np.timedelta64(86400, "s")
        ends.append(seen_until)
    assert ends[0] > ends[1] > ends[2], "fold k holds out the k-th last window"
    long_windows = model.config.model_copy(update={"validation_days": 30.0})  # 3 × 30 days > half the span
    assert len(create_model("hybrid", **long_windows.model_dump())._validation(data, "latest")) == 1
    # The default learns a ranker on each regime, but rolling origins need two windows of history: on data
    # spanning less (a young shop's first weeks) the random slices' ranker alone (the rolling origins had
    # none before their window, and the fit failed).
    assert create_model("hybrid", validation_days=30)._regimes(data) == ["random", "latest"]  # 125 days
    assert create_model("hybrid", validation_days=70)._regimes(data) == ["random"]


def test_learned_and_content_components_fuse(split, tmp_path) -> None:
    """SASRec, the graph model and the content encoder are components like the classic ones: their
    scores and ranks feed the ranker, and the fused model saves and loads with them. A hybrid fitted for
    a store gives its text components the store's embedding cache, and loaded from a store (moved
    elsewhere) they use that one."""
    pytest.importorskip("torch")
    data, baskets = split
    store = tmp_path / "here" / "store.duckdb"
    store.parent.mkdir()
    model = create_store_model("hybrid", store, components=("ease", "sasrec", "graph", "content"),
                               validation_share=0.3, validation="random", validation_slices=1, hidden_per_basket=2,
                               n_estimators=50, text_model=None,
                               component_params={"sasrec": {"epochs": 2, "hidden": 16},
                                                 "graph": {"epochs": 2, "factors": 16}}).fit(data)
    assert [c.name for c in model.components_] == ["ease", "sasrec", "graph", "content"]
    assert model.components_[3].config.embedding_cache == str(store.resolve())
    assert EmbeddingCache(store).count() == len({t for t in item_texts(data) if t})
    fused, ease = _hit_rate(model, baskets), _hit_rate(create_model("ease").fit(data), baskets)
    assert fused >= ease - 0.02  # 0.528 vs 0.506 when written
    model.save(tmp_path / "hybrid")
    again = load_model(tmp_path / "hybrid")
    a, b = model.recommend(basket=["i003"], n=5), again.recommend(basket=["i003"], n=5)
    assert a.item_ids == b.item_ids and np.allclose(a.scores, b.scores)
    save_model(store, model)
    moved = tmp_path / "there" / "store.duckdb"
    shutil.copytree(store.parent, moved.parent)
    there = load_saved_model(moved, "hybrid")
    assert there.config.embedding_cache == there.components_[3].config.embedding_cache == str(moved.resolve())


def test_items_no_component_proposes_follow_category_then_popularity(split) -> None:
    """After the candidates come the items sharing the query item's category, then the rest, each
    group by popularity (the tail of the fallback chain content → category → popularity)."""
    data, _ = split
    model = create_model("hybrid", components=("ease",), n_candidates=5, validation="random", validation_slices=1,
                         validation_share=0.3, n_estimators=20, text_model=None).fit(data)
    query = ["i020"]  # category "other", as every item outside the planted groups
    cand = set(model.candidates(query_matrix([model.items_.indices(query)], model.n_items_))[0].tolist()) - {-1}
    ranking = model.items_.indices(list(model.recommend(basket=query, n=model.n_items_).item_ids))
    assert set(ranking[:len(cand)].tolist()) == cand, "every candidate ranks before every other item"
    rest = ranking[len(cand):]
    same = data.categories[rest] == "other"
    assert same.any() and (~same).any(), "both groups are present"
    assert (np.diff(same.astype(int)) <= 0).all(), "the query's category first"
    pop = model.popularity_.ravel()
    for group in (rest[same], rest[~same]):
        assert np.ptp(pop[group]) > 0 and (np.diff(pop[group]) <= 1e-6).all(), "then by popularity"


def test_a_product_nobody_has_bought_gets_look_alikes_then_its_category() -> None:
    """A new product's similar items come from the fallback chain content → category → popularity, not from the
    rankers, which learnt on bought items and put best sellers first."""
    import pyarrow as pa

    rng = np.random.default_rng(0)
    warm = [f"w{k:02d}" for k in range(20)]
    baskets = [rng.choice(10, 3, replace=False) + 10 * (b % 2) for b in range(300)]  # each half bought together
    events = pa.table({"basket_id": [f"b{b}" for b, items in enumerate(baskets) for _ in items],
                       "user_id": [f"u{b % 40}" for b, items in enumerate(baskets) for _ in items],
                       "item_id": [warm[i] for items in baskets for i in items]})
    # Ids sorting after the bought items', so that ties among the components' zero scores do not make them candidates.
    new = {"z1": ("enamel camping kettle green", "set 1"), "z2": ("enamel camping kettle green, large", "set 2"),
           "z3": ("enamel camping mug", "set 2"), "z4": ("linen apron", "set 1")}
    catalog = pa.table({"item_id": warm + list(new),
                        "title": [f"widget {k}" for k in range(20)] + [t for t, _ in new.values()],
                        "category": ["set 1"] * 10 + ["set 2"] * 10 + [c for _, c in new.values()]})
    data = InteractionData.from_tables(events, catalog)
    model = create_model("hybrid", components=("ease", "itemknn"), n_candidates=5, validation="random",
                         validation_slices=1, validation_share=0.3, n_estimators=20, text_model=None).fit(data)
    ranked = list(model.similar_items(["z1"], n=data.n_items)[0].item_ids)
    assert ranked[:2] == ["z2", "z3"], "the look-alike titles first, the closest first"
    assert ranked.index("z4") < min(ranked.index(w) for w in warm[10:]), "then its category, before popularity"
    assert model.recommend(basket=["z1"], n=1).item_ids == ("z2",)
    assert model.recommend(basket=["w01", "w02"], n=3).item_ids[0] in warm[:10], "a bought item's query: the rankers"


def test_components_from_the_command_line() -> None:
    from itemaffinity.evaluation.experiment import parse_models

    (spec,) = parse_models("hybrid:components=ease+sasrec+graph+content:learning_rate=1e+0")
    assert spec.params == {"components": ["ease", "sasrec", "graph", "content"], "learning_rate": 1.0}
    assert spec.label == "hybrid:components=ease+sasrec+graph+content:learning_rate=1.0"
    assert create_model(spec.name, **spec.params).config.components == ("ease", "sasrec", "graph", "content")


def test_catalog_smaller_than_n_candidates() -> None:
    events, catalog = synthetic_events(n_baskets=600, n_items=30, planted=((1, 2),), p_planted=0.5, seed=1)
    model = create_model("hybrid", components=("ease",), validation="random", validation_slices=1,
                         validation_share=0.3, n_estimators=10, text_model=None)
    assert model.config.n_candidates > 30
    recs = model.fit(InteractionData.from_tables(events, catalog)).recommend(basket=["i001"], n=5)
    assert len(recs) == 5 and "i002" in recs.item_ids


def test_folds_in_worker_processes_learn_the_same_ranker(split, monkeypatch) -> None:
    # Each fold is fitted in its own process when n_jobs > 1; with one native thread on both sides the
    # ranker must come out byte for byte the same as folds fitted one after another in this process.
    from threadpoolctl import threadpool_limits

    import itemaffinity.models.hybrid as hybrid_module

    monkeypatch.setattr(hybrid_module, "usable_cores", lambda: 2)  # two workers of one thread each
    data, _ = split
    params = dict(components=COMPONENTS, validation_share=0.3, n_estimators=30, validation="random",
                  component_params={"rules": {"min_support": 0.01}}, text_model=None)
    with threadpool_limits(1):
        serial = create_model("hybrid", n_jobs=1, **params).fit(data)
    parallel = create_model("hybrid", n_jobs=2, **params).fit(data)
    assert bytes(parallel.booster_) == bytes(serial.booster_)
    assert not hasattr(serial, "_pairs_cache"), "a fit in this process keeps no fold's dense pair tables"
    # and the workers do not outlive the fit for long (loky's own default kept them, and their memory, 300 s)
    deadline = time.monotonic() + hybrid_module.WORKER_IDLE_S + 30
    while _loky_workers() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _loky_workers()


def _loky_workers() -> list[int]:
    """Process ids of this process's loky workers (not loky's resource tracker, which stays)."""
    import psutil

    workers = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "LokyProcess" in " ".join(child.cmdline()):
                workers.append(child.pid)
        except psutil.NoSuchProcess:  # exited while we looked
            pass
    return workers


def test_refresh_keeps_the_rankers_and_learns_the_grown_store(split, hybrid) -> None:
    import pyarrow as pa

    data, _ = split
    again = hybrid.refresh(data)
    assert again.booster_.tobytes() == hybrid.booster_.tobytes()
    basket = ["i001", "i020"]
    a, b = again.recommend(basket=basket, n=8), hybrid.recommend(basket=basket, n=8)
    assert a.item_ids == b.item_ids
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)

    # the store grows: all 3,000 baskets, and a new product of set 2 that the last 200 baskets buy with i010
    events, catalog = synthetic_events(n_baskets=3000, n_items=60, planted=((1, 2), (3, 4, 5), (10, 11)),
                                       p_planted=0.5, seed=1)
    last = events.filter(pc.greater_equal(events["basket_id"], "b02800")).group_by("basket_id").aggregate(
        [("user_id", "min"), ("ts", "min")])
    k = last.num_rows
    new = pa.table({"basket_id": last["basket_id"].to_pylist() * 2, "user_id": last["user_id_min"].to_pylist() * 2,
                    "item_id": ["i010"] * k + ["n001"] * k, "event": ["purchase"] * (2 * k),
                    "ts": last["ts_min"].to_pylist() * 2}, schema=events.schema)
    product = pa.table({"item_id": ["n001"], "title": ["product 61 of set 2"], "category": ["set 2"], "price": [2.0]},
                       schema=catalog.schema)
    grown = InteractionData.from_tables(pa.concat_tables([events, new]), pa.concat_tables([catalog, product]))
    refreshed = hybrid.refresh(grown)
    assert refreshed.booster_.tobytes() == hybrid.booster_.tobytes()
    # the rankers still date from the first fit's data, whose last basket is b02499's
    train_end = events.filter(pc.less(events["basket_id"], "b02500"))["ts"].to_numpy().max()
    assert refreshed.rankers_until_ == hybrid.rankers_until_ == train_end.astype("datetime64[s]")
    assert grown.basket_ts.max() > hybrid.rankers_until_
    assert refreshed.n_items_ == hybrid.n_items_ + 1
    assert hybrid.recommend(basket=["i010"], n=10).item_ids.count("n001") == 0
    assert refreshed.recommend(basket=["n001"], n=1).item_ids == ("i010",)


def test_service_refit_refreshes_a_loaded_hybrid_unless_asked_to_relearn(split, hybrid) -> None:
    from itemaffinity.service.jobs import refit

    data, _ = split
    assert refit(hybrid, "hybrid", data).booster_.tobytes() == hybrid.booster_.tobytes()
    fewer = InteractionData.from_tables(*synthetic_events(n_baskets=1500, n_items=60, planted=((1, 2),), seed=3))
    relearnt = refit(hybrid, "hybrid", fewer, relearn=True)
    assert relearnt.config == hybrid.config and relearnt.booster_.tobytes() != hybrid.booster_.tobytes()
    assert refit(None, "popularity", fewer).n_items_ == fewer.n_items


def test_without_a_learnt_ranker_it_averages_its_components(split, monkeypatch, tmp_path) -> None:
    """A small shop whose validation queries never have their hidden item among the candidates (customers who
    only re-buy) gives the rankers nothing to learn: the hybrid then ranks by its components' scores, each
    standardised per query, averaged (the fit used to fail), and saves and loads so."""
    from itemaffinity.models.hybrid import Hybrid

    data, baskets = split
    monkeypatch.setattr(Hybrid, "_learn_ranker", lambda self, folds, regime: (None, 0, 100))
    model = create_model("hybrid", components=("ease", "itemknn"), text_model=None).fit(data)
    assert model._rankers == [] and float(model.candidate_recall_) == 0.0
    fused, ease = _hit_rate(model, baskets), _hit_rate(create_model("ease").fit(data), baskets)
    assert fused >= ease - 0.03, (fused, ease)
    model.save(tmp_path / "hybrid")
    a, b = model.recommend(basket=["i003"], n=5), load_model(tmp_path / "hybrid").recommend(basket=["i003"], n=5)
    assert a.item_ids == b.item_ids and np.allclose(a.scores, b.scores)
