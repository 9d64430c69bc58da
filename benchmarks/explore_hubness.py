"""Hubness-corrected cold-start scoring (CSLS) for both encoders, on the validation windows (issue #5).

Cold items are ranked by their largest cosine to the query's items. Some cold items sit close to many titles
(hubs) and could crowd every query's top 10; CSLS (Conneau et al. 2018, "Word translation without parallel
data") scores a (query item q, cold item c) pair 2·cos(q, c) − r_q − r_c, where r_c is c's mean cosine to its
k nearest warm items and r_q is q's mean cosine to its k nearest cold items; `rc` subtracts r_c alone (`rc/2`
half of it). The scoring is the same for the pretrained and the fine-tuned encoder (the defaults of
`content-finetuned`, fine-tuned on each window's training data), so the table says whether it widens the gap
the 1.2× goal measures. HR@10 per window and pooled over both windows' queries.

Usage:
  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/explore_hubness.py out/sweep.npz [--seeds 0] [--threads 2]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sweep_finetune import evaluate_scores, load_task, pooled_hr  # noqa: E402

from itemaffinity.text.encoders import SentenceEncoder, load_sentence_model  # noqa: E402
from itemaffinity.text.finetune import (FinetuneConfig, co_purchase_text_pairs, false_negative_mask,  # noqa: E402
                                        finetune_encoder)

WINDOWS = ("validation", "validation_early")
SCORINGS = [("cos", 0)] + [(mode, k) for mode in ("rc", "rc/2", "csls") for k in (5, 10, 20)]


def scores(vectors: np.ndarray, queries: sp.csr_matrix, cold: np.ndarray, warm: np.ndarray, mode: str,
           k: int) -> np.ndarray:
    """(q, n_items) scores of the cold items (−1e9 elsewhere): the largest pair score over the query's items."""
    query_items = np.unique(queries.indices)
    pair = vectors[query_items] @ vectors[cold].T
    if mode != "cos":
        r_cold = np.sort(vectors[cold] @ vectors[warm].T, axis=1)[:, -k:].mean(axis=1)
        r_query = np.sort(pair, axis=1)[:, -k:].mean(axis=1)
        pair = {"rc": pair - r_cold[None, :], "rc/2": pair - 0.5 * r_cold[None, :],
                "csls": 2 * pair - r_query[:, None] - r_cold[None, :]}[mode]
    row_of = {item: r for r, item in enumerate(query_items)}
    out = np.full(queries.shape, -1e9, np.float32)
    for r in range(queries.shape[0]):
        rows = [row_of[i] for i in queries.indices[queries.indptr[r]:queries.indptr[r + 1]]]
        out[r, cold] = pair[rows].max(axis=0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prep")
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds; HR@10 is their mean")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_sentence_model()
    hr: dict[tuple[str, str, str, int], list[float]] = {}
    n_queries = {}
    for window in WINDOWS:
        texts, baskets, queries, targets, cold, ts = load_task(args.prep, window, lines=True)
        n_queries[window] = len(targets)
        warm = np.flatnonzero((np.asarray(baskets.sum(axis=0)).ravel() > 0) & np.array([bool(t) for t in texts]))
        pretrained = SentenceEncoder(base).encode(texts)
        encoders = {"pretrained": [pretrained]}
        for seed in [int(s) for s in args.seeds.split(",")]:
            cfg = FinetuneConfig(seed=seed)
            pairs = co_purchase_text_pairs(baskets, texts, cfg, basket_ts=ts, vectors=pretrained)
            tuned = finetune_encoder(base, pairs, cfg, related=false_negative_mask(baskets, texts, cfg))
            encoders.setdefault("fine-tuned", []).append(SentenceEncoder(tuned).encode(texts))
        for name, runs in encoders.items():
            for vectors in runs:
                for mode, k in SCORINGS:
                    top = scores(vectors, queries, cold, warm, mode, k)
                    hr.setdefault((window, name, mode, k), []).append(evaluate_scores(top, queries, targets, cold)[0])
        print(f"{window}: {len(targets)} queries, {len(cold)} cold items", flush=True)
    print(f"\n{'scoring':<10}{'k':>4}" + "".join(f"{w + ' ' + e[:4]:>26}" for w in (*WINDOWS, "pooled")
                                            for e in ("pretrained", "fine-tuned")) + f"{'ratio (pooled)':>16}")
    for mode, k in SCORINGS:
        cells, pooled = [], {}
        for name in ("pretrained", "fine-tuned"):
            by_window = {w: float(np.mean(hr[(w, name, mode, k)])) for w in WINDOWS}
            pooled[name] = pooled_hr(by_window, n_queries)
        for w in WINDOWS:
            cells += [float(np.mean(hr[(w, name, mode, k)])) for name in ("pretrained", "fine-tuned")]
        cells += [pooled["pretrained"], pooled["fine-tuned"]]
        print(f"{mode:<10}{k:>4}" + "".join(f"{c:26.4f}" for c in cells)
              + f"{pooled['fine-tuned'] / pooled['pretrained']:16.3f}")


if __name__ == "__main__":
    main()
