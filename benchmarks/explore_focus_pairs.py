"""Fine-tuning pairs focused where the new products' titles lie, for cold start (issue #5).

`content-finetuned` spends a few thousand co-purchase pairs, at most 3 per item, on the top transformer
layer. Here each unsold item with a title (at fine-tuning time: the products about to launch) names its
`--k` nearest warm items by the pretrained cosine, the frontier, and a frontier item may take `--cap`
pairs instead of 3, so that more of the training falls where the cold titles are. Everything else is the
defaults' (pairs ranked by count, lift > 1, at least 3 shared baskets; batches, layer, learning rate).
With `--cap 3` the pairs, and so the figures, are exactly the defaults'. HR@10 / NDCG@10 over the cold
items, the `max` over the query's items, as everywhere in this section.

Usage:
  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/explore_focus_pairs.py out/sweep.npz [--task validation] [--seeds 0,1,2] [--k 10] [--cap 6]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sweep_finetune import evaluate, load_task  # noqa: E402

from itemaffinity.text.encoders import DEFAULT_MODEL, SentenceEncoder, load_sentence_model  # noqa: E402
from itemaffinity.text.finetune import FinetuneConfig, co_purchase_pairs, finetune_encoder  # noqa: E402


def frontier(baskets: sp.csr_matrix, texts: list[str], vectors: np.ndarray, k: int) -> np.ndarray:
    """(n_items,) bool: the warm items among the `k` nearest (pretrained cosine) of some unsold item with text."""
    has_text = np.array([bool(t) for t in texts])
    sold = np.asarray(baskets.sum(axis=0)).ravel() > 0
    unsold, warm = np.flatnonzero(~sold & has_text), np.flatnonzero(sold & has_text)
    near = np.argpartition(-(vectors[unsold] @ vectors[warm].T), k, axis=1)[:, :k]
    out = np.zeros(len(texts), bool)
    out[warm[np.unique(near)]] = True
    return out


def capped_pairs(baskets: sp.csr_matrix, texts: list[str], cap: np.ndarray, cfg: FinetuneConfig) -> list[tuple[int, int]]:
    """The defaults' pair selection (`co_purchase_item_pairs`) with a cap per item: identical titles dropped
    after the caps, as there."""
    ranked = co_purchase_pairs(baskets, min_count=cfg.min_count, score=cfg.pair_score, max_pairs=cfg.max_pairs,
                               max_per_item=cap, usable=np.array([bool(t) for t in texts]))
    return [(a, b) for a, b in ranked if texts[a] != texts[b]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prep")
    ap.add_argument("--task", default="validation")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--k", type=int, default=10, help="nearest warm items each unsold item names")
    ap.add_argument("--cap", type=int, default=6, help="pairs a frontier item may take (the others: max_per_item)")
    args = ap.parse_args()
    base = load_sentence_model(DEFAULT_MODEL)
    texts, baskets, queries, targets, cold, _ = load_task(args.prep, args.task)
    vectors = SentenceEncoder(base).encode(texts)
    hr0, nd0 = evaluate(vectors, queries, targets, cold)
    near = frontier(baskets, texts, vectors, args.k)
    print(f"pretrained: HR@10 {hr0:.4f} NDCG@10 {nd0:.4f}; frontier {near.sum()} warm items", flush=True)
    hrs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = FinetuneConfig(seed=seed)
        chosen = capped_pairs(baskets, texts, np.where(near, args.cap, cfg.max_per_item), cfg)
        t0 = time.perf_counter()
        model = finetune_encoder(base, [(texts[a], texts[b]) for a, b in chosen], cfg)
        hr, nd = evaluate(SentenceEncoder(model).encode(texts), queries, targets, cold)
        hrs.append(hr)
        print(f"seed {seed}, frontier cap {args.cap}: {len(chosen)} pairs, HR@10 {hr:.4f} NDCG@10 {nd:.4f} "
              f"{hr / hr0:.3f}x pretrained ({time.perf_counter() - t0:.0f}s)", flush=True)
    print(f"mean HR@10 {np.mean(hrs):.4f} = {np.mean(hrs) / hr0:.3f}x pretrained")


if __name__ == "__main__":
    main()
