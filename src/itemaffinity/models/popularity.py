"""Popularity baselines: most bought overall, or most bought in the last `recent_days`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender


class PopularityConfig(ModelConfig):
    recent_days: float | None = Field(default=None, gt=0, description="Count only the last N days.")


class Popularity(Recommender):
    """Scores every query with the same item popularity (number of distinct buyers/baskets)."""

    name = "popularity"
    Config = PopularityConfig

    def _fit(self, data: InteractionData) -> None:
        counts = np.asarray(data.basket_items.sum(axis=0)).ravel() if data.n_baskets else \
            np.asarray(self.user_history_.sum(axis=0)).ravel()
        if self.config.recent_days and data.n_baskets and not np.isnat(data.basket_ts).all():
            cutoff = data.basket_ts.max() - np.timedelta64(int(self.config.recent_days * 86400), "s")
            recent = data.basket_ts >= cutoff
            counts = np.asarray(data.basket_items[recent].sum(axis=0)).ravel()
        self.popularity_ = counts.astype(np.float32)

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.popularity_, (queries.shape[0], 1))

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        return np.tile(self.popularity_, (len(item_idx), 1))


class RecentPopularity(Popularity):
    name = "popularity-recent"

    def __init__(self, config: PopularityConfig | None = None, **params) -> None:
        params.setdefault("recent_days", 30.0)
        super().__init__(config, **params)
