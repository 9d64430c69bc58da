"""LightGCN (He et al., SIGIR 2020): linear propagation of embeddings over the interaction graph.

The bipartite graph joins rows (users, or baskets) to the items they contain, A = [[0, R], [Rᵀ, 0]]
with R the binary rows × items matrix. With Â = D^−½ A D^−½ and E⁽⁰⁾ the learned embeddings,
E⁽ᵏ⁺¹⁾ = Â E⁽ᵏ⁾ and the final embeddings are the layer mean (1 / (K + 1)) Σₖ E⁽ᵏ⁾. Training
minimises BPR (Rendle et al. 2009) over (row, item, sampled negative item) triples with L2 on the
layer-0 embeddings of the triple, as in the authors' code (gusye1234/LightGCN-PyTorch).

Scoring: a known user is the dot product of its final embedding with the items'; an ad-hoc
basket or history (and every user when the graph is over baskets) is the mean of its items'
final embeddings; item similarity is the cosine of the final item embeddings.
"""

from __future__ import annotations

import functools
import logging
import time
import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender

log = logging.getLogger(__name__)


class LightGCNConfig(ModelConfig):
    """LightGCN parameters. The authors train 64 factors, 3 layers, Adam lr 0.001, batch 2048,
    reg 1e-4 for up to 1,000 epochs; the defaults here trade that for 60 epochs at lr 0.01 and
    batch 8192 (each batch propagates the whole graph, so fewer, larger batches are cheaper).

    Attributes:
        factors, layers: embedding size and propagation layers K (0 = plain BPR matrix factorisation).
        epochs, batch_size, lr: Adam over `epochs` passes of every (row, item) edge.
        reg: L2 on the layer-0 embeddings of each (row, item, negative) triple, per triple.
        graph: "users" (user–item) or "baskets" (basket–item; users when the data has no baskets).
        threads: torch intra-op threads while fitting.
        seed: seeds initialisation, batch order and negatives.
    """

    factors: int = Field(default=64, ge=1)
    layers: int = Field(default=3, ge=0)
    epochs: int = Field(default=60, ge=1)
    batch_size: int = Field(default=8192, ge=1)
    lr: float = Field(default=0.01, gt=0)
    reg: float = Field(default=1e-4, ge=0)
    graph: Literal["users", "baskets"] = "users"
    threads: int = Field(default=1, ge=1)
    seed: int = 0


@functools.cache
def _symmetric_spmm():
    """Â @ X for a symmetric sparse CSR Â, with the backward pass Â @ dY (torch's own CSR backward
    goes through a transpose and is several times slower on a CPU)."""
    import torch

    class SymmetricSpMM(torch.autograd.Function):
        @staticmethod
        def forward(ctx, a, x):
            ctx.a = a
            return a @ x

        @staticmethod
        def backward(ctx, grad):
            return None, ctx.a @ grad

    return SymmetricSpMM.apply


def normalized_adjacency(r: sp.csr_matrix) -> sp.csr_matrix:
    """Â = D^−½ A D^−½ for A = [[0, R], [Rᵀ, 0]]: (n_rows + n_items) square, rows first then
    items; nodes without edges get zero rows."""
    r = sp.csr_matrix(r, dtype=np.float32, copy=True)
    r.data[:] = 1.0
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.zeros_like(deg)
    inv[deg > 0] = deg[deg > 0] ** -0.5
    return sp.csr_matrix(sp.diags(inv) @ a @ sp.diags(inv), dtype=np.float32)


