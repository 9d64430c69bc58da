"""The content models pass the model contract and score cold items (real Online Retail sample)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models import Recs, create_model, load_model, model_names
from itemaffinity.text import models as text_models
from itemaffinity.text.encoders import EmbeddingCache, item_texts
from itemaffinity.text.models import content_scores

# JUMBO BAG RED RETROSPOT, JUMBO BAG PINK POLKADOT, LUNCH BAG RED RETROSPOT
RED, PINK, LUNCH = "85099B", "22386", "20725"
TINY_FINETUNE = {"max_pairs": 48, "train_batch_size": 16, "min_count": 3}
PARAMS = {"tfidf": {}, "content": {}, "content-finetuned": TINY_FINETUNE}


@pytest.fixture
def needs_torch(request, name: str) -> None:
    if name != "tfidf":
        request.getfixturevalue("sentence_model")  # skips without sentence-transformers; one torch thread


def _cold(data: InteractionData) -> list[str]:
    return [i for i, n, t in zip(data.items.ids, data.item_events, data.titles) if n == 0 and t]


def test_registered_lazily() -> None:
    assert {"content", "content-finetuned", "tfidf"} <= set(model_names())
    with pytest.raises(ValueError):
        create_model("content", no_such_option=1)


def test_content_scores_mean_and_max() -> None:
    import scipy.sparse as sp

    v = np.array([[1, 0], [0, 1], [np.sqrt(0.5), np.sqrt(0.5)]], dtype=np.float32)
    q = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0]], dtype=np.float32))
    mean = content_scores(q, v, "mean")
    assert np.allclose(mean[0], [0.5, 0.5, np.sqrt(0.5)]) and not mean[1].any()
    assert np.allclose(content_scores(q, v, "max")[0], [1.0, 1.0, np.sqrt(0.5)])
    assert np.allclose(content_scores(q, sp.csr_matrix(v), "max"), content_scores(q, v, "max"))


@pytest.mark.parametrize("name", list(PARAMS))
def test_contract_and_cold_items(name: str, needs_torch, retail_data: InteractionData, tmp_path) -> None:
    model = create_model(name, **PARAMS[name])
    assert model.fit(retail_data) is model
    assert model.item_vectors_.shape[0] == retail_data.n_items
    sims = model.similar_items([RED, "nope"], n=5)
    assert isinstance(sims[0], Recs) and len(sims[0]) == 5 and RED not in sims[0].item_ids
    assert len(sims[1]) == 0
    titles = dict(zip(retail_data.items.ids, retail_data.titles))
    assert sum("BAG" in titles[i] for i in sims[0].item_ids) >= 4, [titles[i] for i in sims[0].item_ids]
    recs = model.recommend(basket=[RED, LUNCH], n=5)
    assert len(recs) == 5 and not {RED, LUNCH} & set(recs.item_ids)
    assert np.all(np.diff(recs.scores) <= 1e-6)
    # Cold items (titles, no events) are scored by content: a cold-only ranking is informative.
    cold = _cold(retail_data)
    assert len(cold) >= 30  # the 30 catalog-only items, and top items first sold after the sampled invoices
    cold_recs = model.recommend(basket=[RED, PINK], n=5, candidates=cold)
    assert len(cold_recs) == 5 and set(cold_recs.item_ids) <= set(cold)
    cold_scores = model.score(_query(model, [RED]))[0, model.items_.indices(cold)]
    assert np.ptp(cold_scores) > 0, "cold items get distinct content scores"
    model.save(tmp_path / name)
    loaded = load_model(tmp_path / name)
    for basket in ([RED, LUNCH], [PINK]):
        a, b = model.recommend(basket=basket, n=10), loaded.recommend(basket=basket, n=10)
        assert a.item_ids == b.item_ids and np.array_equal(a.scores, b.scores)
    assert loaded.similar_items([RED], n=5)[0].item_ids == sims[0].item_ids


def _query(model, ids: list[str]):
    from itemaffinity.models.base import query_matrix

    return query_matrix([model.items_.indices(ids)], model.n_items_)


def test_finetuned_trains_on_fit_data_only_and_reuses_an_artifact(sentence_model, retail_data: InteractionData,
                                                                  tmp_path, monkeypatch) -> None:
    import itemaffinity.text.finetune as ft

    seen: list[tuple[str, str]] = []
    real = ft.finetune_encoder

    def spy(base, pairs, config=None, **kw):
        seen.extend(pairs)
        return real(base, pairs, config, **kw)

    monkeypatch.setattr(ft, "finetune_encoder", spy)
    out = tmp_path / "encoder"
    model = create_model("content-finetuned", output_dir=str(out), **TINY_FINETUNE).fit(retail_data)
    assert len(seen) == TINY_FINETUNE["max_pairs"] and (out / "modules.json").is_file()
    # Every training pair is two titles bought together in the fit data's baskets.
    x = retail_data.basket_items
    co = (x.T @ x).toarray()
    index = {t: i for i, t in enumerate(item_texts(retail_data)) if t}
    assert all(co[index[a], index[b]] >= TINY_FINETUNE["min_count"] for a, b in seen)

    def no_training(*args, **kwargs):
        raise AssertionError("finetuned_path must skip fine-tuning")

    monkeypatch.setattr(text_models, "finetune_on_baskets", no_training)
    again = create_model("content-finetuned", finetuned_path=str(out)).fit(retail_data)
    assert np.allclose(again.item_vectors_, model.item_vectors_, atol=1e-5)
    pretrained = create_model("content").fit(retail_data)
    assert not np.allclose(pretrained.item_vectors_, model.item_vectors_, atol=1e-3)


def test_finetuned_refresh_encodes_new_products_with_the_saved_encoder(sentence_model, retail_events, retail_catalog,
                                                                       retail_data: InteractionData, tmp_path,
                                                                       monkeypatch) -> None:
    """A service rebuild refreshes content-finetuned: products added to the catalog since its fit get
    vectors from the encoder it saved, and nothing is fine-tuned again."""
    newest = 5  # the catalog's last products are unsold: the ones "added since"
    before = InteractionData.from_tables(retail_events, retail_catalog.slice(0, retail_catalog.num_rows - newest))
    out = tmp_path / "encoder"
    model = create_model("content-finetuned", output_dir=str(out), **TINY_FINETUNE).fit(before)
    new_ids = retail_catalog.column("item_id").to_pylist()[-newest:]
    assert (model.items_.indices(new_ids) < 0).all()

    def no_training(*args, **kwargs):
        raise AssertionError("a refresh with a saved encoder must not fine-tune")

    monkeypatch.setattr(text_models, "finetune_on_baskets", no_training)
    fresh = model.refresh(retail_data)
    assert fresh.config == model.config and fresh.n_items_ == retail_data.n_items
    assert (fresh.items_.indices(new_ids) >= 0).all()
    # The saved encoder's vectors: the old products' as before, the new ones' as that encoder gives them.
    old = fresh.items_.indices(list(model.items_.ids))
    assert np.allclose(fresh.item_vectors_[old], model.item_vectors_, atol=1e-5)
    loaded = create_model("content-finetuned", finetuned_path=str(out)).fit(retail_data)
    assert np.allclose(fresh.item_vectors_, loaded.item_vectors_, atol=1e-5)
    pretrained = create_model("content").fit(retail_data)
    assert not np.allclose(fresh.item_vectors_, pretrained.item_vectors_, atol=1e-3)

    from itemaffinity.service.jobs import refit

    assert np.allclose(refit(model, "content-finetuned", retail_data).item_vectors_, fresh.item_vectors_, atol=1e-5)
    # a model the service had not loaded is fitted with the store as its embedding cache
    store = tmp_path / "store.duckdb"
    added = refit(None, "content", retail_data, store=str(store))
    assert added.config.embedding_cache == str(store.resolve())
    assert EmbeddingCache(store).count() == len({t for t in item_texts(retail_data) if t})
    # Without the saved encoder there is nothing learnt to keep: a refresh fine-tunes, as a fit does.
    shutil.rmtree(out)
    with pytest.raises(AssertionError, match="must not fine-tune"):
        model.refresh(retail_data)


def test_embedding_cache_in_the_store(sentence_model, retail_data: InteractionData, tmp_path) -> None:
    store = tmp_path / "store.duckdb"
    first = create_model("content", embedding_cache=str(store)).fit(retail_data)
    n_texts = len({t for t in item_texts(retail_data) if t})
    assert EmbeddingCache(store).count() == n_texts
    second = create_model("content", embedding_cache=str(store)).fit(retail_data)
    assert np.array_equal(first.item_vectors_, second.item_vectors_)
