"""`itemaffinity analyze`: the main job — ingest, index, mine, cluster, evaluate, fit and report.

Each step adds its section to one HTML report and its tables to the store.
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any, Callable

import duckdb
import numpy as np

from itemaffinity.data.interactions import InteractionData
from itemaffinity.errors import InputError
from itemaffinity.evaluation.report import (Report, clusters_section, dataset_sections, leaderboard_section,
                                             mining_section)

log = logging.getLogger(__name__)

DEFAULT_MODELS = ("popularity", "itemknn", "lineknn", "userknn", "ease", "als", "bpr", "rules", "hybrid")
DEFAULT_MODEL = "hybrid"
"""The model `similar`, `recommend` and the service use when none is named (stored in the store's meta)."""
COLD_START_MODELS = ("popularity", "tfidf", "content", "content-finetuned")
"""Scored on the cold-start task too: products first sold after the split, ranked from their text alone."""


TEXT_EXACT_MAX = 20_000
"""Catalogs up to this many items get exact text neighbours (a blocked product, quadratic in the catalog)."""
COMMON_DF = 2_000
"""Above TEXT_EXACT_MAX, a text feature (word or character n-gram) that more items than this share proposes
no neighbours: it still counts in the cosine of those proposed. Keeps the work linear in the catalog."""
RESCORED = 50
"""Above TEXT_EXACT_MAX, candidates per item whose full cosine is computed to pick its neighbours."""


def text_neighbours(vectors, k: int = 10, *, exact_max: int = TEXT_EXACT_MAX, common_df: int = COMMON_DF,
                    rescored: int = RESCORED, block: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(item_a, item_b) index arrays of each item's k most text-similar other items (cosine > 0).

    Exact up to `exact_max` items. Above, an exact product over every pair would take hours at 500,000
    products, so each item's `rescored` candidates are the items closest over its features that at most
    `common_df` items share, and their full cosine picks the k. On Instacart's 49,688 products that finds
    99 % of the exact neighbours in a fifth of the time (benchmarks/bench_large_catalog.py). An item for
    which that finds fewer than k (its features all common: "organic milk") is searched exactly.
    """
    import scipy.sparse as sp

    n = vectors.shape[0]
    kk = min(k, n - 1)
    if kk <= 0:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    if n <= exact_max:
        return _exact_neighbours(vectors, kk, block)
    v = sp.csr_matrix(vectors, dtype=np.float32)
    df = np.bincount(v.indices, minlength=v.shape[1])
    rare = (v @ sp.diags((df <= common_df).astype(np.float32))).tocsr()
    rare_t = rare.T.tocsc()
    rows, cols = [], []
    for s in range(0, n, block):
        cand = (rare[s:s + block] @ rare_t).tocsr()
        a, b = [], []
        for r in range(cand.shape[0]):
            lo, hi = cand.indptr[r], cand.indptr[r + 1]
            found = cand.indices[lo:hi]
            if hi - lo > rescored + 1:  # one more, for the item itself
                found = found[np.argpartition(-cand.data[lo:hi], rescored)[:rescored + 1]]
            found = found[found != s + r]
            a.append(np.full(len(found), s + r, dtype=np.int64))
            b.append(found.astype(np.int64))
        a, b = np.concatenate(a), np.concatenate(b)
        sims = np.asarray(v[a].multiply(v[b]).sum(axis=1)).ravel()
        order = np.lexsort((-sims, a))
        a, b, sims = a[order], b[order], sims[order]
        rank = np.arange(len(a)) - np.searchsorted(a, a)
        keep = (rank < kk) & (sims > 0)
        rows.append(a[keep])
        cols.append(b[keep])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    short = np.flatnonzero(np.bincount(rows, minlength=n) < kk)
    if len(short):
        keep = ~np.isin(rows, short)
        sa, sb = _exact_neighbours(v, kk, block, queries=short)
        rows, cols = np.concatenate([rows[keep], sa]), np.concatenate([cols[keep], sb])
    return rows.astype(np.int32), cols.astype(np.int32)


def _exact_neighbours(vectors, k: int, block: int, queries: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """`text_neighbours` of `queries` (default every item) from their products with every item, `block`
    items at a time."""
    import scipy.sparse as sp

    queries = np.arange(vectors.shape[0]) if queries is None else queries
    rows, cols = [], []
    vt = vectors.T.tocsc() if sp.issparse(vectors) else vectors.T
    for s in range(0, len(queries), block):
        part = queries[s:s + block]
        sims = vectors[part] @ vt
        sims = np.asarray(sims.todense() if sp.issparse(sims) else sims)
        sims[np.arange(len(part)), part] = -1.0
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        good = np.take_along_axis(sims, top, axis=1) > 0
        rows.append(np.repeat(part, k)[good.ravel()])
        cols.append(top.ravel()[good.ravel()])
    return np.concatenate(rows).astype(np.int32), np.concatenate(cols).astype(np.int32)


def mine_tables(store_path: str, data: InteractionData, *, min_support: float = 0.01, pairs_per_item: int = 50,
                pair_min_count: int = 2, text_per_item: int = 10) -> dict:
    """Pairs (top co-purchase partners and top text neighbours per item, each labelled complement /
    substitute / related), itemsets and rules, written to the store."""
    import pyarrow as pa

    from itemaffinity.mining import PairStats, pair_stats, top_k_per_item, transactions
    from itemaffinity.mining.export import itemsets_table, mine, pairs_table, rules_table, write_store_tables
    from itemaffinity.models.explain import relations, text_vectors

    x = transactions(data)
    bought = top_k_per_item(pair_stats(x, min_count=pair_min_count), pairs_per_item, by="shrunk_lift")
    vectors = text_vectors(data)
    ta, tb = text_neighbours(vectors, text_per_item)
    seen = set(zip(bought.item_a.tolist(), bought.item_b.tolist()))
    new = np.array([(a, b) not in seen for a, b in zip(ta.tolist(), tb.tolist())], dtype=bool)
    ta, tb = ta[new], tb[new]
    xc = x.tocsc()
    counts = np.diff(xc.indptr).astype(np.int64)
    co = np.asarray(xc[:, ta].multiply(xc[:, tb]).sum(axis=0)).ravel().astype(np.int64)
    alike = PairStats(ta, tb, co, counts[ta], counts[tb], x.shape[0], directed=True)
    table = pa.concat_tables([pairs_table(bought, data.items), pairs_table(alike, data.items)])
    a = np.concatenate([bought.item_a, ta]).astype(np.int64)
    b = np.concatenate([bought.item_b, tb]).astype(np.int64)
    sim = np.asarray(vectors[a].multiply(vectors[b]).sum(axis=1)).ravel()
    cats = data.categories
    same_cat = np.array([cats[i] is not None and cats[i] == cats[j] for i, j in zip(a, b)], dtype=bool)
    rel = relations(table["n_ab"].to_numpy(), table["lift"].to_numpy(), sim, same_cat)
    table = table.append_column("text_similarity", pa.array(sim.astype(np.float64))) \
                 .append_column("relation", pa.array(rel.tolist(), pa.string()))
    sets, rules, _ = mine(data, min_support=min_support, max_len=None)
    tables = {"pairs": table, "itemsets": itemsets_table(sets, data.items), "rules": rules_table(rules, data.items)}
    write_store_tables(store_path, tables)
    return tables


def cold_start_rows(store_path: str, models: tuple[str, ...], *, split_date: str | None, n_queries: int, seed: int,
                    progress: Callable[[str], None]) -> tuple[list[dict], str | None]:
    """Leaderboard rows of `models` on the cold-start task, and why there are none (the data have no new products
    with a title beside known ones after the split; no text model). The sentence-encoder models need the `deep`
    extra: without sentence-transformers they are left out."""
    import importlib.util

    from itemaffinity.evaluation.experiment import parse_models, run_evaluation

    if importlib.util.find_spec("sentence_transformers") is None:
        models = tuple(m for m in models if not m.startswith("content"))
    if not models:
        return [], "no text model to evaluate (the sentence-encoder models need the `deep` extra)"
    progress(f"evaluating {', '.join(models)} on cold-start (new products, from their text)")
    try:
        rows, _ = run_evaluation(store_path, "cold-start", parse_models(",".join(models)), split_date=split_date,
                                 n_queries=n_queries, seed=seed, progress=progress)
    except InputError as err:
        progress(f"no cold-start evaluation: {err}")
        return [], str(err)
    return rows, None


def run_analysis(store_path: str, out_dir: str, *, models: tuple[str, ...] = DEFAULT_MODELS,
                 cold_start_models: tuple[str, ...] = COLD_START_MODELS, split_date: str | None = None,
                 n_queries: int = 2000, seed: int = 0, refresh_hybrid: bool = False,
                 progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Analyse the store's data and write the report; returns a summary for the CLI.

    refresh_hybrid: save the evaluated hybrid with its components refitted on all the data (Hybrid.refresh)
        instead of fitting it again: its rankers are learnt once, not twice, which saves most of a hybrid fit,
        but they miss the test period (benchmarks/bench_refresh.py: 0.2 % lower NDCG@10 when they are 30 days
        older than the components, 1.7 % when 75 days).
    """
    from itemaffinity.evaluation.experiment import parse_models, run_evaluation
    from itemaffinity.models.cluster import customer_segments, product_groups, store_clusters
    from itemaffinity.models.hybrid import Hybrid
    from itemaffinity.models.registry import create_store_model
    from itemaffinity.store.artifacts import encoder_path, record_evaluations, save_model

    say = progress or (lambda _m: None)
    say("building interaction data")
    data = InteractionData.from_store(store_path)
    if not (data.n_baskets or data.user_items.nnz):
        raise InputError("the store has no events to analyse: ingest a file of orders or events first "
                         "(itemaffinity ingest FILE, or analyze FILE)", file=store_path)
    summary: dict[str, Any] = {"items": data.n_items, "users": data.n_users, "baskets": data.n_baskets}

    say("mining pairs, itemsets and rules")
    mined = mine_tables(store_path, data)
    summary["rules"] = mined["rules"].num_rows

    say("clustering products and segmenting customers")
    groups = product_groups(data, seed=seed)
    with duckdb.connect(store_path, read_only=True) as con:
        segments = customer_segments(con, data, groups, seed=seed)
        has_time = con.execute("SELECT count(ts) > 0 FROM events").fetchone()[0]
    store_clusters(store_path, data, groups, segments)

    task = "basket-completion" if data.n_baskets and has_time else "next-item"
    say(f"evaluating {', '.join(models)} on {task}")
    try:
        rows, evaluated = run_evaluation(store_path, task, parse_models(",".join(models)), split_date=split_date,
                                         n_queries=n_queries, seed=seed, progress=say)
    except InputError as err:  # the data allow no honest test (e.g. orders without times or customers)
        log.warning("no %s evaluation: %s; the models are fitted and saved, but not compared", task, err)
        summary["no_evaluation"] = f"{task}: {err}"
        rows, evaluated = [], {}
    # (only the hybrid: the evaluated content-finetuned saved no encoder to refresh with)
    refreshable = {label: m for label, m in evaluated.items() if refresh_hybrid and isinstance(m, Hybrid)}
    del evaluated  # the other fitted models' memory
    summary["task"] = task
    if task == "basket-completion":
        cold, no_cold = cold_start_rows(store_path, cold_start_models, split_date=split_date, n_queries=n_queries,
                                        seed=seed, progress=say)
    else:
        cold, no_cold = [], "it needs orders with times (new products are those first sold after a time split)"
    if no_cold:
        summary["no_cold_start"] = no_cold
    record_evaluations(store_path, rows + cold)
    for key, task_rows in (("leaderboard", rows), ("cold_start", cold)):
        summary[key] = [{"model": r["label"], "NDCG@10": round(r["NDCG@10"], 4), "HR@10": round(r["HR@10"], 4)}
                        for r in task_rows]

    # Every model on either leaderboard is fitted on all the data and saved, so that the service and
    # `similar --model` answer with each model the report shows (with refresh_hybrid, the hybrid the report
    # scored, its components refitted). content-finetuned also keeps its encoder, for `search --text-model`
    # and `content-finetuned:finetuned_path=` (encoding products added later without training again, as the
    # service's rebuild does; a store loaded from elsewhere uses its own copy, store.artifacts.bind_to_store).
    encoder = str(encoder_path(Path(store_path).resolve(), "content-finetuned"))
    for spec in parse_models(",".join(dict.fromkeys([*models, *(r["label"] for r in cold)]))):
        if spec.label in refreshable:
            say(f"refreshing {spec.label} on all data (its learnt rankers kept)")
            save_model(store_path, refreshable.pop(spec.label).refresh(data), spec.label)
            continue
        say(f"fitting {spec.label} on all data")
        keep = {"output_dir": encoder} if spec.name == "content-finetuned" else {}
        save_model(store_path, create_store_model(spec.name, store_path, **spec.params, **keep).fit(data), spec.label)
        if keep:
            summary["finetuned_encoder"] = encoder
    with duckdb.connect(store_path) as con:
        con.execute("INSERT OR REPLACE INTO meta VALUES ('default_model', ?)",
                    [DEFAULT_MODEL if DEFAULT_MODEL in models else models[0]])

    say("writing report")
    report = Report("itemaffinity report", f"store {store_path}")
    with duckdb.connect(store_path, read_only=True) as con:
        dataset_sections(report, con, data)
    mining_section(report, data, mined["rules"], mined["pairs"])
    leaderboard_section(report, rows + cold)
    if "no_evaluation" in summary:
        report.add("Evaluation", f"<p>No evaluation: {html.escape(summary['no_evaluation'])}.</p>")
    if "no_cold_start" in summary:
        report.add("Cold start", f"<p>No cold-start evaluation of new products from their text: "
                                 f"{html.escape(summary['no_cold_start'].rstrip('.'))}.</p>")
    clusters_section(report, data, groups, segments)
    summary["report"] = str(report.write(out_dir))
    return summary
