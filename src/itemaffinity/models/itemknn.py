"""Item-based collaborative filtering: item–item similarity from co-occurrence.

Similarities (chosen by name from SIMILARITIES, STYLE 5), over transactions × items `X`
(baskets or users), with C = XᵀX and n_i = C_ii:
- cosine: C_ij / sqrt(n_i n_j) (after optional BM25/TF-IDF weighting of X);
- jaccard: C_ij / (n_i + n_j − C_ij);
- asymmetric cosine: C_ij / (n_i^α n_j^(1−α)) (Aiolli 2013);
- lift (SAR): C_ij / (n_i n_j).
Shrinkage divides by (denominator + shrink) as in Koren's neighbourhood models. Each item keeps
its k nearest neighbours; a query's scores are Q·S.

With source "lines" (the model `lineknn`), C_ij counts the times i and j stand within `window`
lines of each other in an order (each pair weighted 1 / distance) instead of anywhere in it:
shoppers enter related goods one after another, so neighbouring lines link them more sharply
than a wholesale order of hundreds of lines does; n_i stays i's basket count. Data without orders
use each user's history instead: events at most `window` apart, n_i the item's users.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.mining.transactions import transactions
from itemaffinity.models._sparse import bm25_weight, tfidf_weight, top_k_per_row
from itemaffinity.models.base import ModelConfig, Recommender


def _cosine(c: sp.coo_matrix, n: np.ndarray, cfg: "ItemKNNConfig") -> np.ndarray:
    return c.data / (np.sqrt(n[c.row] * n[c.col]) + cfg.shrink)


def _jaccard(c: sp.coo_matrix, n: np.ndarray, cfg: "ItemKNNConfig") -> np.ndarray:
    return c.data / (n[c.row] + n[c.col] - c.data + cfg.shrink)


def _asymmetric_cosine(c: sp.coo_matrix, n: np.ndarray, cfg: "ItemKNNConfig") -> np.ndarray:
    # Row i is the query item, column j the candidate: C_ij / (n_i^α n_j^(1−α)).
    return c.data / (np.power(n[c.row], cfg.alpha) * np.power(n[c.col], 1 - cfg.alpha) + cfg.shrink)


def _lift(c: sp.coo_matrix, n: np.ndarray, cfg: "ItemKNNConfig") -> np.ndarray:
    return c.data / (n[c.row] * n[c.col] + cfg.shrink)


SIMILARITIES: dict[str, Callable[[sp.coo_matrix, np.ndarray, "ItemKNNConfig"], np.ndarray]] = {
    "cosine": _cosine, "jaccard": _jaccard, "asymmetric_cosine": _asymmetric_cosine, "lift": _lift,
}
WEIGHTINGS: dict[str, Callable[[sp.csr_matrix], sp.csr_matrix]] = {
    "none": lambda x: x, "bm25": bm25_weight, "tfidf": tfidf_weight,
}


class ItemKNNConfig(ModelConfig):
    similarity: Literal["cosine", "jaccard", "asymmetric_cosine", "lift"] = "cosine"
    weighting: Literal["none", "bm25", "tfidf"] = "bm25"
    source: Literal["baskets", "users", "lines"] = "baskets"
    window: int = Field(default=1, ge=1, description="source lines: pairs at most this many lines apart")
    k: int = Field(default=100, ge=1)
    shrink: float = Field(default=0.0, ge=0)
    alpha: float = Field(default=0.5, ge=0, le=1)
    recency_decay: float = Field(default=1.0, gt=0, le=1, description=(
        "Weight of a user's item when scoring users: recency_decay ** (events since it); 1 = all equal."))


class ItemKNN(Recommender):
    name = "itemknn"
    Config = ItemKNNConfig

    def _fit(self, data: InteractionData) -> None:
        cfg = self.config
        if cfg.source == "lines":
            n = np.asarray(transactions(data).sum(axis=0), np.float64).ravel()
            self.similarity_ = self._top_k(data.adjacency(cfg.window).tocoo(), n)
            return
        x = data.basket_items if cfg.source == "baskets" and data.n_baskets else self.user_history_
        x = WEIGHTINGS[cfg.weighting](sp.csr_matrix(x, dtype=np.float64))
        c = (x.T @ x).tocoo()
        n = c.diagonal() if cfg.weighting == "none" else np.asarray(x.multiply(x).sum(axis=0)).ravel()
        off = c.row != c.col
        self.similarity_ = self._top_k(sp.coo_matrix((c.data[off], (c.row[off], c.col[off])), shape=c.shape), n)

    def _top_k(self, c: sp.coo_matrix, n: np.ndarray) -> sp.csr_matrix:
        """Similarities from off-diagonal co-occurrences `c` and item counts `n`, k per item."""
        sim = sp.csr_matrix((SIMILARITIES[self.config.similarity](c, n, self.config), (c.row, c.col)), shape=c.shape)
        return top_k_per_row(sim, self.config.k).astype(np.float32)

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        return np.asarray((queries @ self.similarity_).todense(), dtype=np.float32)

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        return np.asarray(self.similarity_[item_idx].todense(), dtype=np.float32)


class LineKNNConfig(ItemKNNConfig):
    source: Literal["baskets", "users", "lines"] = "lines"


class LineKNN(ItemKNN):
    """ItemKNN over neighbouring lines of the orders (its own name, so a hybrid can hold both)."""

    name = "lineknn"
    Config = LineKNNConfig
