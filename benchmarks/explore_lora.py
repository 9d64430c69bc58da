"""Low-rank adapters (LoRA) in every transformer layer instead of training the top layer, for cold start (issue #5).

`content-finetuned` trains only the top of the encoder's 6 layers on a few thousand co-purchase pairs: training
every layer forgot more of what the lower layers know of words and was worse on validation. LoRA (Hu et al. 2021)
is the other usual way to spend few pairs: every layer's attention and feed-forward weights get a trainable
rank-`r` update, the pretrained weights stay fixed. Everything else is the defaults' (the same pairs, batches,
epochs, loss); the pretrained encoder and the defaults are scored in the same run. HR@10 over the cold items, the
`max` over the query's items, pooled over the tasks' queries.

Needs `peft` (not a dependency of itemaffinity: `.venv/bin/pip install peft`).

Usage:
  python benchmarks/sweep_finetune.py prepare out/sweep.npz
  python benchmarks/explore_lora.py out/sweep.npz [--task validation,validation_early] [--seeds 0]
      [--rank 8] [--lr 1e-3,2e-3]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sweep_finetune import evaluate, load_task, pooled_hr  # noqa: E402

from itemaffinity.text.encoders import DEFAULT_MODEL, SentenceEncoder, load_sentence_model  # noqa: E402
from itemaffinity.text.finetune import FinetuneConfig, co_purchase_text_pairs, finetune_encoder  # noqa: E402


def with_lora(base, rank: int):
    """A copy of `base` whose transformer carries LoRA adapters on every linear map; only they train."""
    import copy

    from peft import LoraConfig, get_peft_model

    model = copy.deepcopy(base)
    model[0].model = get_peft_model(model[0].model, LoraConfig(
        r=rank, lora_alpha=2 * rank, lora_dropout=0.1,
        target_modules=["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prep")
    ap.add_argument("--task", default="validation,validation_early")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--lr", default="1e-3,2e-3", help="learning rates of the LoRA runs")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    base = load_sentence_model(DEFAULT_MODEL)
    tasks = {t: load_task(args.prep, t) for t in args.task.split(",")}
    sizes = {t: len(x[3]) for t, x in tasks.items()}

    def pooled(hr: dict[str, float]) -> float:
        return pooled_hr(hr, sizes)

    def report(label: str, hr: dict[str, float], t0: float) -> None:
        print(f"{label}: " + " / ".join(f"{t} {v:.4f}" for t, v in hr.items()) + f"; pooled {pooled(hr):.4f} "
              f"({time.perf_counter() - t0:.0f}s)", flush=True)

    t0 = time.perf_counter()
    report("pretrained", {t: evaluate(SentenceEncoder(base).encode(x[0]), *x[2:5])[0] for t, x in tasks.items()}, t0)
    for seed in [int(s) for s in args.seeds.split(",")]:
        runs = [("defaults (top layer)", FinetuneConfig(seed=seed), None)]
        runs += [(f"LoRA r {args.rank}, lr {lr}", FinetuneConfig(seed=seed, train_layers=None, learning_rate=float(lr)),
                  args.rank) for lr in args.lr.split(",")]
        for label, cfg, rank in runs:
            t0, hr = time.perf_counter(), {}
            for t, (texts, baskets, queries, targets, cold, ts) in tasks.items():
                start = with_lora(base, rank) if rank else base
                model = finetune_encoder(start, co_purchase_text_pairs(baskets, texts, cfg, basket_ts=ts), cfg)
                hr[t] = evaluate(SentenceEncoder(model).encode(texts), queries, targets, cold)[0]
            report(f"seed {seed}, {label}", hr, t0)


if __name__ == "__main__":
    main()
