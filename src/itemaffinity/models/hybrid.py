"""Hybrid fusion: candidates and scores from several models, re-ranked by a learned ranker.

Fit (all inside the training data, never the test split):
1. cut a validation slice off the end of the training period — the last `validation_days` of
   baskets (one hidden item per basket), or each user's last item when there are no baskets;
2. fit every component on what comes before, score the validation queries, and take the
   union of each component's top `n_candidates` as candidates;
3. learn a LightGBM LambdaRank model on per-candidate features — each component's score and
   rank, item popularity overall and recent (so the ranker learns popularity-aware gating),
   query size — with label 1 for the hidden item;
4. refit the components on all the training data.
Items no component proposes keep a tiny popularity score, and a query with no known items falls
back to content (if a content component is present), then popularity: every query gets an answer.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models.base import ModelConfig, Recommender, query_matrix, rank_top_n

log = logging.getLogger(__name__)


class HybridConfig(ModelConfig):
    components: tuple[str, ...] = ("ease", "itemknn", "rules", "tfidf")
    component_params: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"ease": {"lam": 30.0}})
    n_candidates: int = Field(default=50, ge=5)
    validation_days: float = Field(default=30.0, gt=0)
    validation_queries: int = Field(default=6000, ge=100)
    hidden_per_basket: int = Field(default=3, ge=1, description="Validation queries made from one basket.")
    validation: Literal["latest", "random"] = Field(
        default="random", description="Hold out the last validation_days of baskets, or a random validation_share.")
    validation_share: float = Field(default=0.15, gt=0, lt=1)
    recent_days: float = Field(default=30.0, gt=0)
    n_estimators: int = Field(default=200, ge=10)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=15, ge=4)
    seed: int = 0


def _links(data: InteractionData) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(co-occurs 0/1, confidence P(j | i)) item × item matrices of the baskets (users without baskets)."""
    x = sp.csr_matrix((data.basket_items if data.n_baskets else data.user_items) > 0, dtype=np.float32)
    c = (x.T @ x).tocsr()
    c.setdiag(0)
    c.eliminate_zeros()
    counts = np.asarray(x.sum(axis=0)).ravel()
    conf = sp.csr_matrix(sp.diags(1.0 / np.maximum(counts, 1.0)) @ c, dtype=np.float32)
    linked = c.copy()
    linked.data = np.ones_like(linked.data)
    return linked.astype(np.float32), conf


def _popularity(data: InteractionData, recent_days: float) -> tuple[np.ndarray, np.ndarray]:
    """log(1 + count) overall and in the last `recent_days` of the data."""
    if data.n_baskets:
        x = data.basket_items
        overall = np.asarray(x.sum(axis=0)).ravel()
        recent = overall
        if not np.isnat(data.basket_ts).all():
            cut = data.basket_ts.max() - np.timedelta64(int(recent_days * 86400), "s")
            recent = np.asarray(x[np.flatnonzero(data.basket_ts >= cut)].sum(axis=0)).ravel()
    else:
        overall = np.bincount(data.seq_items, minlength=data.n_items).astype(np.float64)
        tail = data.last_item_mask(3)
        recent = np.bincount(data.seq_items[tail], minlength=data.n_items).astype(np.float64)
    return np.log1p(overall).astype(np.float32), np.log1p(recent).astype(np.float32)