class LightGCN(Recommender):
    """LightGCN over the user–item (or basket–item) graph.

    Learned state: `item_vectors_` (n_items, factors) final item embeddings and `row_vectors_`
    (n_rows, factors) final embeddings of the graph's rows (users in user index order, or
    baskets), both in the item/user index spaces of the training data.
    """

    name = "graph"
    Config = LightGCNConfig

    def _fit(self, data: InteractionData) -> None:
        import torch

        from itemaffinity.models.sasrec import torch_threads

        cfg = self.config
        by_baskets = cfg.graph == "baskets" and data.n_baskets > 0
        r = sp.csr_matrix(data.basket_items if by_baskets else self.user_history_, dtype=np.float32, copy=True)
        r.eliminate_zeros()
        n_rows, n_items = r.shape
        rows, items = r.nonzero()
        if len(rows) == 0:
            raise ValueError("LightGCN needs at least one interaction")
        self.graph_rows_ = np.array(["baskets" if by_baskets else "users"])
        pos_keys = np.sort(rows.astype(np.int64) * n_items + items)
        adj = normalized_adjacency(r)
        rng = np.random.default_rng(cfg.seed)
        with torch_threads(cfg.threads):
            torch.manual_seed(cfg.seed)
            with warnings.catch_warnings():  # "CSR support is in beta": we only use Â @ X
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                a = torch.sparse_csr_tensor(adj.indptr, adj.indices, adj.data, adj.shape, check_invariants=True)
            emb = torch.nn.Parameter(torch.randn(n_rows + n_items, cfg.factors) * 0.1)
            opt = torch.optim.Adam([emb], lr=cfg.lr, fused=True)
            log.info("LightGCN: %d %s × %d items, %d edges, %d layers, %d epochs", n_rows, self.graph_rows_[0],
                     n_items, len(rows), cfg.layers, cfg.epochs)
            t_start = time.perf_counter()
            for epoch in range(cfg.epochs):
                t0 = time.perf_counter()
                losses = []
                order = rng.permutation(len(rows))
                for s in range(0, len(order), cfg.batch_size):
                    b = order[s:s + cfg.batch_size]
                    u, i = rows[b], items[b]
                    j = self._negatives(u, pos_keys, n_items, rng)
                    final = self._propagate(a, emb)
                    eu, ei, ej = final[u], final[n_rows + i], final[n_rows + j]
                    bpr = torch.nn.functional.softplus(-((eu * ei).sum(1) - (eu * ej).sum(1))).mean()
                    e0 = emb[np.concatenate([u, n_rows + i, n_rows + j])]
                    loss = bpr + cfg.reg * 0.5 * e0.pow(2).sum() / len(b)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    losses.append(float(loss.detach()))
                log.info("LightGCN epoch %d/%d: loss %.4f, %.1fs (total %.0fs)", epoch + 1, cfg.epochs,
                         np.mean(losses), time.perf_counter() - t0, time.perf_counter() - t_start)
            with torch.no_grad():
                final = self._propagate(a, emb).numpy()
        self.row_vectors_ = np.ascontiguousarray(final[:n_rows], dtype=np.float32)
        self.item_vectors_ = np.ascontiguousarray(final[n_rows:], dtype=np.float32)
        # A product without an edge (never bought) was only ever sampled as a negative: its vector is no picture of
        # it, as a query or as a neighbour, so it is zero, as ALS's are.
        self.item_vectors_[np.diff(r.tocsc().indptr) == 0] = 0.0

    def _propagate(self, a, emb):
        """Layer mean of Âᵏ E for k = 0..layers."""
        spmm = _symmetric_spmm()
        out, x = emb, emb
        for _ in range(self.config.layers):
            x = spmm(a, x)
            out = out + x
        return out / (self.config.layers + 1)

    @staticmethod
    def _negatives(u: np.ndarray, pos_keys: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform item indices that row u has not interacted with (resampled on a clash)."""
        j = rng.integers(n_items, size=len(u))
        for _ in range(100):
            keys = u.astype(np.int64) * n_items + j
            at = np.minimum(np.searchsorted(pos_keys, keys), len(pos_keys) - 1)
            clash = pos_keys[at] == keys
            if not clash.any():
                break
            j[clash] = rng.integers(n_items, size=int(clash.sum()))
        return j

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        """Mean of the query items' final embeddings, dotted with every item's: (q, n_items)."""
        q = sp.csr_matrix(queries, dtype=np.float32, copy=True)
        q.data[:] = 1.0
        counts = np.maximum(np.asarray(q.sum(axis=1)).ravel(), 1.0)
        users = np.asarray(q @ self.item_vectors_) / counts[:, None]
        return (users @ self.item_vectors_.T).astype(np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """Known users' final embeddings against the items (a basket graph scores their history)."""
        if self.graph_rows_[0] != "users":
            return self.score(self.user_history_[user_idx])
        return (self.row_vectors_[np.asarray(user_idx)] @ self.item_vectors_.T).astype(np.float32)

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        v = self.item_vectors_ / (np.linalg.norm(self.item_vectors_, axis=1, keepdims=True) + 1e-12)
        return v[np.asarray(item_idx)] @ v.T
