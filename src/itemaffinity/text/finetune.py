"""Contrastive fine-tuning of a sentence encoder on co-purchase pairs.

Items bought together far more often than chance (`co_purchase_pairs`: count, lift, NPMI over the
baskets × items matrix) become (text, text) positives; every other item in the batch is a
negative: MultipleNegativesRankingLoss, i.e. InfoNCE with in-batch negatives (Henderson et al.
2017, "Efficient Natural Language Response Suggestion"; van den Oord et al. 2018), symmetric
in the two directions. Batches never hold the same text twice, so no positive is also used as
a negative. The encoder learns that "bought with" is close, which titles alone do not say
(a lunch bag and a matching jumbo bag; cake cases and cake stands).

The loop is plain torch (AdamW, linear warm-up and decay, gradient clipping) around the
sentence-transformers loss, seeded, so the same data and config give the same weights on the
same machine. The result is a SentenceTransformer, saved (when asked) in its own folder format,
which `load_sentence_model(folder)` and `SentenceEncoder(folder)` read back.
"""

from __future__ import annotations

import copy
import logging
import random
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import adjacency_matrix, line_order, sequence_neighbours
from itemaffinity.models.base import ModelConfig
from itemaffinity.text.encoders import default_text_model, item_texts, load_sentence_model

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

    from itemaffinity.data.interactions import InteractionData

log = logging.getLogger(__name__)


