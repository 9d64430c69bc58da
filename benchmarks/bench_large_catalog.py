"""A shop's large catalog: Instacart's 49,688 products, of which 4,621 were bought in the 976 sampled orders.

Most of a real catalog never sells in a given window, and `analyze`'s cost should follow what sold, not the
catalog's square. This measures the two steps whose cost grew with the catalog (`../shared/data/instacart`,
ingested with the `instacart` preset, so the texts are what `analyze` sees):

1. **Text neighbours.** `analyze` stores each product's 10 most text-similar products (TF-IDF cosine over
   word and character n-grams) to label pairs complement or substitute. Exactly, that is a product over every
   pair of items. Above `TEXT_EXACT_MAX` items, `text_neighbours` takes each item's 50 closest candidates over
   its less common features (those at most 2,000 items share) and picks the 10 by their full cosine. Printed
   for each method: its seconds and, against the exact neighbours, the share of them found (recall@10) and the
   found neighbours' summed cosine over the exact ones'. The peer is scikit-learn's brute-force cosine
   `NearestNeighbors` on the same sparse vectors. Then the seconds of `analyze`'s whole mining step.
2. **The hybrid's fit** (the default model; defaults, one worker process per core), in seconds.
3. **Semantic search** (`--search`): the catalog's sentence vectors (from the store's cache) searched for 200
   queries made of the first two words of random product names. Exact search (what `itemaffinity search`
   does for its one query) against building an HNSW graph first (what the service does, for many queries):
   the build's seconds, each query's milliseconds, the graph's recall@10 against the exact top 10, and after
   how many queries the graph has paid for itself.

The store is kept (`--store`) so that the sentence embeddings of the catalog, which the hybrid's features
use, are encoded once (about two minutes on 2 idle cores: benchmarks/bench_encode.py) and read from the store's
cache afterwards.

Usage:
  python benchmarks/bench_large_catalog.py [--store out/bench_instacart.duckdb] [--threads 2] [--skip-neighbours]
  python benchmarks/bench_large_catalog.py --search
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "instacart"
K = 10


def instacart_store(path: Path) -> str:
    """The Instacart sample with its whole catalog, ingested into `path` unless it is there already."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        ingest_file(str(DATA / "order_products_sample.parquet"), resolve_mapping("instacart"), path,
                    catalog_path=str(DATA / "products.parquet"))
    return str(path)


def by_row(a: np.ndarray, b: np.ndarray, n: int) -> list[set]:
    found = [set() for _ in range(n)]
    for i, j in zip(a.tolist(), b.tolist()):
        found[i].add(j)
    return found


def summed_cosine(vectors, found: list[set]) -> float:
    a = np.array([i for i, js in enumerate(found) for _ in js], dtype=np.int64)
    b = np.array([j for js in found for j in js], dtype=np.int64)
    return float(np.asarray(vectors[a].multiply(vectors[b]).sum(axis=1)).sum())


def neighbours(data, threads: int) -> None:
    from sklearn.neighbors import NearestNeighbors

    from itemaffinity.analysis import text_neighbours
    from itemaffinity.models.explain import text_vectors

    t0 = time.perf_counter()
    vectors = text_vectors(data)
    n = vectors.shape[0]
    print(f"TF-IDF: {vectors.shape[1]:,} features (vectors built in {time.perf_counter() - t0:.1f}s)")
    t0 = time.perf_counter()
    exact = by_row(*text_neighbours(vectors, K, exact_max=n), n)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pruned = by_row(*text_neighbours(vectors, K, exact_max=0), n)
    pruned_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=K + 1, metric="cosine", algorithm="brute", n_jobs=threads).fit(vectors)
    _, idx = nn.kneighbors(vectors)
    sklearn_s = time.perf_counter() - t0
    peer = [set(row[row != i][:K].tolist()) for i, row in enumerate(idx)]

    exact_sum = summed_cosine(vectors, exact)
    print(f"{'text neighbours':<42} {'seconds':>8} {'recall@10':>10} {'cosine sum / exact':>19}")
    for name, found, secs in (("exact (blocked product)", exact, exact_s),
                              ("pruned candidates (analyze above 20,000)", pruned, pruned_s),
                              ("scikit-learn NearestNeighbors, brute", peer, sklearn_s)):
        hits = sum(len(f & e) for f, e in zip(found, exact))
        print(f"{name:<42} {secs:>8.1f} {hits / sum(map(len, exact)):>10.3f} "
              f"{summed_cosine(vectors, found) / exact_sum:>19.4f}")
    print(f"pruned / exact time: {pruned_s / exact_s:.2f}; pruned / scikit-learn: {pruned_s / sklearn_s:.2f}")


