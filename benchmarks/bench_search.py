"""Product search quality on Instacart's real catalog (49,688 names, 134 aisles): sentence model, TF-IDF, both.

Two kinds of query, each made from the catalog itself, so that the right answers are known:

1. **Typed with a slip**: 300 random product names, lower-cased, each word of five letters or more with one
   letter dropped (a seeded choice, never the first): "choclate chip cookis". Hit@10: one of the 10 results
   bears that name.
2. **An aisle's name** ("dog food care", "fresh fruits"): a shopper asking for a kind of product. Precision@10:
   the share of the 10 results in that aisle (the product's category, "department > aisle"). Searched over what
   the product search indexes (name and category), and over the names alone, where only knowing what the words
   mean finds that Mini Dog Treats belong to "dog food care".

Ranked by the sentence model's cosine (all-MiniLM-L6-v2), TF-IDF's (word and character n-grams), and their mean
(`text.ann.TextFusion`, the service's `auto` and the CLI's default), exactly over every product (as `itemaffinity
search` does; the service searches the sentence vectors through an HNSW graph). Also each one's milliseconds a
query, 100 queries one at a time. The store (`--store`, shared with bench_large_catalog.py) keeps the
catalog's sentence vectors, so they are encoded once (about two minutes on two cores).

Usage:
  python benchmarks/bench_search.py [--store out/bench_instacart.duckdb]
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

import numpy as np

from bench_large_catalog import instacart_store

K = 10


def with_slips(name: str, rng: np.random.Generator) -> str:
    """`name` lower-cased, each word of 5+ letters missing one letter other than its first."""
    def slip(word: str) -> str:
        if len(word) < 5 or not word.isalpha():
            return word
        k = int(rng.integers(1, len(word)))
        return word[:k] + word[k + 1:]
    return " ".join(slip(w) for w in name.lower().split())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=Path("out/bench_instacart.duckdb"))
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()

    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.text.ann import ProductSearch, TextFusion
    from itemaffinity.text.encoders import EmbeddingCache, SentenceEncoder, fitted_tfidf, item_texts

    store = instacart_store(args.store)
    data = InteractionData.from_store(store)

    def searches(texts: list[str]) -> dict:
        sentence = SentenceEncoder(cache=EmbeddingCache(store))
        by_sentence = ProductSearch(sentence, data.items.ids, texts, exact_max=data.n_items)
        sentence.cache = None  # queries are not worth caching
        tfidf, vectors = fitted_tfidf(texts)
        by_tfidf = ProductSearch(tfidf, data.items.ids, texts, vectors, exact_max=data.n_items)
        return {"sentence": by_sentence, "tfidf": by_tfidf, "mean of both": TextFusion(by_sentence, by_tfidf)}

    indexed = searches(item_texts(data))
    names_only = searches([str(t or "") for t in data.titles])

    rng = np.random.default_rng(0)
    titles = np.array([str(t or "") for t in data.titles], dtype=object)
    named = np.flatnonzero([len(t.split()) >= 2 for t in titles])
    picked = rng.choice(named, args.queries, replace=False)
    slipped = [with_slips(titles[i], rng) for i in picked]
    same_name = {i: set(np.flatnonzero(np.char.lower(titles.astype(str)) == titles[i].lower()).tolist()) for i in picked}
    aisle_of = np.array([str(c).split(" > ")[-1] if c else "" for c in data.categories], dtype=object)
    aisles = sorted(a for a in set(aisle_of.tolist()) if a and not re.search(r"missing|other", a))
    print(f"{data.n_items:,} products; {len(picked)} names with slips (e.g. {titles[picked[0]]!r} -> "
          f"{slipped[0]!r}); {len(aisles)} aisle names")

    def precision(search) -> float:
        return float(np.mean([np.mean(aisle_of[data.items.indices(r.item_ids)] == a) if len(r) else 0.0
                              for a, r in zip(aisles, search.search_batch(aisles, K))]))

    print(f"{'search':<14}{'slips hit@10':>14}{'aisle precision@10':>20}{'the same, names only':>22}"
          f"{'ms a query':>12}")
    for name, search in indexed.items():
        hits = [bool(set(data.items.indices(r.item_ids).tolist()) & same_name[i])
                for i, r in zip(picked, search.search_batch(slipped, K))]
        t0 = time.perf_counter()
        for q in slipped[:100]:
            search.search(q, K)
        ms = (time.perf_counter() - t0) * 1000 / len(slipped[:100])
        print(f"{name:<14}{np.mean(hits):>14.3f}{precision(search):>20.3f}{precision(names_only[name]):>22.3f}"
              f"{ms:>12.1f}")


if __name__ == "__main__":
    main()
