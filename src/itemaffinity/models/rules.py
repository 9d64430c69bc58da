"""A recommender from association rules: "customers who bought A (and B) also bought C".

A rule A → C applies to a query when A ⊆ query; each item of C scores the best confidence among
the rules that apply (ties broken by lift), as in `mining.complete_basket`, vectorised over many
queries. Items no rule reaches keep a tiny popularity score so every ranking is complete; a query no rule
applies to is answered by that floor alone, flagged as the best sellers (`Recs.fallback`), and nothing is
similar to an item no rule starts from.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.mining import association_rules, frequent_itemsets, transactions
from itemaffinity.models.base import ModelConfig, Recommender, scores_nothing

BATCH = 256


class RulesConfig(ModelConfig):
    """Defaults measured on Online Retail basket completion: pair rules (max_len 2) rank better
    than longer ones (NDCG@10 0.153 vs 0.132) and score ~4× faster."""

    min_support: float = Field(default=0.002, gt=0, le=1)
    min_confidence: float = Field(default=0.1, ge=0, le=1)
    max_len: int = Field(default=2, ge=2)


class RulesRecommender(Recommender):
    name = "rules"
    Config = RulesConfig

    def _fit(self, data: InteractionData) -> None:
        cfg = self.config
        x = transactions(data)
        rules = association_rules(frequent_itemsets(x, cfg.min_support, max_len=cfg.max_len),
                                  min_confidence=cfg.min_confidence)
        sets = rules.itemsets

        def side(ids: np.ndarray, values: np.ndarray) -> sp.csr_matrix:
            items, lengths = sets.members(ids)
            indptr = np.zeros(len(ids) + 1, dtype=np.int64)
            np.cumsum(lengths, out=indptr[1:])
            return sp.csr_matrix((np.repeat(values, lengths).astype(np.float32), items, indptr),
                                 shape=(len(ids), data.n_items))

        # Rule score: confidence, with lift as a tie-break far below confidence's resolution.
        strength = rules.measure("confidence") + 1e-6 * np.tanh(rules.measure("lift") / 100.0)
        self.antecedents_ = side(rules.antecedent, np.ones(len(rules)))
        self.antecedent_len_ = np.diff(self.antecedents_.indptr).astype(np.float32)
        self.consequents_ = side(rules.consequent, strength)
        pop = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        self.fallback_ = 1e-9 * pop / max(pop.max(), 1.0)

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        q = sp.csr_matrix(queries, dtype=np.float32)
        q.data = np.ones_like(q.data)
        out = np.tile(self.fallback_, (q.shape[0], 1))
        for s in range(0, q.shape[0], BATCH):
            hits = (q[s:s + BATCH] @ self.antecedents_.T).tocoo()  # basket items inside each antecedent
            full = hits.data >= self.antecedent_len_[hits.col] - 0.5
            rows, rules = hits.row[full], hits.col[full]
            cons = self.consequents_[rules]
            lengths = np.diff(cons.indptr)
            np.maximum.at(out, (s + np.repeat(rows, lengths), cons.indices), cons.data)
        return out

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        return self.score(sp.csr_matrix((np.ones(len(item_idx)), (np.arange(len(item_idx)), item_idx)),
                                        shape=(len(item_idx), self.n_items_)))

    def _scores_nothing(self, queries: sp.csr_matrix, scores: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
        return scores_nothing(scores - self.fallback_, exclude)  # nothing above the popularity floor

    def _popularity_fallback(self) -> np.ndarray:
        return self.fallback_
