"""Late interaction (MaxSim over token vectors) against the fine-tuned bi-encoder, for cold start (issue #5).

The `content-finetuned` encoder scores a cold item by the cosine of mean-pooled title vectors. Late
interaction (as ColBERT) keeps each title's token vectors and scores a pair by how well each token
finds its best match in the other title (the mean of the two directions), so single words can link
two products. This script measures, on a `sweep_finetune.py prepare`d task (the max over the query's
items, HR@10 / NDCG@10 over the cold items, as everywhere in this section):
- the pretrained bi-encoder, and MaxSim over the pretrained encoder's token vectors;
- per seed: the bi-encoder fine-tuned with the defaults (`--bi`), and the encoder fine-tuned with the
  same pairs, batches, layers and learning rate but with the MaxSim score inside the loss (in-batch
  softmax, both directions); each MaxSim row also with `--mix` w × the mean-pooled cosine added.

Usage:
  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/explore_late_interaction.py out/sweep.npz [--task validation] [--seeds 0,1,2] [--bi]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from sweep_finetune import evaluate, evaluate_scores, load_task  # noqa: E402

from itemaffinity.text.encoders import DEFAULT_MODEL, SentenceEncoder, load_sentence_model  # noqa: E402
from itemaffinity.text.finetune import FinetuneConfig, co_purchase_text_pairs, finetune_encoder  # noqa: E402


def real_tokens(attention_mask: torch.Tensor) -> torch.Tensor:
    """(n, L) float mask of a batch's title tokens: the attention mask without [CLS] and [SEP]."""
    mask = attention_mask.clone().float()
    mask[:, 0] = 0
    mask[torch.arange(len(mask)), attention_mask.sum(1) - 1] = 0
    return mask


def token_vectors(model, features: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L, d) unit token vectors of tokenized titles (`model.preprocess`) and the (n, L) mask of the title tokens."""
    out = model[0](dict(features))["token_embeddings"]
    return F.normalize(out, dim=-1), real_tokens(features["attention_mask"])


def maxsim(qa: torch.Tensor, ma: torch.Tensor, qb: torch.Tensor, mb: torch.Tensor) -> torch.Tensor:
    """(na, nb) scores: each token's best cosine in the other title, averaged over its title's tokens,
    the two directions averaged."""
    s = torch.einsum("ild,jmd->ijlm", qa, qb)
    a_to_b = s.masked_fill(mb[None, :, None, :] == 0, -2).amax(3)
    b_to_a = s.masked_fill(ma[:, None, :, None] == 0, -2).amax(2)
    ab = (a_to_b * ma[:, None, :]).sum(2) / ma.sum(1).clamp(min=1)[:, None]
    ba = (b_to_a * mb[None, :, :]).sum(2) / mb.sum(1).clamp(min=1)[None, :]
    return 0.5 * (ab + ba)


def score(model, texts, queries, targets, cold, mix: list[float]) -> dict[float, tuple[float, float]]:
    """HR@10 and NDCG@10 of max over query items of MaxSim + w × mean-pooled cosine, for each w."""
    model.eval()
    with torch.inference_mode():
        parts = [token_vectors(model, model.preprocess(texts[s:s + 256])) for s in range(0, len(texts), 256)]
        width = max(t.shape[1] for t, _ in parts)
        tok = torch.cat([F.pad(t, (0, 0, 0, width - t.shape[1])) for t, _ in parts])
        mask = torch.cat([F.pad(m, (0, width - m.shape[1])) for _, m in parts])
        used = np.unique(queries.indices)
        sims = np.zeros((len(texts), len(cold)), np.float32)
        cold_t = torch.as_tensor(cold)
        for s in range(0, len(used), 64):
            rows = torch.as_tensor(used[s:s + 64])
            sims[used[s:s + 64]] = maxsim(tok[rows], mask[rows], tok[cold_t], mask[cold_t]).numpy()
        mean = F.normalize((tok * mask[..., None]).sum(1), dim=-1).numpy()
    cos = mean @ mean[cold].T
    out = {}
    for w in mix:
        pair = sims + w * cos
        full = np.full((queries.shape[0], len(texts)), -1e9, np.float32)
        for r in range(queries.shape[0]):
            full[r, cold] = pair[queries.indices[queries.indptr[r]:queries.indptr[r + 1]]].max(0)
        out[w] = evaluate_scores(full, queries, targets, cold)
    return out


class MaxSimLoss(torch.nn.Module):
    """In-batch softmax over MaxSim scores (both directions), in the sentence-transformers loss interface, so
    that `finetune_encoder` trains with it exactly as with its own loss (pairs, batches, layers, schedule)."""

    def __init__(self, model, scale: float) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, columns: list[dict], labels=None) -> torch.Tensor:
        logits = maxsim(*token_vectors(self.model, columns[0]), *token_vectors(self.model, columns[1])) * self.scale
        label = torch.arange(len(logits))
        return 0.5 * (F.cross_entropy(logits, label) + F.cross_entropy(logits.T, label))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prep")
    ap.add_argument("--task", default="validation")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--scale", type=float, default=20.0, help="inverse temperature of the MaxSim softmax")
    ap.add_argument("--mix", default="0,0.5", help="weights w of the mean-pooled cosine added to MaxSim")
    ap.add_argument("--bi", action="store_true", help="also fine-tune the bi-encoder with the defaults")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    mix = [float(w) for w in args.mix.split(",")]
    base = load_sentence_model(DEFAULT_MODEL)
    texts, baskets, queries, targets, cold, _ = load_task(args.prep, args.task)
    hr0, nd0 = evaluate(SentenceEncoder(base).encode(texts), queries, targets, cold)
    print(f"{'pretrained bi-encoder':<44}HR@10 {hr0:.4f}  NDCG@10 {nd0:.4f}", flush=True)
    for w, (hr, nd) in score(base, texts, queries, targets, cold, mix).items():
        print(f"{f'pretrained MaxSim + {w} cosine':<44}HR@10 {hr:.4f}  NDCG@10 {nd:.4f}  {hr / hr0:.3f}x", flush=True)
    for seed in [int(s) for s in args.seeds.split(",")]:
        cfg = FinetuneConfig(seed=seed)
        pairs = co_purchase_text_pairs(baskets, texts, cfg)
        if args.bi:
            t0 = time.perf_counter()
            hr, nd = evaluate(SentenceEncoder(finetune_encoder(base, pairs, cfg)).encode(texts), queries, targets, cold)
            print(f"{f'seed {seed} bi-encoder fine-tuned':<44}HR@10 {hr:.4f}  NDCG@10 {nd:.4f}  {hr / hr0:.3f}x  "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)
        t0 = time.perf_counter()
        model = finetune_encoder(base, pairs, cfg, loss=lambda m: MaxSimLoss(m, args.scale))
        for w, (hr, nd) in score(model, texts, queries, targets, cold, mix).items():
            print(f"{f'seed {seed} MaxSim fine-tuned + {w} cosine':<44}HR@10 {hr:.4f}  NDCG@10 {nd:.4f}  "
                  f"{hr / hr0:.3f}x  ({time.perf_counter() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