class Hybrid(Recommender):
    name = "hybrid"
    Config = HybridConfig

    # -- fitting --------------------------------------------------------------------------------
    def _components(self) -> list[Recommender]:
        from itemaffinity.models.registry import create_model

        return [create_model(c, **self.config.component_params.get(c, {})) for c in self.config.components]

    def _validation(self, data: InteractionData):
        """(sub-data, queries csr, query users or None, targets) from the end of `data`."""
        rng = np.random.default_rng(self.config.seed)
        if data.n_baskets and (self.config.validation == "random" or not np.isnat(data.basket_ts).all()):
            if self.config.validation == "random":
                held = rng.random(data.n_baskets) < self.config.validation_share
                sub = data.restrict(~held, np.ones(len(data.seq_items), dtype=bool))
            else:
                cut = data.basket_ts.max() - np.timedelta64(int(self.config.validation_days * 86400), "s")
                held = data.basket_ts >= cut
                sub = data.restrict(~held, ~(data.seq_ts >= cut))
            known = sub.item_baskets > 0
            later = np.flatnonzero(held)
            rng.shuffle(later)
            queries, targets = [], []
            for b in later:
                items = data.basket_items.indices[data.basket_items.indptr[b]:data.basket_items.indptr[b + 1]]
                items = items[known[items]]
                if len(items) >= 2:
                    for h in rng.permutation(len(items))[:self.config.hidden_per_basket]:
                        targets.append(items[h])
                        queries.append(np.delete(items, h))
                if len(queries) >= self.config.validation_queries:
                    break
            return sub, query_matrix(queries, data.n_items), None, np.asarray(targets)
        last = data.last_item_mask(1)
        sub = data.restrict(np.ones(data.n_baskets, dtype=bool), ~last)
        owners = np.repeat(np.arange(data.n_users), np.diff(data.seq_indptr))
        users, targets = owners[last], data.seq_items[last]
        ok = np.diff(sub.seq_indptr)[users] > 0
        users, targets = users[ok], targets[ok]
        if len(users) > self.config.validation_queries:
            pick = np.sort(rng.choice(len(users), self.config.validation_queries, replace=False))
            users, targets = users[pick], targets[pick]
        hist = sp.csr_matrix(sub.user_items[users] > 0, dtype=np.float32)
        return sub, hist, users, targets

    def _fit(self, data: InteractionData) -> None:
        import lightgbm as lgb

        t0 = time.perf_counter()
        sub, queries, users, targets = self._validation(data)
        comps = [c.fit(sub) for c in self._components()]
        pop, recent = _popularity(sub, self.config.recent_days)
        links = _links(sub)
        feats, labels, groups = [], [], []
        for s in range(0, queries.shape[0], 1000):
            q = queries[s:s + 1000]
            u = users[s:s + 1000] if users is not None else None
            f, cand = self._features(comps, q, u, pop, recent, links)
            lab = (cand == targets[s:s + 1000, None]).astype(np.int32)
            valid = cand >= 0
            for r in range(cand.shape[0]):
                if lab[r].any():  # queries whose item no component proposes teach the ranker nothing
                    feats.append(f[r][valid[r]])
                    labels.append(lab[r][valid[r]])
                    groups.append(int(valid[r].sum()))
        if not groups:
            raise ValueError("hybrid: no validation query had its hidden item among the candidates")
        ranker = lgb.LGBMRanker(objective="lambdarank", n_estimators=self.config.n_estimators,
                                learning_rate=self.config.learning_rate, num_leaves=self.config.num_leaves,
                                min_child_samples=50, subsample=0.8, subsample_freq=1, colsample_bytree=0.9,
                                reg_lambda=1.0, random_state=self.config.seed, verbose=-1)
        ranker.fit(np.vstack(feats), np.concatenate(labels), group=groups)
        log.info("hybrid: ranker on %d queries (%.0f%% with the target among candidates) in %.1fs",
                 len(groups), 100 * len(groups) / len(targets), time.perf_counter() - t0)
        self.booster_ = np.frombuffer(ranker.booster_.model_to_string().encode(), dtype=np.uint8)
        self.components_ = [c.fit(data) for c in self._components()]
        self.popularity_, self.recent_popularity_ = _popularity(data, self.config.recent_days)
        self.cooccur_, self.confidence_ = _links(data)
        self._booster = None

    # -- features and scoring -------------------------------------------------------------------
    def _features(self, comps: list[Recommender], queries: sp.csr_matrix, users: np.ndarray | None,
                  pop: np.ndarray, recent: np.ndarray,
                  links: tuple[sp.csr_matrix, sp.csr_matrix]) -> tuple[np.ndarray, np.ndarray]:
        """(q, C, F) features for the union of candidates, and (q, C) candidate indices (−1 pad)."""
        k = self.config.n_candidates
        q = queries.shape[0]
        exclude = sp.csr_matrix(queries)
        scores, tops = [], []
        for comp in comps:
            try:
                sc = comp.score_users(users) if users is not None else comp.score(queries)
            except NotImplementedError:
                sc = comp.score(queries)
            sc = np.asarray(sc, dtype=np.float32)
            top, _ = rank_top_n(sc.copy(), k, exclude)
            scores.append(sc)
            tops.append(top)
        union = np.concatenate(tops, axis=1)
        width = union.shape[1]
        cand = np.full((q, width), -1, dtype=np.int64)
        for r in range(q):
            u = np.unique(union[r][union[r] >= 0])
            cand[r, :len(u)] = u
        safe = np.where(cand >= 0, cand, 0)
        n_feat = 2 * len(comps) + 5
        f = np.zeros((q, width, n_feat), dtype=np.float32)
        for j, (sc, top) in enumerate(zip(scores, tops)):
            # Scores relative to the query's best candidate: raw scales shift when a component is
            # refitted on more data, ranks and ratios do not.
            vals = np.take_along_axis(sc, safe, axis=1)
            best = np.take_along_axis(sc, np.where(top[:, :1] >= 0, top[:, :1], 0), axis=1)
            vals = np.where(np.isfinite(vals), vals, 0.0) / np.where(np.abs(best) > 1e-12, np.abs(best), 1.0)
            f[:, :, 2 * j] = vals
            rank = np.full((q, sc.shape[1]), k + 1, dtype=np.float32)
            np.put_along_axis(rank, np.where(top >= 0, top, 0), np.arange(1, k + 1, dtype=np.float32)[None, :], axis=1)
            f[:, :, 2 * j + 1] = np.take_along_axis(rank, safe, axis=1)
        # How many query items were ever bought with the candidate, and the strongest such link.
        qb = sp.csr_matrix(queries > 0, dtype=np.float32)
        linked = np.asarray((qb @ links[0]).todense())
        f[:, :, -5] = np.take_along_axis(linked, safe, axis=1) / np.maximum(np.diff(queries.indptr), 1)[:, None]
        f[:, :, -4] = np.take_along_axis(np.asarray((qb @ links[1]).todense()), safe, axis=1)
        f[:, :, -3] = pop[safe]
        f[:, :, -2] = recent[safe]
        f[:, :, -1] = np.diff(queries.indptr)[:, None]
        return f, cand

    @property
    def _ranker(self):
        import lightgbm as lgb

        if getattr(self, "_booster", None) is None:
            self._booster = lgb.Booster(model_str=bytes(self.booster_).decode())
        return self._booster

    def _rank(self, queries: sp.csr_matrix, users: np.ndarray | None) -> np.ndarray:
        f, cand = self._features(self.components_, queries, users, self.popularity_, self.recent_popularity_,
                                 (self.cooccur_, self.confidence_))
        q, width, n_feat = f.shape
        out = np.tile(1e-6 * self.popularity_ - 1e6, (q, 1)).astype(np.float32)
        valid = cand >= 0
        if valid.any():
            pred = self._ranker.predict(f[valid])
            rows = np.repeat(np.arange(q), valid.sum(axis=1))
            out[rows, cand[valid]] = pred
        return out

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        return self._rank(sp.csr_matrix(queries, dtype=np.float32), None)

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        return self._rank(sp.csr_matrix(self.user_history_[user_idx], dtype=np.float32), np.asarray(user_idx))

    # -- persistence: components are saved beside the hybrid's own arrays ----------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        for name, comp in zip(self.config.components, self.components_):
            comp.save(path.with_name(f"{path.name}__{name}"))
        components, self.components_ = self.components_, []
        try:
            return super().save(path)
        finally:
            self.components_ = components

    def _restore(self, arrays: dict[str, np.ndarray], sparse_names: list[str], path: Path | None = None) -> None:
        from itemaffinity.models.registry import load_model

        super()._restore(arrays, sparse_names, path)
        self.components_ = [load_model(path.with_name(f"{path.name}__{name}")) for name in self.config.components]
        self._booster = None