class FinetuneConfig(ModelConfig):
    """Pair selection and training parameters (defaults: a few minutes on 2 CPU cores for Online Retail)."""

    max_pairs: int = Field(default=20_000, ge=1, description="At most this many co-purchase pairs, best first.")
    min_count: int = Field(default=3, ge=1, description="A pair must share at least this many baskets.")
    pair_score: Literal["count", "lift", "npmi"] = Field(default="count", description=(
        "How pairs are ranked; count (most shared baskets first) beat npmi on the cold-start benchmark, "
        "as did few pairs per item (more items covered)."))
    max_per_item: int | None = Field(default=3, ge=1, description=(
        "At most this many pairs per item (None: no cap); 3, with 2 epochs, lr 5e-4 and only the top layer "
        "trained, was the best setting on the validation cold-start task (benchmarks/sweep_finetune.py)."))
    pair_source: Literal["all", "new", "both"] = Field(default="all", description=(
        "all: pairs from every basket; new: only an item in its first new_item_days on sale with the items "
        "already on sale that were bought with it then (the cold start of the test, as the training data saw "
        "it); both: the new-item pairs first, then the others."))
    new_item_days: float = Field(default=30.0, gt=0, description="How long an item counts as new (pair_source).")
    new_item_warmup_days: float = Field(default=60.0, ge=0, description=(
        "Items first sold in the data's first days are old stock, not new: they give no new-item pairs."))
    pair_days: float | None = Field(default=None, gt=0, description=(
        "Pairs only from the baskets of the data's last this many days (None: every basket): the current "
        "assortment, at the cost of fewer items covered."))
    pair_lines: int | None = Field(default=None, ge=1, description=(
        "Count a pair only where its two items stand at most this many lines apart in an order (None: anywhere "
        "in it). Shoppers enter related goods one after another, so neighbouring lines are sharper positives "
        "than two lines of a wholesale order of hundreds; needs the baskets' line positions (basket_lines). "
        "Level with pairs from anywhere in the order on the pooled validation cold-start windows."))
    direction: Literal["both", "older_to_newer", "newer_to_older"] = Field(default="both", description=(
        "both: the symmetric loss; older_to_newer: each pair's item first sold earlier is the anchor and only "
        "anchor → positive is trained, so the negatives are later items, as the cold items of a cold-start "
        "query are (newer_to_older: the reverse)."))
    epochs: int = Field(default=2, ge=1)
    train_batch_size: int = Field(default=64, ge=2, description="Pairs per batch (in-batch negatives).")
    learning_rate: float = Field(default=5e-4, gt=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    scale: float = Field(default=20.0, gt=0, description="Inverse temperature of the softmax over cosines.")
    loss: Literal["mnrl", "gist"] = Field(default="mnrl", description=(
        "mnrl: every other text of the batch is a negative; gist: GISTEmbed (Solatorio 2024) drops the in-batch "
        "negatives that the starting encoder finds closer than the positive — near-identical titles (the same "
        "bag in another colour) stop being pushed apart."))
    max_seq_length: int = Field(default=32, ge=4, description="Tokens per text (titles are short).")
    freeze_embeddings: bool = Field(
        default=True, description="Keep the token embedding matrix fixed (half the parameters; faster, forgets less).")
    train_layers: int | None = Field(default=1, ge=1, description=(
        "Train only the top this many transformer layers, the lower ones fixed (None: all layers). The few "
        "thousand pairs then reshape the last layer only and leave what the lower ones know of words, which "
        "new products' titles need: 1 beat every layer trained on the validation cold-start task."))
    hard_negatives: bool = Field(default=False, description=(
        "Add to each pair a hard negative: an item whose text the starting encoder finds close to the second "
        "item's (rank 3–30) but that was never bought with the first; teaches which look-alikes do not go together."))
    catalog_pairs: float = Field(default=0.0, ge=0, le=1, description=(
        "Share of the catalog's distinct texts added as (text, text) pairs, every item's — also those never "
        "sold yet. Dropout makes the two views differ (SimCSE, Gao et al. 2021): the encoder keeps the "
        "catalog's texts, new products' included, spread apart while the co-purchase pairs pull goods together."))
    false_negatives: Literal["keep", "mask"] = Field(default="keep", description=(
        "keep: every other text of the batch is a negative; mask: an in-batch text bought with the anchor's "
        "more often than chance (lift > 1 over the baskets) is left out of the anchor's softmax — it goes with "
        "the anchor, only its pair was not picked (max_per_item). A small gain on the validation cold-start task, "
        "within noise (benchmarks/README.md)."))
    interpolate: float = Field(default=1.0, gt=0, le=1, description=(
        "Share of the fine-tuned weights in the result, the rest the starting weights (WiSE-FT, Wortsman et "
        "al. 2022: interpolating keeps what pretraining knew about texts the pairs never showed)."))
    seed: int = 0


def interpolate_weights(base: "SentenceTransformer", tuned: "SentenceTransformer",
                        alpha: float) -> "SentenceTransformer":
    """A copy of `tuned` whose floating-point weights are alpha·tuned + (1 − alpha)·base."""
    mixed = copy.deepcopy(tuned)
    start = base.state_dict()
    state = {k: (alpha * v + (1 - alpha) * start[k].to(v.device)) if v.is_floating_point() else v
             for k, v in tuned.state_dict().items()}
    mixed.load_state_dict(state)
    return mixed.eval()


def co_purchase_pairs(basket_items: sp.csr_matrix, *, min_count: int = 3, score: str = "npmi",
                      max_pairs: int = 10_000, max_per_item: int | np.ndarray | None = 30,
                      usable: np.ndarray | None = None, cooccur: sp.spmatrix | None = None) -> np.ndarray:
    """Item pairs bought together more often than chance, best first.

    Args:
        basket_items: (n_baskets, n_items) 0/1 CSR.
        min_count: minimum number of shared baskets c_ij.
        score: ranking of the pairs: "count" c_ij; "lift" c_ij·N / (c_i·c_j); "npmi"
            log(p_ij / (p_i·p_j)) / −log p_ij (Bouma 2009), in [−1, 1].
        max_pairs: how many pairs to return at most.
        max_per_item: skip a pair once either item already has this many (None: no cap; an (n_items,)
            array: a cap per item).
        usable: optional (n_items,) bool mask; pairs touching other items are dropped (e.g. items
            without text).
        cooccur: optional (n_items, n_items) counts to rank instead of all co-purchases (e.g.
            `new_item_cooccurrence`); lift still uses the baskets' item counts.

    Returns:
        (n_pairs, 2) int64 item-index pairs (i < j unless `cooccur` is given) with lift > 1, best first.
    """
    x = sp.csr_matrix(basket_items > 0, dtype=np.float32)
    n = float(x.shape[0])
    counts = np.asarray(x.sum(axis=0)).ravel()
    co = (sp.triu(x.T @ x, k=1) if cooccur is None else sp.coo_matrix(cooccur)).tocoo()
    keep = co.data >= min_count
    i, j, c = co.row[keep].astype(np.int64), co.col[keep].astype(np.int64), co.data[keep].astype(np.float64)
    if usable is not None:
        ok = usable[i] & usable[j]
        i, j, c = i[ok], j[ok], c[ok]
    lift = c * n / (counts[i] * counts[j])
    pos = lift > 1.0
    i, j, c, lift = i[pos], j[pos], c[pos], lift[pos]
    value = {"count": c, "lift": lift, "npmi": np.log(lift) / -np.log(c / n)}[score]
    order = np.lexsort((j, i, -value))  # best first; ties by index, so the order is reproducible
    if max_per_item is None:
        pick = order[:max_pairs]
    else:
        used = np.zeros(len(counts), dtype=np.int64)
        cap = np.broadcast_to(max_per_item, used.shape)
        pick = []
        for k in order:
            if used[i[k]] < cap[i[k]] and used[j[k]] < cap[j[k]]:
                pick.append(k)
                used[i[k]] += 1
                used[j[k]] += 1
                if len(pick) == max_pairs:
                    break
        pick = np.asarray(pick, dtype=np.int64)
    return np.stack([i[pick], j[pick]], axis=1) if len(pick) else np.zeros((0, 2), np.int64)


def basket_days(basket_ts: np.ndarray) -> np.ndarray:
    """Each basket's day counted from the earliest timed basket (float; inf for a basket without a time)."""
    ts = np.asarray(basket_ts, dtype="datetime64[s]")
    ok = ~np.isnat(ts)
    day = np.full(len(ts), np.inf)
    if ok.any():
        day[ok] = (ts[ok] - ts[ok].min()) / np.timedelta64(86400, "s")
    return day


def first_sale(basket_items: sp.spmatrix, day: np.ndarray) -> np.ndarray:
    """Each item's first day on sale: the smallest `day` of its baskets (inf when it has none)."""
    coo = sp.coo_matrix(basket_items)
    first = np.full(basket_items.shape[1], np.inf)
    np.minimum.at(first, coo.col, day[coo.row])
    return first


def new_item_cooccurrence(basket_items: sp.csr_matrix, basket_ts: np.ndarray, *, new_days: float = 30.0,
                          warmup_days: float = 60.0) -> sp.csr_matrix:
    """(n_items, n_items) counts c[i, j]: baskets in item j's first `new_days` on sale that also hold
    item i, where i was on sale before j.

    These are the pairs a cold-start query asks about — known items bought with a new one — as they
    happened inside the training data. Items first sold in the first `warmup_days` of the data are
    not new (the log starts with old stock), and baskets without a time are not used.
    """
    x = sp.csr_matrix(basket_items > 0, dtype=np.float32)
    day = basket_days(basket_ts)
    if np.isinf(day).all():
        return sp.csr_matrix((x.shape[1], x.shape[1]), dtype=np.float32)
    first = first_sale(x, day)
    coo = x.tocoo()
    age = day[coo.row] - first[coo.col]
    new = (age < new_days) & (first[coo.col] >= warmup_days)
    xn = sp.csr_matrix((np.ones(int(new.sum()), np.float32), (coo.row[new], coo.col[new])), shape=x.shape)
    co = (x.T @ xn).tocoo()
    keep = first[co.row] < first[co.col]
    return sp.csr_matrix((co.data[keep], (co.row[keep], co.col[keep])), shape=co.shape)


def _batches(pairs: Sequence[tuple[str, ...]], size: int, rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of pair positions in which no text occurs twice; batches of one are dropped."""
    remaining = rng.permutation(len(pairs)).tolist()
    out = []
    while remaining:
        batch, seen, rest = [], set(), []
        for pos, p in enumerate(remaining):
            if any(t in seen for t in pairs[p]):
                rest.append(p)
                continue
            batch.append(p)
            seen.update(pairs[p])
            if len(batch) == size:
                rest.extend(remaining[pos + 1:])
                break
        if len(batch) < 2:
            break  # only pairs of one hub item remain: no negatives to learn from
        out.append(batch)
        remaining = rest
    return out


def _loss(model, cfg: FinetuneConfig, start):
    """The contrastive loss of `cfg.loss`: symmetric MultipleNegativesRankingLoss (both directions,
    each its own softmax), or GISTEmbed guided by `start` (the model before training)."""
    try:
        from sentence_transformers.sentence_transformer import losses
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers import losses

    if cfg.loss == "gist":
        return losses.GISTEmbedLoss(model, guide=start, temperature=1.0 / cfg.scale)
    if cfg.direction != "both":
        return losses.MultipleNegativesRankingLoss(model, scale=cfg.scale)  # anchor → positive only
    try:
        return losses.MultipleNegativesRankingLoss(model, scale=cfg.scale, directions=("query_to_doc", "doc_to_query"),
                                                   partition_mode="per_direction")
    except TypeError:  # sentence-transformers < 6
        return losses.MultipleNegativesSymmetricRankingLoss(model, scale=cfg.scale)


def related_texts(basket_items: sp.spmatrix, texts: Sequence[str]) -> tuple[dict[str, int], sp.csr_matrix]:
    """Which texts go together: (text → row, (n_texts, n_texts) bool matrix) with True where the two
    texts' items share baskets more often than chance (lift > 1). Items with the same text are one
    product here, as they are one text in a batch; empty texts are left out."""
    distinct = sorted({t for t in texts if t})
    index = {t: k for k, t in enumerate(distinct)}
    has = [i for i, t in enumerate(texts) if t]
    to_text = sp.csr_matrix((np.ones(len(has), np.float32), (has, [index[texts[i]] for i in has])),
                            shape=(len(texts), len(distinct)))
    x = sp.csr_matrix((sp.csr_matrix(basket_items > 0, dtype=np.float32) @ to_text) > 0, dtype=np.float32)
    counts = np.maximum(np.asarray(x.sum(axis=0)).ravel(), 1.0)
    co = (x.T @ x).tocoo()
    lift = co.data * x.shape[0] / (counts[co.row] * counts[co.col])
    keep = lift > 1.0
    related = sp.csr_matrix((np.ones(int(keep.sum()), bool), (co.row[keep], co.col[keep])), shape=co.shape)
    return index, related


def false_negative_mask(basket_items: sp.spmatrix, texts: Sequence[str],
                        cfg: FinetuneConfig) -> tuple[dict[str, int], sp.csr_matrix] | None:
    """The `related` argument of `finetune_encoder` for `cfg.false_negatives` (None: keep them)."""
    return related_texts(basket_items, texts) if cfg.false_negatives == "mask" else None


def _masked_mnrl(model, columns: list[dict], masked: np.ndarray, cfg: FinetuneConfig):
    """MultipleNegativesRankingLoss with the (b, b) `masked` in-batch negatives left out of each
    softmax: cross-entropy of the scaled cosines, anchor → positive (and back, with direction both)."""
    import torch
    import torch.nn.functional as F

    a, b = (F.normalize(model(c)["sentence_embedding"], dim=-1) for c in columns[:2])
    logits = (cfg.scale * a @ b.T).masked_fill(torch.from_numpy(masked).to(a.device), float("-inf"))
    labels = torch.arange(len(a), device=a.device)
    forward = F.cross_entropy(logits, labels)
    return forward if cfg.direction != "both" else (forward + F.cross_entropy(logits.T, labels)) / 2


def _transformer_layers(model: "SentenceTransformer"):
    """The stack of transformer blocks of the encoder: its longest ModuleList (BERT's encoder.layer,
    DistilBERT's transformer.layer, ...), bottom first."""
    import torch

    stacks = [m for m in model[0].auto_model.modules() if isinstance(m, torch.nn.ModuleList)]
    if not stacks:
        raise ValueError("train_layers: no stack of transformer layers found in this encoder")
    return max(stacks, key=len)


def finetune_encoder(base: "str | Path | SentenceTransformer", pairs: Sequence[tuple[str, ...]],
                     config: FinetuneConfig | None = None, *, output_dir: str | Path | None = None,
                     device: str | None = None,
                     related: tuple[dict[str, int], sp.csr_matrix] | None = None,
                     loss: "Callable[[SentenceTransformer], Any] | None" = None) -> "SentenceTransformer":
    """Fine-tune a sentence encoder so that the texts of each pair embed close together.

    Args:
        base: the starting model (name, folder, or a loaded model, which is copied, not changed).
        pairs: (text_a, text_b) positives, or (text_a, text_b, negative text) triples.
        config: training parameters (pair-selection fields are not used here).
        output_dir: save the fine-tuned model there (sentence-transformers folder format).
        device: torch device for a model loaded by name.
        related: `related_texts` of the training baskets, for `config.false_negatives` "mask".
        loss: optional factory of another loss, given the model being trained (a sentence-transformers
            loss: called with the batch's tokenized columns and no labels), instead of `config.loss`.

    Returns:
        the fine-tuned SentenceTransformer, in eval mode.
    """
    import torch

    cfg = config or FinetuneConfig()
    if not pairs:
        raise ValueError("no training pairs: lower min_count or give more baskets")
    if cfg.false_negatives == "mask" and (related is None or cfg.loss != "mnrl" or len(pairs[0]) != 2 or loss):
        raise ValueError("false_negatives mask needs `related` (false_negative_mask), the mnrl loss and pairs")
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = load_sentence_model(base, device) if isinstance(base, (str, Path)) else copy.deepcopy(base)
    start = copy.deepcopy(model).eval() if cfg.interpolate < 1 or cfg.loss == "gist" else None
    model.max_seq_length = cfg.max_seq_length
    if cfg.freeze_embeddings:
        model[0].auto_model.get_input_embeddings().requires_grad_(False)
    if cfg.train_layers is not None:
        layers = _transformer_layers(model)
        for layer in layers[:max(len(layers) - cfg.train_layers, 0)]:
            layer.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    loss_fn = loss(model) if loss is not None else _loss(model, cfg, start)
    rng = np.random.default_rng(cfg.seed)
    plan = [b for _ in range(cfg.epochs) for b in _batches(pairs, cfg.train_batch_size, rng)]
    warmup = int(cfg.warmup_ratio * len(plan))
    opt = torch.optim.AdamW(trainable, lr=cfg.learning_rate, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / max(warmup, 1), max(0.0, (len(plan) - s) / max(len(plan) - warmup, 1))))
    prep = getattr(model, "preprocess", None) or model.tokenize

    def features(texts: list[str]) -> dict:
        return {k: v.to(model.device) if hasattr(v, "to") else v for k, v in prep(texts).items()}

    t0 = time.perf_counter()
    model.train()
    losses = []
    for step, batch in enumerate(plan):
        columns = [features([pairs[p][c] for p in batch]) for c in range(len(pairs[batch[0]]))]
        if cfg.false_negatives == "mask":
            index, matrix = related
            rows = [index[pairs[p][0]] for p in batch]
            masked = matrix[rows][:, [index[pairs[p][1]] for p in batch]].toarray()
            np.fill_diagonal(masked, False)
            loss = _masked_mnrl(model, columns, masked, cfg)
        else:
            loss = loss_fn(columns, None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == len(plan):
            log.info("fine-tune step %d/%d: loss %.3f (%.0fs)", step + 1, len(plan), np.mean(losses[-50:]),
                     time.perf_counter() - t0)
    model.eval()
    if cfg.interpolate < 1:
        model = interpolate_weights(start, model, cfg.interpolate)
    log.info("fine-tuned on %d pairs, %d steps in %.1fs", len(pairs), len(plan), time.perf_counter() - t0)
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        model.save(str(output_dir))
        log.info("saved the fine-tuned encoder to %s", output_dir)
    return model


def finetune_on_baskets(data: "InteractionData", base: "str | Path | SentenceTransformer | None" = None,
                        config: FinetuneConfig | None = None, *, output_dir: str | Path | None = None,
                        device: str | None = None) -> "SentenceTransformer":
    """Fine-tune on the co-purchase pairs of `data`'s baskets with the items' catalog texts.

    Only `data` is used, so fine-tuning on a training split sees nothing after the split. `base` None:
    `default_text_model()`.
    """
    base = base if base is not None else default_text_model()
    cfg = config or FinetuneConfig()
    texts = item_texts(data)
    vectors = None
    if cfg.hard_negatives:
        from itemaffinity.text.encoders import SentenceEncoder

        if isinstance(base, (str, Path)):  # load once: the encoder mines the negatives and is then trained
            base = load_sentence_model(base, device)
        vectors = SentenceEncoder(base).encode(texts)
    pairs = co_purchase_text_pairs(data.basket_lines, texts, cfg, basket_ts=data.basket_ts, vectors=vectors)
    log.info("fine-tuning on %d co-purchase pairs from %d baskets", len(pairs), data.n_baskets)
    return finetune_encoder(base, pairs, cfg, output_dir=output_dir, device=device,
                            related=false_negative_mask(data.basket_items, texts, cfg))


def _recent_baskets(basket_items: sp.spmatrix, basket_ts: np.ndarray, days: float) -> tuple[sp.csr_matrix, np.ndarray]:
    """The baskets (and their times) of the data's last `days` days."""
    ts = np.asarray(basket_ts, dtype="datetime64[s]")
    recent = ts >= ts[~np.isnat(ts)].max() - np.timedelta64(int(days * 86400), "s")
    return sp.csr_matrix(basket_items)[recent], ts[recent]


def adjacent_cooccurrence(basket_lines: sp.csr_matrix, window: int) -> sp.csr_matrix:
    """(n_items, n_items) upper-triangle counts of item pairs at most `window` lines apart in an order."""
    if basket_lines.nnz and float(basket_lines.data.max()) <= 1 and np.diff(basket_lines.indptr).max() > 1:
        raise ValueError("pair_lines needs the baskets' line positions (InteractionData.basket_lines)")
    pairs = sequence_neighbours(*line_order(basket_lines), window)
    return sp.triu(adjacency_matrix(pairs, basket_lines.shape[1], weighted=False), k=1).tocsr()


def co_purchase_item_pairs(basket_items: sp.csr_matrix, texts: Sequence[str],
                           config: FinetuneConfig | None = None, *, basket_ts: np.ndarray | None = None) -> np.ndarray:
    """(n, 2) item indices of the pairs `config` selects from the baskets, best first: both items
    with text, the two texts different (a pair of identical titles teaches nothing); with a one-way
    `direction`, the anchor first. `basket_ts` is needed for the new-item pairs (`pair_source` new or
    both), `pair_days` and `direction`; `basket_items` must hold line positions (as
    `InteractionData.basket_lines` does) for `pair_lines`."""
    cfg = config or FinetuneConfig()
    if cfg.pair_lines and cfg.pair_source != "all":
        raise ValueError("pair_lines counts pairs over all baskets (pair_source all)")
    timed = cfg.pair_source != "all" or cfg.pair_days is not None or cfg.direction != "both"
    if timed and basket_ts is None:
        raise ValueError("pair_source new/both, pair_days and direction need the baskets' times")
    first = first_sale(basket_items, basket_days(basket_ts)) if cfg.direction != "both" else None  # before any window
    if cfg.pair_days is not None:
        basket_items, basket_ts = _recent_baskets(basket_items, basket_ts, cfg.pair_days)
    select = dict(min_count=cfg.min_count, score=cfg.pair_score, max_pairs=cfg.max_pairs,
                  max_per_item=cfg.max_per_item, usable=np.array([bool(t) for t in texts]))
    parts = []
    if cfg.pair_source in ("new", "both"):
        fresh = new_item_cooccurrence(basket_items, basket_ts, new_days=cfg.new_item_days,
                                      warmup_days=cfg.new_item_warmup_days)
        parts.append(co_purchase_pairs(basket_items, cooccur=fresh, **select))
    if cfg.pair_source in ("all", "both"):
        near = adjacent_cooccurrence(basket_items, cfg.pair_lines) if cfg.pair_lines else None
        parts.append(co_purchase_pairs(basket_items, cooccur=near, **select))
    seen, chosen = set(), []
    for a, b in (p for part in parts for p in part):
        key = (min(a, b), max(a, b))
        if texts[a] != texts[b] and key not in seen and len(chosen) < cfg.max_pairs:
            seen.add(key)
            chosen.append((a, b))
    if first is not None:
        older_first = [(a, b) if (first[a], a) <= (first[b], b) else (b, a) for a, b in chosen]
        chosen = older_first if cfg.direction == "older_to_newer" else [(b, a) for a, b in older_first]
    return np.asarray(chosen, np.int64).reshape(-1, 2)


def co_purchase_text_pairs(basket_items: sp.csr_matrix, texts: Sequence[str],
                           config: FinetuneConfig | None = None, *, basket_ts: np.ndarray | None = None,
                           vectors: np.ndarray | None = None) -> list[tuple[str, ...]]:
    """The (text, text) positives of `co_purchase_item_pairs`, plus `catalog_pairs`; `vectors` (the
    starting encoder's unit item vectors) are needed for `hard_negatives`, which makes each pair a
    (text, text, negative text) triple."""
    cfg = config or FinetuneConfig()
    chosen = co_purchase_item_pairs(basket_items, texts, cfg, basket_ts=basket_ts)
    if not cfg.hard_negatives:
        return [(texts[a], texts[b]) for a, b in chosen] + _catalog_pairs(texts, cfg)
    if cfg.catalog_pairs:
        raise ValueError("catalog_pairs and hard_negatives do not mix (pairs and triples in one batch)")
    if vectors is None:
        raise ValueError("hard_negatives needs the starting encoder's item vectors")
    if cfg.pair_days is not None:  # "never bought with" within the same baskets the pairs came from
        basket_items, _ = _recent_baskets(basket_items, basket_ts, cfg.pair_days)
    negatives = hard_negatives(chosen, basket_items, vectors, np.array([bool(t) for t in texts]),
                               np.random.default_rng(cfg.seed))
    return [(texts[a], texts[b], texts[n]) for (a, b), n in zip(chosen, negatives) if n >= 0 and texts[n] != texts[b]]


def _catalog_pairs(texts: Sequence[str], cfg: FinetuneConfig) -> list[tuple[str, str]]:
    """(text, text) pairs for a seeded `cfg.catalog_pairs` share of the distinct non-empty texts."""
    distinct = sorted({t for t in texts if t})
    n = int(round(cfg.catalog_pairs * len(distinct)))
    pick = np.sort(np.random.default_rng(cfg.seed).choice(len(distinct), n, replace=False))
    return [(distinct[i], distinct[i]) for i in pick]


def hard_negatives(pairs: np.ndarray, basket_items: sp.csr_matrix, vectors: np.ndarray, usable: np.ndarray,
                   rng: np.random.Generator, ranks: tuple[int, int] = (3, 30)) -> np.ndarray:
    """For each pair (a, b), an item among b's nearest texts (`ranks`, by cosine of `vectors`) that
    was never bought with a, chosen at random; −1 when there is none. The nearest few are skipped:
    they are often the same product in another colour, which may well go with a after all."""
    x = sp.csr_matrix(basket_items > 0, dtype=np.float32)
    bought = (x.T @ x).tocsr()
    v = np.asarray(vectors, dtype=np.float32)
    out = np.full(len(pairs), -1, dtype=np.int64)
    for s in range(0, len(pairs), 1024):
        block = pairs[s:s + 1024]
        sims = v[block[:, 1]] @ v.T
        sims[:, ~usable] = -np.inf
        near = np.argsort(-sims, axis=1)[:, ranks[0]:ranks[1]]
        for r, (a, b) in enumerate(block):
            options = [n for n in near[r] if n != a and n != b and bought[a, n] == 0]
            if options:
                out[s + r] = options[rng.integers(len(options))]
    return out
