"""Encoding a catalog's titles with the sentence encoder, and reading them back from the store's embedding cache.

Every fit of `content`, `content-finetuned` and the hybrid encodes the whole catalog, and so does every refresh
in a service rebuild. Models fitted for a store (`evaluate`, `analyze`, the service) keep the vectors in the store
(`text_embeddings`, keyed by the encoder's weights and the text), so only the first fit per encoder encodes.
This times both on two real catalogs: Online Retail's product descriptions and Instacart's full product
catalogue (`../shared/data/instacart/products.parquet`, 49,688 names).

Usage:
  python benchmarks/bench_encode.py                 # both catalogs, torch's default threads
  python benchmarks/bench_encode.py --threads 1
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never reach for the hub

import duckdb  # noqa: E402

from itemaffinity.text.encoders import EmbeddingCache, SentenceEncoder, load_sentence_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CATALOGS = {
    "online_retail": (ROOT / "data" / "online_retail.parquet", "Description"),
    "instacart": (ROOT.parent / "shared" / "data" / "instacart" / "products.parquet", "product_name"),
}


def time_encoding(texts: list[str], store: str, model=None) -> tuple[float, float, int]:
    """Seconds to encode `texts` with an empty cache in `store`, then again from the cache; distinct texts."""
    model = model if model is not None else load_sentence_model()
    t0 = time.perf_counter()
    SentenceEncoder(model, cache=EmbeddingCache(store)).encode(texts)
    t1 = time.perf_counter()
    SentenceEncoder(model, cache=EmbeddingCache(store)).encode(texts)
    return t1 - t0, time.perf_counter() - t1, len({t for t in texts if t})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_sentence_model(device="cpu")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), all-MiniLM-L6-v2")
    for name, (path, column) in CATALOGS.items():
        texts = [r[0] for r in duckdb.sql(f"SELECT DISTINCT trim({column}) FROM '{path}' "
                                          f"WHERE {column} IS NOT NULL").fetchall()]
        with tempfile.TemporaryDirectory() as tmp:
            cold_s, warm_s, n = time_encoding(texts, str(Path(tmp) / "cache.duckdb"), model)
        print(f"{name}: {n:,} distinct titles: encoded in {cold_s:.1f} s, from the cache in {warm_s:.2f} s "
              f"({cold_s / warm_s:.0f}x faster)")


if __name__ == "__main__":
    main()
