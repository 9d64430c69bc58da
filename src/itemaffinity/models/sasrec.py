"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), in PyTorch.

A user's last `max_len` items (oldest first, left-padded) go through `blocks` causal
self-attention blocks with learned positional embeddings; the hidden state at each position
scores the next item by a dot product with the same item embedding table used for the input.

Two losses:
- `bce` (the paper): binary cross-entropy of the true next item against one uniformly sampled
  negative per position (negatives avoid the items in the user's training window); more
  negatives per position (`negatives`) learn more per epoch;
- `ce`: softmax cross-entropy over all items at every position, which ranks much better over the
  full catalogue (Klenitskiy & Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better
  than SASRec?", RecSys 2023); with `negatives` = k, a sampled softmax over the target and k
  uniform items shared by the batch, far cheaper on a CPU for large catalogues.

The block follows the authors' code (kang205/SASRec, pmixer/SASRec.pytorch): the attention query
is the layer-normalised input and the residual adds that normalised query; the point-wise feed
forward network has its own residual; padded positions are zeroed after each block.

Token ids: item index i is token i + 1; token 0 is padding, so item index 0 is a real item.
Position ids are the column in the left-padded window, so the most recent item always has
position max_len − 1 (as in the original TensorFlow code).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender

log = logging.getLogger(__name__)

SCORE_BATCH = 512


class SASRecConfig(ModelConfig):
    """SASRec parameters; the defaults are the paper's for the sparse Amazon datasets.

    Attributes:
        hidden, blocks, heads: embedding size, attention blocks, heads per block (divides hidden).
        dropout: on embeddings, attention weights and the feed-forward network.
        max_len: how many of a user's most recent items the model reads.
        epochs, batch_size, lr, beta2: Adam(β1 0.9, β2) over `epochs` passes of the users.
        l2_emb: L2 penalty on the item embeddings (0 in the paper's Amazon runs).
        loss: "bce" (the paper) or "ce" (softmax cross-entropy).
        negatives: bce: sampled negatives per position (None = 1, the paper); ce: None for the
            softmax over every item, k for a sampled softmax over k items shared by a batch.
        init_item_vectors_path: optional .npy of (n_items, d) vectors in the training data's item
            index order (e.g. text embeddings) to start the item embeddings from (PCA to hidden).
        threads: torch intra-op threads while fitting and scoring.
        seed: seeds initialisation, batches, negatives and dropout.
    """

    hidden: int = Field(default=50, ge=1)
    blocks: int = Field(default=2, ge=1)
    heads: int = Field(default=1, ge=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)
    max_len: int = Field(default=50, ge=2)
    epochs: int = Field(default=200, ge=1)
    batch_size: int = Field(default=128, ge=1)
    lr: float = Field(default=0.001, gt=0)
    beta2: float = Field(default=0.98, gt=0, lt=1)
    l2_emb: float = Field(default=0.0, ge=0)
    loss: Literal["bce", "ce"] = "bce"
    negatives: int | None = Field(default=None, ge=1)
    init_item_vectors_path: str | None = None
    threads: int = Field(default=1, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> "SASRecConfig":
        if self.hidden % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden ({self.hidden})")
        return self


def _network(n_items: int, cfg: SASRecConfig):
    """The torch module for `n_items` items (imported lazily: torch is an optional dependency)."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn_norm = nn.LayerNorm(cfg.hidden, eps=1e-8)
            self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
            self.out = nn.Linear(cfg.hidden, cfg.hidden)
            self.ffn_norm = nn.LayerNorm(cfg.hidden, eps=1e-8)
            self.ffn1 = nn.Linear(cfg.hidden, cfg.hidden)
            self.ffn2 = nn.Linear(cfg.hidden, cfg.hidden)
            self.drop = nn.Dropout(cfg.dropout)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            b, length, d = x.shape
            h = cfg.heads
            q_in = self.attn_norm(x)
            w_q, w_k, w_v = self.qkv.weight.chunk(3)
            b_q, b_k, b_v = self.qkv.bias.chunk(3)
            # Query from the normalised input, keys and values from the raw input (authors' code).
            q = F.linear(q_in, w_q, b_q).view(b, length, h, d // h).transpose(1, 2)
            k = F.linear(x, w_k, b_k).view(b, length, h, d // h).transpose(1, 2)
            v = F.linear(x, w_v, b_v).view(b, length, h, d // h).transpose(1, 2)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                 dropout_p=cfg.dropout if self.training else 0.0)
            x = q_in + self.out(att.transpose(1, 2).reshape(b, length, d))
            x = self.ffn_norm(x)
            return x + self.drop(self.ffn2(self.drop(F.relu(self.ffn1(x)))))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
            self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden)
            self.drop = nn.Dropout(cfg.dropout)
            self.blocks = nn.ModuleList(Block() for _ in range(cfg.blocks))
            self.last_norm = nn.LayerNorm(cfg.hidden, eps=1e-8)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            """(b, L) tokens (0 = padding, left-padded) → (b, L, hidden) states."""
            length = tokens.shape[1]
            keep = (tokens > 0).unsqueeze(-1)
            pos = torch.arange(cfg.max_len - length, cfg.max_len, device=tokens.device)
            x = self.item_emb(tokens) * cfg.hidden ** 0.5 + self.pos_emb(pos)
            x = self.drop(x) * keep
            # Causal attention over real items; every position may see itself, so no row is empty.
            causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
            eye = torch.eye(length, dtype=torch.bool, device=tokens.device)
            mask = (causal & (tokens > 0)[:, None, None, :]) | eye
            for block in self.blocks:
                x = block(x, mask) * keep
            return self.last_norm(x)

    return Net()


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run torch on n intra-op threads, restoring the previous count afterwards. One thread is
    the fastest for SASRec's small matrices, and by far on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _left_padded(indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, length: int) -> np.ndarray:
    """(len(rows), length) int64 tokens: the last `length` items of each row (item index + 1),
    oldest first, left-padded with 0."""
    starts, ends = indptr[rows], indptr[rows + 1]
    n = np.minimum(ends - starts, length)
    out = np.zeros((len(rows), length), dtype=np.int64)
    if n.sum() == 0:
        return out
    r = np.repeat(np.arange(len(rows)), n)
    offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # 0..n_r−1 within each row
    out[r, length - n[r] + offset] = items[np.repeat(ends - n, n) + offset].astype(np.int64) + 1
    return out


def _length_buckets(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                    pool: int = 64) -> list[np.ndarray]:
    """One epoch of batches (row indices): every row once, in random order, with rows of similar
    length batched together (within random pools of `pool` batches) so that little of each batch
    is padding. Batch order is shuffled."""
    order = rng.permutation(len(lengths))
    batches = []
    for s in range(0, len(order), batch_size * pool):
        chunk = order[s:s + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[b:b + batch_size] for b in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _projected_vectors(path: str, n_items: int, hidden: int, std: float, rng: np.random.Generator) -> np.ndarray:
    """(n_items, hidden) initial item embeddings from an .npy of (n_items, d) vectors, by PCA when
    d > hidden, rescaled to the usual initial std (random extra columns when fewer than hidden)."""
    vec = np.load(Path(path), allow_pickle=False).astype(np.float64)
    if vec.ndim != 2 or vec.shape[0] != n_items:
        raise ValueError(f"{path}: expected an (n_items={n_items}, d) matrix, got shape {vec.shape}")
    vec = vec - vec.mean(axis=0)
    if vec.shape[1] > hidden:
        _, _, vt = np.linalg.svd(vec, full_matrices=False)
        vec = vec @ vt[:hidden].T  # fewer than `hidden` columns when n_items < hidden
    vec = vec / (vec.std() + 1e-12) * std
    if vec.shape[1] < hidden:
        vec = np.hstack([vec, rng.normal(0.0, std, (n_items, hidden - vec.shape[1]))])
    return vec.astype(np.float32)


class SASRec(Recommender):
    """SASRec over each user's chronological item sequence.

    Learned state: `weights_` (every network parameter, flattened in state_dict order; the
    architecture follows from the config and the item count) and the training sequences
    `seq_indptr_`/`seq_items_` (user index → item indices, oldest first) used by `score_users`.
    """

    name = "sasrec"
    Config = SASRecConfig

    def _fit(self, data: InteractionData) -> None:
        import torch

        cfg = self.config
        self.seq_indptr_ = np.asarray(data.seq_indptr, dtype=np.int64).copy()
        self.seq_items_ = np.asarray(data.seq_items, dtype=np.int32).copy()
        # One training row per user with ≥ 2 items: the last max_len + 1 items; inputs are the
        # first max_len, targets the last max_len (0 where the input is padding).
        windows = self._training_windows()
        if len(windows) == 0:
            raise ValueError("SASRec needs at least one user with two or more items in sequence")
        rng = np.random.default_rng(cfg.seed)
        with torch_threads(cfg.threads):
            torch.manual_seed(cfg.seed)
            net = self._initial_network(rng)
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.9, cfg.beta2), fused=True)
            log.info("SASRec: %d training sequences, %d items, loss %s, %d epochs", len(windows), self.n_items_,
                     cfg.loss, cfg.epochs)
            t_start = time.perf_counter()
            for epoch in range(cfg.epochs):
                t0 = time.perf_counter()
                loss = self._train_epoch(net, opt, windows, rng)
                log.info("SASRec epoch %d/%d: loss %.4f, %.1fs (total %.0fs)", epoch + 1, cfg.epochs, loss,
                         time.perf_counter() - t0, time.perf_counter() - t_start)
        self.weights_ = np.concatenate([t.detach().numpy().ravel() for t in net.state_dict().values()]
                                       ).astype(np.float32)
        self._net = net.eval()
        self._untrained = None

    def _training_windows(self) -> np.ndarray:
        """(rows, max_len + 1) tokens: per user with ≥ 2 items, the last max_len + 1 (`_left_padded`)."""
        users = np.flatnonzero(np.diff(self.seq_indptr_) >= 2)
        return _left_padded(self.seq_indptr_, self.seq_items_, users, self.config.max_len + 1)

    def _initial_network(self, rng: np.random.Generator):
        """A new network: Xavier-normal matrices (as the authors' code), item embeddings optionally
        from `init_item_vectors_path`, a zero padding row."""
        import torch

        cfg = self.config
        net = _network(self.n_items_, cfg)
        for p in net.parameters():
            if p.dim() > 1:
                torch.nn.init.xavier_normal_(p)
        with torch.no_grad():
            if cfg.init_item_vectors_path:
                std = float(net.item_emb.weight[1:].std())
                vec = _projected_vectors(cfg.init_item_vectors_path, self.n_items_, cfg.hidden, std, rng)
                net.item_emb.weight[1:] = torch.from_numpy(vec)
            net.item_emb.weight[0] = 0.0
        return net

    def _train_epoch(self, net, opt, windows: np.ndarray, rng: np.random.Generator) -> float:
        """One pass over the (n_rows, max_len + 1) training windows; returns the mean batch loss."""
        net.train()
        lengths = (windows > 0).sum(axis=1)
        losses = [self._step(net, opt, windows[rows], rng)
                  for rows in _length_buckets(lengths, self.config.batch_size, rng)]
        return float(np.mean(losses))

    def _step(self, net, opt, batch: np.ndarray, rng: np.random.Generator) -> float:
        """One optimiser step on a (b, max_len + 1) window batch; returns the loss."""
        import torch
        from torch.nn import functional as F

        # Trim columns that are padding in every row: the windows are left-padded.
        first = int(np.argmax((batch > 0).any(axis=0)))
        batch = batch[:, min(first, batch.shape[1] - 2):]
        inp, pos = batch[:, :-1], batch[:, 1:]
        valid = inp > 0
        h = net(torch.from_numpy(inp))[torch.from_numpy(valid)]          # (n_valid, hidden)
        target = torch.from_numpy(pos[valid])                             # tokens, all > 0
        emb = net.item_emb.weight
        k = self.config.negatives
        if self.config.loss == "ce" and k is None:
            loss = F.cross_entropy(h @ emb[1:].T, target - 1)
        elif self.config.loss == "ce":
            # Sampled softmax: the target against k uniform items shared by the batch (uniform
            # sampling needs no logQ correction); a sample equal to the target is masked out.
            neg = torch.from_numpy(rng.integers(1, self.n_items_ + 1, size=k))
            neg_logit = (h @ emb[neg].T).masked_fill(neg[None, :] == target[:, None], float("-inf"))
            logit = torch.cat([(h * emb[target]).sum(-1, keepdim=True), neg_logit], dim=1)
            loss = F.cross_entropy(logit, torch.zeros(len(target), dtype=torch.long))
        else:
            cand = torch.cat([target[:, None], torch.from_numpy(self._negatives(batch, valid, rng))], dim=1)
            logit = (emb[cand] @ h.unsqueeze(-1)).squeeze(-1)                # (n_valid, 1 + negatives)
            labels = torch.zeros_like(logit)
            labels[:, 0] = 1.0
            # Per position: BCE of the positive plus that of each negative; with one negative this
            # is the mean over positives plus the mean over negatives, as in the authors' code.
            loss = F.binary_cross_entropy_with_logits(logit, labels, reduction="sum") / len(target)
        if self.config.l2_emb:
            loss = loss + self.config.l2_emb * emb.pow(2).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    def _negatives(self, batch: np.ndarray, valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(n_valid, negatives) tokens, uniform over items and not in the position's window."""
        rows = np.nonzero(valid)[0]
        neg = rng.integers(1, self.n_items_ + 1, size=(len(rows), self.config.negatives or 1))
        for _ in range(100):
            clash = (batch[rows][:, :, None] == neg[:, None, :]).any(axis=1)
            if not clash.any():
                break
            neg[clash] = rng.integers(1, self.n_items_ + 1, size=int(clash.sum()))
        return neg

    # -- scoring ---------------------------------------------------------------------------------
    def network(self):
        """The trained torch module in eval mode (rebuilt from `weights_` after `load`)."""
        import torch

        self._check_fitted()
        if getattr(self, "_net", None) is None:
            net = _network(self.n_items_, self.config)
            state, offset = {}, 0
            for key, t in net.state_dict().items():
                state[key] = torch.from_numpy(self.weights_[offset:offset + t.numel()].reshape(t.shape).copy())
                offset += t.numel()
            net.load_state_dict(state)
            self._net = net.eval()
        return self._net

    def item_vectors(self) -> np.ndarray:
        """(n_items, hidden) output item embeddings, rows in item index order."""
        return self.network().item_emb.weight[1:].detach().numpy()

    def score_sequences(self, indptr: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Next-item scores for sequences given CSR-like: row r's items (indices, oldest first)
        are items[indptr[r]:indptr[r + 1]]; only the last max_len count.

        Returns:
            (n_rows, n_items) float32 scores (dot products of the last hidden state with the item
            embeddings); an empty row scores every item 0.
        """
        import torch

        net = self.network()
        n_rows = len(indptr) - 1
        out = np.zeros((n_rows, self.n_items_), dtype=np.float32)
        emb = net.item_emb.weight[1:]
        with torch.no_grad(), torch_threads(self.config.threads):
            for s in range(0, n_rows, SCORE_BATCH):
                rows = np.arange(s, min(s + SCORE_BATCH, n_rows))
                tokens = _left_padded(np.asarray(indptr, np.int64), np.asarray(items), rows, self.config.max_len)
                nonempty = tokens[:, -1] > 0
                if nonempty.any():
                    h = net(torch.from_numpy(tokens[nonempty]))[:, -1]
                    out[rows[nonempty]] = (h @ emb.T).numpy()
        return out

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        """Scores for query rows taken as sequences in the row's stored item order (a CSR row has
        no time order; for known users `score_users` uses their chronological sequence)."""
        q = sp.csr_matrix(queries)
        return self.score_sequences(q.indptr, q.indices)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(len(user_idx), n_items) next-item scores from each user's training sequence."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        lens = self.seq_indptr_[user_idx + 1] - self.seq_indptr_[user_idx]
        indptr = np.concatenate([[0], np.cumsum(lens)])
        items = np.concatenate([self.seq_items_[self.seq_indptr_[u]:self.seq_indptr_[u + 1]] for u in user_idx]) \
            if len(user_idx) else np.zeros(0, np.int32)
        return self.score_sequences(indptr, items)

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        """Cosine similarity of the item embeddings: (len(item_idx), n_items). 0 for a product in no training
        window (never bought, say): its embedding is its random start, learnt only as a negative, no picture of it;
        a text-initialised one keeps its text's place."""
        item_idx = np.asarray(item_idx)
        v = self.item_vectors()
        v = v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)
        sims = v[item_idx] @ v.T
        if not self.config.init_item_vectors_path:
            untrained = self._untrained_items()
            sims[:, untrained] = 0.0
            sims[untrained[item_idx]] = 0.0
        return sims

    def _untrained_items(self) -> np.ndarray:
        """(n_items,) bool: in no training window; worked out once per fitted or loaded model, not per request."""
        if getattr(self, "_untrained", None) is None:
            tokens = self._training_windows()
            self._untrained = np.bincount(tokens[tokens > 0] - 1, minlength=self.n_items_) == 0
        return self._untrained
