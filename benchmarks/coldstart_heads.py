"""Two behaviour-learned heads on top of the text encoders, scored on the cold-start validation task (issue #5).

Both use the training baskets and the item texts only, so a cold item is still scored from its text:

- inherit: a cold item takes the co-purchase profile (cosine of basket co-occurrence) of its k
  nearest warm items by text; its score for a query is the mean profile value over the query's
  items, blended half and half with the text score (each standardised per query).
- demand: a ridge regression from text vectors to log(1 + sales in the first 30 days on sale) of
  warm items predicts how well a cold item will sell; the text score (standardised per query)
  plus beta × the standardised prediction.
- adapter: instead of fine-tuning the transformer, a linear map W (from the identity) of the
  encoder's fixed vectors, trained with the same symmetric in-batch contrastive loss on the same
  co-purchase pairs (≤ 3 per item; 5 epochs, Adam lr 1e-3, batch 256, penalty 0.01·|W − I|²);
  the cold item is ranked by the max cosine of the mapped vectors.
- oracle: the same with the log of how often each cold item is the hidden target — known only
  after the fact, it bounds what a demand prior could add; "corr" is the demand prediction's
  correlation with it.

Each is run on the pretrained encoder and on the fine-tuned one (the defaults of
`content-finetuned`), so the table shows whether a head helps the fine-tuned encoder more than the
pretrained one — which is what the 1.2× goal measures. Reads the .npz of sweep_finetune.py:

  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/coldstart_heads.py out/sweep.npz [--seeds 0,1] [--task validation|test]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_finetune import TASKS, evaluate_scores, load_task  # noqa: E402


def standardised(scores: np.ndarray) -> np.ndarray:
    """Each row to mean 0, standard deviation 1."""
    return (scores - scores.mean(1, keepdims=True)) / (scores.std(1, keepdims=True) + 1e-9)


def linear_adapter(vectors: np.ndarray, pairs: np.ndarray, seed: int, *, epochs: int = 5, batch: int = 256,
                   lr: float = 1e-3, penalty: float = 0.01) -> np.ndarray:
    """The vectors mapped by a W trained so that co-purchased items' mapped vectors are close: the
    fine-tuning's symmetric in-batch loss and batching (no item twice in a batch), on fixed vectors."""
    import torch
    import torch.nn.functional as F

    from itemaffinity.text.finetune import FinetuneConfig, _batches

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.tensor(vectors, dtype=torch.float32)
    eye = torch.eye(x.shape[1])
    w = torch.nn.Parameter(eye.clone())
    opt = torch.optim.Adam([w], lr=lr)
    scale = FinetuneConfig().scale
    as_tuples = [tuple(p) for p in pairs.tolist()]
    for _ in range(epochs):
        for positions in _batches(as_tuples, batch, rng):
            b = pairs[positions]
            a, c = (F.normalize(x[b[:, k]] @ w, dim=1) for k in (0, 1))
            logits = scale * a @ c.T
            label = torch.arange(len(b))
            loss = (F.cross_entropy(logits, label) + F.cross_entropy(logits.T, label)) / 2
            opt.zero_grad()
            (loss + penalty * ((w - eye) ** 2).sum()).backward()
            opt.step()
    return F.normalize(x @ w, dim=1).detach().numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prep")
    ap.add_argument("--task", choices=TASKS, default="validation")
    ap.add_argument("--seeds", default="0", help="fine-tuning seeds; results are their mean")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    import torch

    from itemaffinity.text.encoders import DEFAULT_MODEL, SentenceEncoder, load_sentence_model
    from itemaffinity.text.finetune import (FinetuneConfig, basket_days, co_purchase_item_pairs, co_purchase_text_pairs,
                                            finetune_encoder, first_sale)
    from itemaffinity.text.models import content_scores

    if args.threads:
        torch.set_num_threads(args.threads)
    texts, baskets, queries, targets, cold, ts = load_task(args.prep, args.task)
    counts = np.asarray(baskets.sum(0)).ravel()
    warm = np.flatnonzero((counts > 0) & np.array([bool(t) for t in texts]))
    co = (baskets.T @ baskets).toarray().astype(np.float64)
    np.fill_diagonal(co, 0)
    root = np.sqrt(np.maximum(counts, 1.0))
    profile = co / root[:, None] / root[None, :]
    day = basket_days(ts)
    entries = baskets.tocoo()
    in_first_30 = day[entries.row] - first_sale(baskets, day)[entries.col] < 30
    demand = np.log1p(np.bincount(entries.col[in_first_30], minlength=len(texts))[warm])
    # how often each cold item is the hidden target, standardised: known only after the fact
    oracle = np.log1p(np.bincount(np.searchsorted(cold, targets), minlength=len(cold)).astype(np.float64))
    oracle = (oracle - oracle.mean()) / oracle.std()
    query_sizes = np.asarray(queries.sum(1))
    pair_index = co_purchase_item_pairs(baskets, texts, FinetuneConfig(), basket_ts=ts)  # the fine-tuning's pairs

    def hr10(cold_scores: np.ndarray) -> float:
        full = np.zeros(queries.shape, dtype=np.float32)
        full[:, cold] = cold_scores
        return evaluate_scores(full, queries, targets, cold)[0]

    base = load_sentence_model(DEFAULT_MODEL)
    encoders = {"pretrained": [SentenceEncoder(base).encode(texts)], "fine-tuned": []}
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = FinetuneConfig(seed=seed)
        tuned = finetune_encoder(base, co_purchase_text_pairs(baskets, texts, cfg, basket_ts=ts), cfg)
        encoders["fine-tuned"].append(SentenceEncoder(tuned).encode(texts))

    print(f"task {args.task}: {len(targets)} queries, {len(cold)} cold items; HR@10 (mean over encoders' seeds)")
    rows: dict[str, dict[str, float]] = {}
    for name, runs in encoders.items():
        results: dict[str, list[float]] = {}
        for run, vectors in enumerate(runs):
            v = vectors.astype(np.float64)
            text = standardised(content_scores(queries, vectors, "max")[:, cold])
            near = np.argsort(-(v[cold] @ v[warm].T), axis=1)[:, :20]
            inherited = profile[warm[near]].mean(1)  # (n_cold, n_items)
            inherit = standardised((queries @ inherited.T) / query_sizes)  # mean over the query's items
            fit = np.linalg.solve(v[warm].T @ v[warm] + np.eye(v.shape[1]), v[warm].T @ (demand - demand.mean()))
            prior = v[cold] @ fit
            prior = (prior - prior.mean()) / (prior.std() + 1e-9)
            variants = {"text (max cosine)": text, "inherit k=20, mean profile": inherit,
                        "text + inherit (1:1)": text + inherit}
            variants.update({f"text + {b} x demand": text + b * prior[None, :] for b in (0.2, 0.4)})
            variants["text + oracle demand (a bound)"] = text + oracle[None, :]
            variants["linear adapter (max cosine)"] = content_scores(
                queries, linear_adapter(vectors, pair_index, seed=run), "max")[:, cold]
            results.setdefault("corr(demand, oracle)", []).append(float(np.corrcoef(prior, oracle)[0, 1]))
            for label, scores in variants.items():
                results.setdefault(label, []).append(hr10(scores))
        rows[name] = {label: float(np.mean(v)) for label, v in results.items()}
    print(f"{'scoring':<32}{'pretrained':>12}{'fine-tuned':>12}{'ratio':>8}")
    for label in rows["pretrained"]:
        pre, ft = rows["pretrained"][label], rows["fine-tuned"][label]
        print(f"{label:<32}{pre:12.4f}{ft:12.4f}{ft / pre:8.3f}")


if __name__ == "__main__":
    main()
