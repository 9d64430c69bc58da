"""SASRec on small synthetic data: the model contract, a learned sequence rule, determinism."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

pytest.importorskip("torch")

from itemaffinity.data.interactions import InteractionData  # noqa: E402
from itemaffinity.data.synthetic import synthetic_events  # noqa: E402
from itemaffinity.models import create_model, load_model  # noqa: E402
from itemaffinity.models.sasrec import SASRec, _left_padded  # noqa: E402

N_ITEMS = 30
SMALL = {"hidden": 32, "blocks": 1, "heads": 2, "dropout": 0.1, "max_len": 10, "batch_size": 64, "lr": 0.01}


@pytest.fixture(scope="module")
def successor() -> InteractionData:
    """Each user walks i, i+1, i+2, … (mod 30) from a random start: item i is always followed by i+1."""
    rng = np.random.default_rng(0)
    rows: dict[str, list] = {"user_id": [], "item_id": [], "ts": []}
    for u in range(300):
        start, length = int(rng.integers(N_ITEMS)), int(rng.integers(3, 9))
        for k in range(length):
            rows["user_id"].append(f"u{u:03d}")
            rows["item_id"].append(f"i{(start + k) % N_ITEMS:02d}")
            rows["ts"].append(dt.datetime(2024, 1, 1) + dt.timedelta(days=k))
    return InteractionData.from_tables(pa.table(rows))


@pytest.fixture(scope="module")
def fitted(successor: InteractionData) -> SASRec:
    return SASRec(**SMALL, epochs=25, loss="ce").fit(successor)


def test_left_padded_keeps_the_last_items_and_pads_left() -> None:
    indptr, items = np.array([0, 3, 3, 8]), np.array([0, 1, 2, 5, 6, 7, 8, 9])
    out = _left_padded(indptr, items, np.array([0, 1, 2]), 4)
    # Item index 0 is token 1: it is a real item, not padding.
    assert out.tolist() == [[0, 1, 2, 3], [0, 0, 0, 0], [7, 8, 9, 10]]


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_learns_the_successor_rule(successor: InteractionData, fitted: SASRec, loss: str) -> None:
    model = fitted if loss == "ce" else SASRec(**SMALL, epochs=40, loss="bce").fit(successor)
    users = successor.users.ids
    predicted = [recs.item_ids[0] for recs in model.recommend_batch(users, n=1)]
    expected = [f"i{(int(successor.items.id(successor.sequence(u)[-1])[1:]) + 1) % N_ITEMS:02d}"
                for u in range(len(users))]
    assert np.mean([p == e for p, e in zip(predicted, expected)]) > 0.9
    # An ad-hoc history (ids in time order) gets its successor too, including the wrap to item 0.
    assert fitted.recommend(history=["i26", "i27", "i28", "i29"], n=1).item_ids == ("i00",)
    assert fitted.recommend(history=["i03", "i04"], n=1).item_ids == ("i05",)


def test_contract_and_round_trip(fitted: SASRec, successor: InteractionData, tmp_path) -> None:
    user = successor.users.id(0)
    recs = fitted.recommend(user, n=5)
    seen = set(successor.items.ids_of(successor.user_items[0].indices))
    assert len(recs) == 5 and not seen & set(recs.item_ids)
    assert np.all(np.diff(recs.scores) <= 1e-6)
    sims = fitted.similar_items(["i05", "nope"], n=4)
    assert len(sims[0]) == 4 and "i05" not in sims[0].item_ids and len(sims[1]) == 0
    fitted.save(tmp_path / "sasrec")
    loaded = load_model(tmp_path / "sasrec")
    assert isinstance(loaded, SASRec)
    again = loaded.recommend(user, n=5)
    assert again.item_ids == recs.item_ids and np.array_equal(again.scores, recs.scores)
    assert loaded.similar_items(["i05"], n=4)[0].item_ids == sims[0].item_ids
    basket = ["i07", "i08"]
    assert np.array_equal(loaded.recommend(basket=basket, n=5).scores, fitted.recommend(basket=basket, n=5).scores)


def test_basket_data_and_determinism() -> None:
    events, catalog = synthetic_events(n_baskets=200, seed=1)
    data = InteractionData.from_tables(events, catalog)
    sampled = {**SMALL, "epochs": 2, "loss": "ce", "negatives": 5}  # sampled softmax
    a = create_model("sasrec", **sampled, seed=3).fit(data)
    b = create_model("sasrec", **sampled, seed=3).fit(data)
    c = create_model("sasrec", **sampled, seed=4).fit(data)
    assert np.array_equal(a.weights_, b.weights_)
    assert not np.array_equal(a.weights_, c.weights_)
    assert a.score_users(np.arange(data.n_users)).shape == (data.n_users, data.n_items)


def test_initial_item_vectors(successor: InteractionData, tmp_path) -> None:
    vec = np.random.default_rng(0).normal(size=(successor.n_items, 48)).astype(np.float32)
    np.save(tmp_path / "vec.npy", vec)
    model = SASRec(**SMALL, epochs=1, init_item_vectors_path=str(tmp_path / "vec.npy")).fit(successor)
    assert model.item_vectors().shape == (successor.n_items, SMALL["hidden"])
    np.save(tmp_path / "bad.npy", vec[:-1])
    with pytest.raises(ValueError, match="n_items"):
        SASRec(**SMALL, epochs=1, init_item_vectors_path=str(tmp_path / "bad.npy")).fit(successor)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="must divide"):
        create_model("sasrec", hidden=50, heads=3)
    with pytest.raises(ValueError):
        create_model("sasrec", loss="bpr")
