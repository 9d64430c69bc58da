"""Matrix factorisation through the `implicit` library: ALS (Hu et al. 2008) and BPR (Rendle 2009).

Known users use their learned factors. New users and ad-hoc baskets are folded in without
retraining: for ALS the exact least-squares solve of implicit's loss,
u = (YᵀY + Yᵀ(C−I)Y + λI)⁻¹ YᵀCp with confidence c = 1 + α·w on the query items; for BPR
(which has no closed form) the mean of the query items' factors.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender, shopper_rows


def _training_matrix(data: InteractionData, weights: str, user_history: sp.csr_matrix) -> sp.csr_matrix:
    # in orders without customer ids each basket is a shopper, of weight 1 (1 + log 1 under "log")
    x = sp.csr_matrix(shopper_rows(data, data.user_items if weights != "binary" else user_history), dtype=np.float32)
    if weights == "log":
        x = x.copy()
        x.data = 1.0 + np.log(x.data)
    return x


class ALSConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)
    regularization: float = Field(default=0.05, ge=0)
    alpha: float = Field(default=10.0, gt=0)
    iterations: int = Field(default=15, ge=1)
    weights: Literal["binary", "log", "raw"] = "log"
    seed: int = 0


class ALS(Recommender):
    name = "als"
    Config = ALSConfig

    def _fit(self, data: InteractionData) -> None:
        from implicit.cpu.als import AlternatingLeastSquares

        cfg = self.config
        # implicit parallelises itself and warns about BLAS threads; limiting them is its advice.
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="OpenBLAS is configured")
            model = AlternatingLeastSquares(factors=cfg.factors, regularization=cfg.regularization, alpha=cfg.alpha,
                                            iterations=cfg.iterations, random_state=cfg.seed)
            model.fit(_training_matrix(data, cfg.weights, self.user_history_), show_progress=False)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)

    def fold_in(self, queries: sp.csr_matrix) -> np.ndarray:
        """(q, factors) user vectors for query rows, by the exact ALS least-squares solve."""
        y = self.item_factors_.astype(np.float64)
        yty = y.T @ y
        reg = self.config.regularization * np.eye(y.shape[1])
        q = queries.tocsr()
        out = np.zeros((q.shape[0], y.shape[1]), np.float32)
        for r in range(q.shape[0]):
            idx = q.indices[q.indptr[r]:q.indptr[r + 1]]
            if len(idx) == 0:
                continue
            conf = 1.0 + self.config.alpha * q.data[q.indptr[r]:q.indptr[r + 1]]
            yi = y[idx]
            a = yty + (yi.T * (conf - 1.0)) @ yi + reg
            out[r] = np.linalg.solve(a, yi.T @ conf)
        return out

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        return self.fold_in(queries) @ self.item_factors_.T

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx] @ self.item_factors_.T

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        y = self.item_factors_ / (np.linalg.norm(self.item_factors_, axis=1, keepdims=True) + 1e-12)
        return y[item_idx] @ y.T


class BPRConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    regularization: float = Field(default=0.01, ge=0)
    iterations: int = Field(default=100, ge=1)
    seed: int = 0


class BPR(Recommender):
    name = "bpr"
    Config = BPRConfig

    def _fit(self, data: InteractionData) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        cfg = self.config
        model = BayesianPersonalizedRanking(factors=cfg.factors, learning_rate=cfg.learning_rate,
                                            regularization=cfg.regularization, iterations=cfg.iterations,
                                            random_state=cfg.seed)
        rows = sp.csr_matrix(shopper_rows(data, self.user_history_), dtype=np.float32)
        with threadpool_limits(1, "blas"):
            model.fit(rows, show_progress=False)
        # implicit appends a bias column to item factors and a constant 1 to user factors.
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        # A product nobody bought was only ever sampled as a negative: its factors are no picture of it, as a query or
        # as a neighbour, so they are zero (it keeps its learnt bias), as ALS's are.
        self.item_factors_[np.diff(rows.tocsc().indptr) == 0, :-1] = 0.0

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        q = sp.csr_matrix(queries, dtype=np.float32)
        counts = np.maximum(np.asarray(q.sum(axis=1)).ravel(), 1e-12)
        users = np.asarray(q @ self.item_factors_[:, :-1]) / counts[:, None]
        users = np.hstack([users, np.ones((users.shape[0], 1), np.float32)])
        return (users @ self.item_factors_.T).astype(np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx] @ self.item_factors_.T

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        y = self.item_factors_[:, :-1]
        y = y / (np.linalg.norm(y, axis=1, keepdims=True) + 1e-12)
        return y[item_idx] @ y.T
