"""Neighbourhood CF over rows: score items by the k training users (or past baskets) most similar
to the query.

Similarity is cosine between the query's item set and each neighbour's binary item set; scores
are Σ_v sim(q, v)·x_v over the k nearest neighbours v. With `neighbours="users"` this is
user-based CF; with `neighbours="baskets"` the neighbours are single past baskets — session-based
KNN (SKNN, Jannach & Ludewig 2017), which keeps combinations bought *together* that a customer's
whole history blurs. Works for ad-hoc histories and baskets too.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models._sparse import top_k_per_row
from itemaffinity.models.base import ModelConfig, Recommender, shopper_rows

BATCH = 1000


class UserKNNConfig(ModelConfig):
    k: int = Field(default=50, ge=1)
    shrink: float = Field(default=0.0, ge=0)
    neighbours: Literal["users", "baskets"] = Field(default="users", description=(
        "Rows to compare the query with: users' histories, or single past baskets (session KNN; "
        "users when the data have no baskets)."))


class UserKNN(Recommender):
    name = "userknn"
    Config = UserKNNConfig

    def _fit(self, data: InteractionData) -> None:
        rows = data.basket_items if self.config.neighbours == "baskets" and data.n_baskets else \
            shopper_rows(data, self.user_history_)
        h = sp.csr_matrix(rows > 0, dtype=np.float32)
        self.user_norms_ = np.sqrt(np.asarray(h.sum(axis=1)).ravel()).astype(np.float32)
        self.histories_ = h

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        q = sp.csr_matrix(queries, dtype=np.float32)
        q.data = np.ones_like(q.data)
        qn = np.sqrt(np.asarray(q.sum(axis=1)).ravel())
        out = np.zeros(q.shape, dtype=np.float32)
        for s in range(0, q.shape[0], BATCH):
            sims = (q[s:s + BATCH] @ self.histories_.T).tocoo()
            sims.data /= qn[s:s + BATCH][sims.row] * self.user_norms_[sims.col] + self.config.shrink + 1e-12
            near = top_k_per_row(sims.tocsr(), self.config.k)
            out[s:s + BATCH] = (near @ self.histories_).toarray()
        return out
