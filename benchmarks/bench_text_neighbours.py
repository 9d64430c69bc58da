"""Text neighbours of a large catalog: exact against the pruned candidates `analyze` uses above 20,000 items.

`analyze` stores each product's 10 most text-similar products (TF-IDF cosine over word and character n-grams)
so that a pair can be labelled complement or substitute. Exactly, that is a product over every pair of items.
Above `TEXT_EXACT_MAX` items, `text_neighbours` takes each item's 50 closest candidates over its less common
features (those at most 2,000 items share) and picks the 10 by their full cosine.

On Instacart's whole catalog (49,688 products; `../shared/data/instacart`, ingested with the `instacart`
preset, so the texts are what `analyze` sees) this prints, for each method, its seconds and, against the
exact neighbours: the share of them found (recall@10) and the found neighbours' summed cosine over the exact
ones'. The peer is scikit-learn's brute-force cosine `NearestNeighbors` on the same sparse vectors.

Usage:
  python benchmarks/bench_text_neighbours.py [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "instacart"
K = 10


def instacart_vectors():
    """Unit-norm TF-IDF vectors of Instacart's catalog, built as `analyze` builds them."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.data.mapping import resolve_mapping
    from itemaffinity.models.explain import text_vectors

    with tempfile.TemporaryDirectory() as tmp:
        store = str(Path(tmp) / "bench.duckdb")
        ingest_file(str(DATA / "order_products_sample.parquet"), resolve_mapping("instacart"), store,
                    catalog_path=str(DATA / "products.parquet"))
        return text_vectors(InteractionData.from_store(store))


def by_row(a: np.ndarray, b: np.ndarray, n: int) -> list[set]:
    found = [set() for _ in range(n)]
    for i, j in zip(a.tolist(), b.tolist()):
        found[i].add(j)
    return found


def summed_cosine(vectors, found: list[set]) -> float:
    a = np.array([i for i, js in enumerate(found) for _ in js], dtype=np.int64)
    b = np.array([j for js in found for j in js], dtype=np.int64)
    return float(np.asarray(vectors[a].multiply(vectors[b]).sum(axis=1)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2, help="threads for scikit-learn")
    args = ap.parse_args()
    from sklearn.neighbors import NearestNeighbors

    from itemaffinity.analysis import text_neighbours

    t0 = time.perf_counter()
    vectors = instacart_vectors()
    n = vectors.shape[0]
    print(f"Instacart catalog: {n:,} products, {vectors.shape[1]:,} TF-IDF features "
          f"(vectors built in {time.perf_counter() - t0:.1f}s)")

    t0 = time.perf_counter()
    exact = by_row(*text_neighbours(vectors, K, exact_max=n), n)
    exact_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pruned = by_row(*text_neighbours(vectors, K, exact_max=0), n)
    pruned_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=K + 1, metric="cosine", algorithm="brute", n_jobs=args.threads).fit(vectors)
    _, idx = nn.kneighbors(vectors)
    sklearn_s = time.perf_counter() - t0
    peer = [set(row[row != i][:K].tolist()) for i, row in enumerate(idx)]

    exact_sum = summed_cosine(vectors, exact)
    print(f"{'method':<42} {'seconds':>8} {'recall@10':>10} {'cosine sum / exact':>19}")
    for name, found, secs in (("exact (blocked product)", exact, exact_s),
                              ("pruned candidates (analyze above 20,000)", pruned, pruned_s),
                              ("scikit-learn NearestNeighbors, brute", peer, sklearn_s)):
        hits = sum(len(f & e) for f, e in zip(found, exact))
        print(f"{name:<42} {secs:>8.1f} {hits / sum(map(len, exact)):>10.3f} "
              f"{summed_cosine(vectors, found) / exact_sum:>19.4f}")
    print(f"pruned / exact time: {pruned_s / exact_s:.2f}; pruned / scikit-learn: {pruned_s / sklearn_s:.2f} "
          f"(OMP threads {os.environ.get('OMP_NUM_THREADS', 'unset')})")


if __name__ == "__main__":
    main()
