"""One conformance suite for every classic model (STYLE 6): a checkerboard with a known answer.

Users 0–29 buy only items 0–9 and users 30–59 only items 10–19, so any sensible model must
recommend group-A items for a group-A basket, and vice versa.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import Recs, create_model, load_model

CLASSIC = ["popularity", "popularity-recent", "itemknn", "lineknn", "userknn", "usermix", "ease", "als", "bpr", "rules"]
PERSONAL = ["itemknn", "lineknn", "userknn", "usermix", "ease", "als", "bpr", "rules"]


@pytest.fixture(scope="module")
def checkerboard() -> InteractionData:
    rng = np.random.default_rng(0)
    rows = {"basket_id": [], "user_id": [], "item_id": [], "ts": []}
    b = 0
    for u in range(60):
        group = range(0, 10) if u < 30 else range(10, 20)
        for _ in range(4):
            for i in rng.choice(list(group), size=4, replace=False):
                rows["basket_id"].append(f"b{b}")
                rows["user_id"].append(f"u{u:02d}")
                rows["item_id"].append(f"i{i:02d}")
                rows["ts"].append(dt.datetime(2024, 1, 1) + dt.timedelta(hours=b))
            b += 1
    return InteractionData.from_tables(pa.table(rows))


def _params(name: str) -> dict:
    # Two latent groups: two factors are the right answer (more would memorise the tiny data).
    return {"als": {"factors": 2, "iterations": 20, "regularization": 0.1},
            "bpr": {"factors": 8, "iterations": 200, "learning_rate": 0.05},
            "rules": {"min_support": 0.01}}.get(name, {})


@pytest.mark.parametrize("name", CLASSIC)
def test_contract(name: str, checkerboard: InteractionData, tmp_path) -> None:
    model = create_model(name, **_params(name))
    assert model.fit(checkerboard) is model
    sims = model.similar_items(["i01", "nope"], n=5)
    assert isinstance(sims[0], Recs) and len(sims[0]) == 5 and "i01" not in sims[0].item_ids
    assert len(sims[1]) == 0  # unknown id: empty, not an error
    recs = model.recommend(basket=["i01", "i02"], n=5)
    assert len(recs) == 5 and not {"i01", "i02"} & set(recs.item_ids)
    assert np.all(np.diff(recs.scores) <= 1e-6), "scores must be sorted best first"
    with pytest.raises(ValueError):
        recs.scores[0] = 1.0  # immutable results
    user = model.recommend("u00", n=5)
    seen = set(checkerboard.items.ids_of(checkerboard.user_items[checkerboard.users.index("u00")].indices))
    assert not seen & set(user.item_ids)
    cand = model.recommend(basket=["i01"], n=3, candidates=["i05", "i15", "i19"])
    assert set(cand.item_ids) <= {"i05", "i15", "i19"}
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    again = loaded.recommend(basket=["i01", "i02"], n=5)
    assert again.item_ids == recs.item_ids and np.allclose(again.scores, recs.scores, atol=1e-6)


@pytest.mark.parametrize("name", PERSONAL)
def test_known_answer(name: str, checkerboard: InteractionData) -> None:
    model = create_model(name, **_params(name)).fit(checkerboard)
    group_a = {f"i{i:02d}" for i in range(10)}
    group_b = {f"i{i:02d}" for i in range(10, 20)}
    assert set(model.recommend(basket=["i01", "i02", "i03"], n=5).item_ids) <= group_a
    assert set(model.recommend(basket=["i11", "i12"], n=5).item_ids) <= group_b
    # The group-B user who has bought the fewest group-B items: their unseen group-B items come first.
    users = [f"u{u}" for u in range(30, 60)]
    seen = {u: set(checkerboard.items.ids_of(checkerboard.user_items[checkerboard.users.index(u)].indices))
            for u in users}
    user = min(users, key=lambda u: len(seen[u]))
    unseen_b = group_b - seen[user]
    assert unseen_b, "fixture: every group-B user has bought every group-B item"
    assert set(model.recommend(user, n=len(unseen_b)).item_ids) == unseen_b
    assert set(model.similar_items(["i04"], n=3)[0].item_ids) <= group_a


@pytest.mark.parametrize("name", CLASSIC)
def test_batch_matches_single(name: str, checkerboard: InteractionData) -> None:
    model = create_model(name, **_params(name)).fit(checkerboard)
    baskets = [["i01"], ["i12", "i13"], ["unknown-item"]]
    batch = model.recommend_batch(histories=baskets, n=4)
    for basket, recs in zip(baskets, batch):
        single = model.recommend(basket=basket, n=4)
        assert single.item_ids == recs.item_ids
    assert len(batch[2]) == 4  # nothing known: a popularity fallback, not an error


@pytest.mark.parametrize("name", CLASSIC)
def test_anonymous_baskets(name: str, checkerboard: InteractionData) -> None:
    """Orders without customer ids (a shop export of baskets only) are enough for every model: each fits and
    completes a basket (usermix, whose profiles are customers', failed on an empty posterior)."""
    rows = {"basket_id": [f"b{b}" for b in range(checkerboard.n_baskets) for _ in checkerboard.basket_items[b].indices],
            "item_id": [checkerboard.items.ids[i] for b in range(checkerboard.n_baskets)
                        for i in checkerboard.basket_items[b].indices]}
    anonymous = InteractionData.from_tables(pa.table(rows))
    assert anonymous.n_users == 0 and anonymous.n_baskets == checkerboard.n_baskets
    recs = create_model(name, **_params(name)).fit(anonymous).recommend(basket=["i01", "i02"], n=5)
    assert len(recs) == 5 and not {"i01", "i02"} & set(recs.item_ids)
    if name in PERSONAL:  # and learns which items go together from the baskets alone (group B: a model that
        # learnt nothing ties every item, and ties rank group A's lower indices first)
        group_b = {f"i{i:02d}" for i in range(10, 20)}
        assert set(create_model(name, **_params(name)).fit(anonymous).recommend(basket=["i11", "i12"], n=5).item_ids) \
            <= group_b


def test_unknown_model_and_bad_params() -> None:
    from itemaffinity.errors import InputError

    with pytest.raises(InputError):
        create_model("no-such-model")
    with pytest.raises(ValueError):
        create_model("itemknn", k=0)
    with pytest.raises(ValueError):
        create_model("ease", not_a_param=1)


@pytest.mark.parametrize("name", ["ease", "itemknn"])
def test_recency_decay_scores_users_by_their_latest_items(name: str, checkerboard: InteractionData, tmp_path) -> None:
    model = create_model(name, recency_decay=0.5, source="users").fit(checkerboard)
    user = checkerboard.users.index("u00")
    weights = checkerboard.recency_history(0.5)[user]
    assert np.allclose(model.score_users(np.array([user]))[0], model.score(weights)[0], atol=1e-5)
    # and not the unweighted history: the latest items count more
    assert not np.allclose(model.score_users(np.array([user]))[0], model.score(model.user_history_[user])[0])
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    assert loaded.recommend("u00", n=5).item_ids == model.recommend("u00", n=5).item_ids


def test_usermix_posterior_points_at_the_customer_whose_history_it_is(checkerboard: InteractionData) -> None:
    """A customer's own history weighs their profile above the average of their group, and the
    other group's customers get no weight."""
    import scipy.sparse as sp

    model = create_model("usermix", temperature=1.0).fit(checkerboard)
    u = checkerboard.users.index("u07")
    items = checkerboard.user_items[u].indices
    query = sp.csr_matrix((np.ones(len(items), np.float32), (np.zeros(len(items), int), items)),
                          shape=(1, checkerboard.n_items))
    post = model.posterior(query).toarray()[0]
    assert abs(post.sum() - 1) < 1e-5 and post[30:].sum() < 1e-3
    assert post[u] > post[:30].mean()


@pytest.fixture(scope="module")
def instacart(tmp_path_factory: pytest.TempPathFactory, shared_file) -> InteractionData:
    """Instacart's real order sample with its whole catalog: 4,621 of 49,688 products were bought."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    store = tmp_path_factory.mktemp("instacart") / "store.duckdb"
    ingest_file(str(shared_file("instacart", "order_products_sample.parquet")),
                resolve_mapping("instacart", None, [], [], {}), store)
    return InteractionData.from_store(store)


@pytest.mark.parametrize("name", CLASSIC)
def test_a_catalog_of_mostly_unsold_products(name: str, instacart: InteractionData) -> None:
    """A shop's catalog lists every product, most never sold in the data: each model fits and answers, and none
    holds an item-by-item matrix over the whole catalog (EASE's dense 49,688² weights were 10 GB and crashed
    `similar` on this catalog)."""
    assert instacart.n_items == 49_688
    sold = np.flatnonzero(np.diff(instacart.basket_items.tocsc().indptr) > 0)
    assert len(sold) == 4_621
    model = create_model(name, **_params(name)).fit(instacart)
    banana = "24852"  # the most bought product
    recs = model.recommend(basket=[banana], n=10)
    assert len(recs) == 10 and banana not in recs.item_ids
    largest = max((v.nbytes for v in vars(model).values() if isinstance(v, np.ndarray)), default=0)
    assert largest < 4 * len(sold) ** 2 + 1, "no dense array larger than sold × sold float32"
    if name in PERSONAL:  # the neighbours come from what was bought with it
        assert set(instacart.items.indices(recs.item_ids)) <= set(sold)


@pytest.mark.parametrize("name", CLASSIC)
def test_a_product_never_sold_gets_best_sellers_marked_as_such(name: str, instacart: InteractionData) -> None:
    """Mini Dog Treats is in none of the sample's baskets: a co-purchase model has no score for it. A basket of it is
    answered with the best sellers, marked `fallback` (it was an arbitrary list of zero scores: a chocolate bar,
    cold caplets, a salsa; bpr's, from factors learnt only as a negative), and nothing is similar to it. rules and
    usermix did not say so: rules' "similar" items were its popularity floor, Banana first, and usermix's were what
    the customers who bought least buy (Strawberries, Soda), both unflagged. The others answer from what they have
    for any basket: popularity, bpr's learnt item biases."""
    model = create_model(name, **_params(name)).fit(instacart)
    new = "10569"
    assert instacart.item_baskets[instacart.items.index(new)] == 0
    recs = model.recommend(basket=[new], n=5)
    similar = model.similar_items([new], n=5)[0]
    best_sellers = model.recommend(basket=[], n=5)
    assert best_sellers.fallback and best_sellers.item_ids[0] == "24852"  # Banana, the most bought product
    if name in ("itemknn", "lineknn", "userknn", "ease", "als", "rules", "usermix"):
        assert recs.fallback and recs.item_ids == best_sellers.item_ids and len(similar) == 0
    else:
        assert not recs.fallback and len(recs) == 5 and new not in recs.item_ids
    if name == "bpr":
        assert len(similar) == 0
    batch = model.recommend_batch(histories=[[new], ["24852"]], n=5)
    assert batch[0].item_ids == recs.item_ids and batch[0].fallback == recs.fallback and not batch[1].fallback


@pytest.mark.parametrize("name,params", [("graph", {"epochs": 5}), ("sasrec", {"epochs": 2})])
def test_a_product_never_sold_has_no_neighbours_in_a_learnt_embedding(name: str, params: dict,
                                                                       instacart: InteractionData) -> None:
    """LightGCN's and SASRec's vectors of a product never bought are their random start, learnt only as a negative:
    Mini Dog Treats' "similar" products were plum tomatoes, soda and ham (graph), millet cereal and yerba mate
    (sasrec), and the graph completed its basket with Brut and an ale. Now nothing is similar to it, and the graph
    answers its basket with the best sellers, marked as such; SASRec's next-item guess from it stays its own."""
    model = create_model(name, **params).fit(instacart)
    assert len(model.similar_items(["10569"], n=5)[0]) == 0
    assert len(model.similar_items(["24852"], n=5)[0]) == 5  # Banana, bought: neighbours as before
    recs = model.recommend(basket=["10569"], n=5)
    assert recs.fallback == (name == "graph") and len(recs) == 5
    if name == "graph":
        assert recs.item_ids[0] == "24852"