def search(data, store: str, n_queries: int = 200) -> None:
    from itemaffinity.text.ann import VectorIndex
    from itemaffinity.text.encoders import EmbeddingCache, SentenceEncoder, item_texts

    texts = item_texts(data)
    encoder = SentenceEncoder(cache=EmbeddingCache(store))
    t0 = time.perf_counter()
    vectors = encoder.encode(texts)
    print(f"sentence vectors of {len(texts):,} products: {time.perf_counter() - t0:.1f}s (the store's cache after "
          f"the first run)")
    encoder.cache = None  # search queries are not worth caching (as in the service)
    rng = np.random.default_rng(0)
    names = [str(data.titles[i]) for i in rng.choice(data.n_items, n_queries, replace=False)]
    queries = encoder.encode([" ".join(name.split()[:2]) for name in names])
    exact_index = VectorIndex(vectors, exact_max=len(texts))
    t0 = time.perf_counter()
    exact = [exact_index.query(queries[q:q + 1], K) for q in range(n_queries)]
    exact_ms = (time.perf_counter() - t0) * 1000 / n_queries
    t0 = time.perf_counter()
    graph_index = VectorIndex(vectors, exact_max=0)
    build_s = time.perf_counter() - t0
    print(f"search, {n_queries} queries one at a time: exact {exact_ms:.1f} ms a query; HNSW graph built in "
          f"{build_s:.1f}s")
    for ef in (100, 200, 400):
        graph_index.ef = ef
        t0 = time.perf_counter()
        graph = [graph_index.query(queries[q:q + 1], K) for q in range(n_queries)]
        graph_ms = (time.perf_counter() - t0) * 1000 / n_queries
        recall = np.mean([len(set(g[0][0]) & set(e[0][0])) / K for g, e in zip(graph, exact)])
        cosines = sum(g[1].sum() for g in graph) / sum(e[1].sum() for e in exact)
        print(f"  HNSW ef {ef}: {graph_ms:.2f} ms a query, recall@10 {recall:.3f}, cosine sum / exact {cosines:.4f}; "
              f"the graph pays for itself after "
              f"{build_s * 1000 / max(exact_ms - graph_ms, 1e-9):,.0f} queries")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=Path("out/bench_instacart.duckdb"))
    ap.add_argument("--threads", type=int, default=2, help="threads for scikit-learn")
    ap.add_argument("--skip-neighbours", action="store_true", help="only the mining step and the hybrid's fit")
    ap.add_argument("--search", action="store_true", help="only the semantic search: exact against an HNSW graph")
    args = ap.parse_args()
    from itemaffinity.analysis import mine_tables
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.mining import transactions
    from itemaffinity.models.registry import create_store_model

    store = instacart_store(args.store)
    data = InteractionData.from_store(store)
    bought = int((transactions(data).getnnz(axis=0) > 0).sum())
    print(f"Instacart: {data.n_items:,} products, {bought:,} bought, "
          f"{data.n_baskets:,} baskets (store {store})")
    if args.search:
        search(data, store)
        return
    if not args.skip_neighbours:
        neighbours(data, args.threads)
    t0 = time.perf_counter()
    mine_tables(store, data)
    print(f"analyze's mining step (pairs, text neighbours, relations, itemsets, rules): "
          f"{time.perf_counter() - t0:.1f}s")
    model = create_store_model("hybrid", store)
    t0 = time.perf_counter()
    model.fit(data)
    print(f"hybrid fit: {time.perf_counter() - t0:.1f}s (sentence embeddings from the store's cache after the "
          f"first run)")


if __name__ == "__main__":
    main()
