"""Similar-by-content and semantic search on real Online Retail titles, HNSW and exact."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import scipy.sparse as sp

from itemaffinity.text.ann import ProductSearch, TextFusion, VectorIndex
from itemaffinity.text.encoders import SentenceEncoder, TfidfEncoder


def _titles(catalog: pa.Table) -> dict[str, str]:
    return dict(zip(catalog.column("item_id").to_pylist(), catalog.column("title").to_pylist()))


@pytest.fixture(scope="module")
def sentence_search(sentence_model, retail_catalog: pa.Table) -> ProductSearch:
    return ProductSearch(SentenceEncoder(sentence_model), retail_catalog.column("item_id").to_pylist(),
                         retail_catalog.column("title").to_pylist())


def test_index_exact_and_hnsw_agree() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[7] = 0.0  # an item without text is never returned
    exact, hnsw = VectorIndex(x), VectorIndex(x, exact_max=0, ef=200)
    assert exact.exact and not hnsw.exact
    q = x[:20] + 0.01 * rng.normal(size=(20, 16)).astype(np.float32)
    (ei, ev), (hi, hv) = exact.query(q, 5), hnsw.query(q, 5)
    assert 7 not in ei and 7 not in hi
    others = np.delete(np.arange(20), 7)
    assert np.array_equal(ei[others, 0], others), "a slightly moved vector finds itself first"
    assert np.mean(ei == hi) > 0.95 and np.allclose(np.sort(ev, 1), np.sort(hv, 1), atol=1e-4)
    assert np.all(np.diff(ev, axis=1) <= 1e-6), "best first"
    idx, val = VectorIndex(x[:3]).query(x[:1], 5)  # fewer indexed rows than k: padded
    assert list(idx[0, 3:]) == [-1, -1] and np.all(np.isneginf(val[0, 3:]))


def test_sparse_vectors_are_searched_exactly() -> None:
    x = sp.csr_matrix(np.eye(4, dtype=np.float32))
    index = VectorIndex(x, exact_max=0)
    assert index.exact
    idx, val = index.query(x[2], 2)
    assert idx[0, 0] == 2 and val[0, 0] == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["tfidf", "sentence"])
def test_similar_jumbo_bags(kind: str, request, retail_catalog: pa.Table) -> None:
    titles = _titles(retail_catalog)
    if kind == "tfidf":
        search = ProductSearch(TfidfEncoder(), list(titles), list(titles.values()))
    else:
        search = request.getfixturevalue("sentence_search")
    red = next(i for i, t in titles.items() if t == "JUMBO BAG RED RETROSPOT")
    recs = search.similar(red, k=5)
    assert red not in recs.item_ids and len(recs) == 5
    got = [titles[i] for i in recs.item_ids]
    assert sum("JUMBO" in t or "RETROSPOT" in t for t in got) >= 4, got
    assert search.similar("NO-SUCH-ITEM").item_ids == ()


def test_semantic_search_christmas(sentence_search: ProductSearch, retail_catalog: pa.Table) -> None:
    titles = _titles(retail_catalog)
    got = [titles[i] for i in sentence_search.search("christmas decoration", k=5).item_ids]
    assert sum("CHRISTMAS" in t for t in got) >= 4, got
    # Meaning, not words: no title says "xmas" or "festive".
    assert not any("XMAS" in t or "FESTIVE" in t for t in titles.values())
    for query in ("xmas", "festive ornaments"):
        got = [titles[i] for i in sentence_search.search(query, k=5).item_ids]
        assert sum("CHRISTMAS" in t for t in got) >= 4, (query, got)


def test_hnsw_search_matches_exact(sentence_model, sentence_search: ProductSearch, retail_catalog: pa.Table) -> None:
    hnsw = ProductSearch(SentenceEncoder(sentence_model), retail_catalog.column("item_id").to_pylist(),
                         retail_catalog.column("title").to_pylist(), exact_max=0)
    assert not hnsw.index.exact and sentence_search.index.exact
    for q in ("christmas decoration", "lunch bag", "tea cup and saucer"):
        assert hnsw.search(q, 5).item_ids == sentence_search.search(q, 5).item_ids


def test_fused_search_finds_names_typed_with_a_slip_and_what_a_query_means(sentence_search: ProductSearch,
                                                                            retail_catalog: pa.Table) -> None:
    """The sentence model reads a slip as another word and misses these three products; TF-IDF's character n-grams
    find them but not what "festive ornaments" means. The mean of the two cosines finds both."""
    titles = _titles(retail_catalog)
    by_title = {t: i for i, t in titles.items()}
    tfidf = ProductSearch(TfidfEncoder(), list(titles), list(titles.values()))
    both = TextFusion(sentence_search, tfidf)
    for title, typed in (("BAKING SET SPACEBOY DESIGN", "baing set saceboy desgn"),
                         ("ENAMEL BREAD BIN CREAM", "eamel bred bin crea"),
                         ("ASSORTED COLOUR MINI CASES", "assrted clour mini cass")):
        assert by_title[title] not in sentence_search.search(typed, k=10).item_ids
        assert by_title[title] in both.search(typed, k=10).item_ids, typed
    christmas = [sum("CHRISTMAS" in titles[i] for i in search.search("festive ornaments", k=5).item_ids)
                 for search in (tfidf, both)]
    assert christmas[0] == 0 and christmas[1] >= 4
    recs = both.search("lunch bag", k=5)
    assert len(recs) == 5 and np.all(np.diff(recs.scores) <= 0) and 0 < recs.scores[0] <= 1
