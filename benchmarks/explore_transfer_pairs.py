"""Co-purchase pairs of another shop first, then Online Retail's, for cold start (issue #5).

`content-finetuned` learns from a few thousand Online Retail pairs (at most 3 per item). Here the encoder is
first fine-tuned on the pairs of Amazon Beauty (`../shared/data/amazon_beauty`: products reviewed by the same
customer, titles from its items table), a larger set of "bought by the same people" pairs from another
catalogue, and then on Online Retail's pairs with the defaults. The pretrained encoder stays the reference.
HR@10 over the cold items, the `max` over the query's items, on each task given (pooled over their queries).

Usage:
  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/explore_transfer_pairs.py out/sweep.npz [--task validation,validation_early] [--seeds 0]
      [--set key=value ...]   (settings of the Beauty stage; the Online Retail stage keeps the defaults)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sweep_finetune import evaluate, load_task, pooled_hr  # noqa: E402

from itemaffinity.evaluation.experiment import parse_value  # noqa: E402
from itemaffinity.text.encoders import DEFAULT_MODEL, SentenceEncoder, load_sentence_model  # noqa: E402
from itemaffinity.text.finetune import (FinetuneConfig, co_purchase_pairs, co_purchase_text_pairs,  # noqa: E402
                                        finetune_encoder)

BEAUTY = Path(__file__).resolve().parents[2] / "shared" / "data" / "amazon_beauty"


def beauty_pairs(cfg: FinetuneConfig) -> list[tuple[str, str]]:
    """Title pairs of Beauty items in the same customers' histories, ranked and capped as the defaults'."""
    inter = pq.read_table(BEAUTY / "interactions.parquet").to_pandas()
    items = pq.read_table(BEAUTY / "items.parquet").to_pandas().set_index("item_id")["title"]
    n_items = int(max(inter.item_id.max(), items.index.max())) + 1
    texts = [""] * n_items
    for i, t in items.items():
        texts[int(i)] = t if isinstance(t, str) else ""
    users = sp.csr_matrix((np.ones(len(inter), np.float32), (inter.user_id.to_numpy(), inter.item_id.to_numpy())))
    users = sp.csr_matrix((users > 0).astype(np.float32), shape=(users.shape[0], n_items))
    ranked = co_purchase_pairs(users, min_count=cfg.min_count, score=cfg.pair_score, max_pairs=cfg.max_pairs,
                               max_per_item=cfg.max_per_item, usable=np.array([bool(t) for t in texts]))
    return [(texts[a], texts[b]) for a, b in ranked if texts[a] != texts[b]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prep")
    ap.add_argument("--task", default="validation,validation_early")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[], help="Beauty stage setting key=value")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    stage1 = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    base = load_sentence_model(DEFAULT_MODEL)
    tasks = {t: load_task(args.prep, t) for t in args.task.split(",")}
    ref = {t: evaluate(SentenceEncoder(base).encode(x[0]), x[2], x[3], x[4]) for t, x in tasks.items()}
    sizes = {t: len(x[3]) for t, x in tasks.items()}

    def pooled(hr: dict[str, float]) -> float:
        return pooled_hr(hr, sizes)

    ref_hr = {t: v[0] for t, v in ref.items()}
    print("pretrained: " + " / ".join(f"{t} {v:.4f}" for t, v in ref_hr.items()) + f"; pooled {pooled(ref_hr):.4f}",
          flush=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg1 = FinetuneConfig(seed=seed, **stage1)
        t0 = time.perf_counter()
        pairs = beauty_pairs(cfg1)
        beauty = finetune_encoder(base, pairs, cfg1)
        print(f"seed {seed}: Beauty stage on {len(pairs)} pairs ({time.perf_counter() - t0:.0f}s)", flush=True)
        for label, start in (("defaults (Online Retail only)", base), ("Beauty only", None),
                             ("Beauty then Online Retail", beauty)):
            hr = {}
            for t, (texts, baskets, queries, targets, cold, ts) in tasks.items():
                model = beauty
                if start is not None:
                    cfg = FinetuneConfig(seed=seed)
                    model = finetune_encoder(start, co_purchase_text_pairs(baskets, texts, cfg, basket_ts=ts), cfg)
                hr[t] = evaluate(SentenceEncoder(model).encode(texts), queries, targets, cold)[0]
            print(f"  {label}: " + " / ".join(f"{t} {v:.4f}" for t, v in hr.items())
                  + f"; pooled {pooled(hr):.4f} = {pooled(hr) / pooled(ref_hr):.3f}x pretrained "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
