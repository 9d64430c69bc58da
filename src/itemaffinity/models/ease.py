"""EASE (Steck, WWW 2019): a closed-form item–item linear model.

B = I − P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹ and diag(B) = 0. Scores are X_q·B.

With `lines` = w the Gram matrix adds `line_weight` × WᵀW, W the windows of w neighbouring lines of
each order (every run of w consecutive lines a pseudo-basket; `InteractionData.line_windows`): lines
entered one after another go together more than the rest of a long order, and a sum of Gram matrices
stays positive semi-definite, so the closed form holds.

An item no basket holds has a zero row and column in the Gram matrix, and so zero weights: the model is
fitted over the items with interactions only (`active_`), so that a catalog of 50,000 products of which
5,000 sold needs a 5,000² matrix, not a 50,000² one (10 GB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from scipy.linalg import lapack
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender


class EASEConfig(ModelConfig):
    lambda_: float = Field(default=100.0, gt=0, alias="lam")
    source: Literal["baskets", "users"] = "baskets"
    recency_decay: float = Field(default=1.0, gt=0, le=1, description=(
        "Weight of a user's item when scoring users: recency_decay ** (events since it); 1 = all equal."))

    lines: int = Field(default=0, ge=0, description=(
        "Width of the windows of neighbouring lines (events, without orders) added to the Gram matrix; 0: none."))
    line_weight: float = Field(default=0.3, gt=0, description="Weight of the line windows' Gram matrix.")

    model_config = ModelConfig.model_config | {"populate_by_name": True}


class EASE(Recommender):
    name = "ease"
    Config = EASEConfig

    def _fit(self, data: InteractionData) -> None:
        x = data.basket_items if self.config.source == "baskets" and data.n_baskets else self.user_history_
        x = sp.csr_matrix(x, dtype=np.float32)
        w = sp.csr_matrix(data.line_windows(self.config.lines)) if self.config.lines else None
        bought = (x.getnnz(axis=0) > 0) | (w.getnnz(axis=0) > 0 if w is not None else False)
        self.active_ = np.flatnonzero(bought).astype(np.int64)
        x = x[:, self.active_]
        g = (x.T @ x).toarray()
        if w is not None:
            w = w[:, self.active_]
            g += self.config.line_weight * (w.T @ w).toarray()
        g[np.diag_indices_from(g)] += self.config.lambda_
        # Cholesky inverse in float32: half the time of a float64 LU inverse, same ranking.
        chol, info = lapack.spotrf(g, lower=False, overwrite_a=True)
        if info != 0:
            raise np.linalg.LinAlgError(f"EASE Gram matrix is not positive definite (info {info})")
        p, _ = lapack.spotri(chol, lower=False, overwrite_c=True)
        p = np.triu(p) + np.triu(p, 1).T
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        # C order matters: sparse @ dense is ~20x slower on a Fortran-ordered matrix.
        self.weights_ = np.ascontiguousarray(b, dtype=np.float32)  # over active_ × active_

    def _restore(self, arrays: dict[str, np.ndarray], sparse_names: list[str], path: Path | None = None) -> None:
        super()._restore(arrays, sparse_names, path)
        if not hasattr(self, "active_"):  # saved before active_: weights over every item
            self.active_ = np.arange(self.n_items_, dtype=np.int64)

    def _full(self, active_scores: np.ndarray) -> np.ndarray:
        """(rows, n_items) scores from scores over the active items (0 for the rest)."""
        if len(self.active_) == self.n_items_:
            return active_scores
        out = np.zeros((active_scores.shape[0], self.n_items_), dtype=np.float32)
        out[:, self.active_] = active_scores
        return out

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        if len(self.active_) < self.n_items_:
            queries = sp.csr_matrix(queries)[:, self.active_]
        return self._full(np.asarray(queries @ self.weights_, dtype=np.float32))

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        pos = np.full(self.n_items_, -1, dtype=np.int64)
        pos[self.active_] = np.arange(len(self.active_))
        pos = pos[item_idx]
        rows = np.zeros((len(item_idx), len(self.active_)), dtype=np.float32)
        rows[pos >= 0] = self.weights_[pos[pos >= 0]]
        return self._full(rows)
