"""User-based collaborative filtering: score items by the k training users most similar to the query.

Similarity is cosine between the query's item set and each user's (binary) history; scores are
Σ_v sim(q, v)·x_v over the k nearest users v. Works for ad-hoc histories and baskets too.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender


class UserKNNConfig(ModelConfig):
    k: int = Field(default=50, ge=1)
    shrink: float = Field(default=0.0, ge=0)


class UserKNN(Recommender):
    name = "userknn"
    Config = UserKNNConfig

    def _fit(self, data: InteractionData) -> None:
        h = self.user_history_.astype(np.float32)
        norms = np.sqrt(np.asarray(h.multiply(h).sum(axis=1)).ravel())
        self.user_norms_ = norms.astype(np.float32)
        self.histories_ = h.tocsr()

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        q = sp.csr_matrix(queries, dtype=np.float32)
        q.data = np.ones_like(q.data)
        qn = np.sqrt(np.asarray(q.sum(axis=1)).ravel())
        sims = np.asarray((q @ self.histories_.T).todense(), dtype=np.float32)
        sims /= (qn[:, None] * self.user_norms_[None, :] + self.config.shrink + 1e-12)
        k = min(self.config.k, sims.shape[1])
        if k < sims.shape[1]:
            cut = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            mask = np.zeros_like(sims, dtype=bool)
            np.put_along_axis(mask, cut, True, axis=1)
            sims[~mask] = 0.0
        return np.asarray(sp.csr_matrix(sims) @ self.histories_.todense(), dtype=np.float32)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        scores = self.score(self.histories_[user_idx])
        return scores
