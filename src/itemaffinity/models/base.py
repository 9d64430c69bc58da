"""The Recommender protocol, immutable results, and the shared ranking step.

Score once, rank once (STYLE 4): a model only turns query rows into a dense score matrix
(`score`); exclusion of seen items, candidate restriction and top-n are done here, once, for all.
A model that cannot do something raises NotImplementedError (STYLE 3).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.vocab import Vocabulary

class ModelConfig(BaseModel):
    """Base of every model's parameters: validated, immutable, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Recs:
    """Ranked recommendations in external ids, best first.

    Attributes:
        item_ids: external item ids.
        scores: scores aligned with item_ids (read-only float array).
        evidence: optional per-item evidence dicts (why it was recommended).
        fallback: the model knew nothing of the query (an unknown user, no known item, or items it has no score
            for, such as products never bought for a co-purchase model, or items no rule starts from for rules):
            these are the most bought items.
    """

    item_ids: tuple[str, ...]
    scores: np.ndarray
    evidence: tuple[dict[str, Any], ...] | None = None
    fallback: bool = False

    def __post_init__(self) -> None:
        self.scores.flags.writeable = False

    def __len__(self) -> int:
        return len(self.item_ids)

    def to_list(self) -> list[dict[str, Any]]:
        out = [{"item_id": i, "score": float(s)} for i, s in zip(self.item_ids, self.scores)]
        if self.evidence is not None:
            for row, ev in zip(out, self.evidence):
                row["evidence"] = ev
        return out


def rank_top_n(scores: np.ndarray, n: int, exclude: sp.csr_matrix | None = None,
               candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-n item indices per row of a dense score matrix, best first.

    Args:
        scores: (q, n_items) float scores; modified in place (excluded entries set to −inf).
        n: how many to return per row.
        exclude: (q, n_items) sparse; nonzero entries are removed from row q's ranking.
        candidates: optional item indices; only these may be returned.

    Returns:
        (idx, val): (q, n) int64 item indices and their scores; rows with fewer than n rankable
        items are padded with index −1 and score −inf.
    """
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim == 1:
        scores = scores[None, :]
    q, m = scores.shape
    if candidates is not None:
        mask = np.ones(m, dtype=bool)
        mask[np.asarray(candidates, dtype=np.int64)] = False
        scores[:, mask] = -np.inf
    if exclude is not None and exclude.nnz:
        ex = exclude.tocoo()
        scores[ex.row, ex.col] = -np.inf
    n = min(n, m)
    if n <= 0:
        return np.zeros((q, 0), np.int64), np.zeros((q, 0), np.float32)
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < m else np.tile(np.arange(m), (q, 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    val = np.take_along_axis(part_scores, order, axis=1)
    idx[~np.isfinite(val)] = -1
    return idx, val


def scores_nothing(scores: np.ndarray, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """(q,) the rows of (q, n_items) `scores` that are zero (or not finite) for every item outside `exclude`: the
    model has nothing to say about that query, and a ranking of its zeros would be an arbitrary list."""
    said = np.isfinite(scores) & (scores != 0)
    if exclude is not None and exclude.nnz:
        said[exclude.nonzero()] = False
    return ~said.any(axis=1)


def query_matrix(rows: Sequence[Iterable[int]], n_items: int, weights: Sequence[Iterable[float]] | None = None) -> sp.csr_matrix:
    """(q, n_items) CSR with a row per query of item indices (weight 1 unless given; −1s dropped)."""
    indptr, indices, data = [0], [], []
    for r, row in enumerate(rows):
        idx = np.asarray(list(row), dtype=np.int64)
        w = np.ones(len(idx), np.float32) if weights is None else np.asarray(list(weights[r]), np.float32)
        keep = idx >= 0
        indices.extend(idx[keep].tolist())
        data.extend(w[keep].tolist())
        indptr.append(len(indices))
    m = sp.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int64), np.asarray(indptr)),
                      shape=(len(rows), n_items))
    m.sum_duplicates()
    return m


def shopper_rows(data: InteractionData, user_history: sp.csr_matrix) -> sp.csr_matrix:
    """What a model that learns from shoppers (ALS, BPR, userknn, usermix) learns from: each customer's history
    (`user_history`), or, in orders without customer ids, each basket, a shopper seen once; without either
    they would learn nothing and rank every item alike."""
    if not data.n_users and data.n_baskets:
        return sp.csr_matrix(data.basket_items > 0, dtype=np.float32)
    return user_history


class Recommender:
    """What every model offers. Subclasses implement `_fit` and `score` (and optionally
    `similar_scores` and `score_users`); learned state ends with `_` and is set only in fit.

    Class attributes:
        name: registry name.
        Config: the pydantic parameter model.
        artifact_version: layout of the saved arrays; bumped when it changes, so that
            `load_model` refuses an artifact saved with another layout instead of failing later.
        ranks_by_text: its scores are how alike the catalog texts are, not co-purchases: what an
            explanation of its answers must name.
    """

    name: ClassVar[str] = "base"
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    artifact_version: ClassVar[int] = 1
    ranks_by_text: ClassVar[bool] = False

    def __init__(self, config: ModelConfig | None = None, **params: Any) -> None:
        self.config = config if config is not None else self.Config(**params)

    # -- to implement ---------------------------------------------------------------------------
    def _fit(self, data: InteractionData) -> None:
        raise NotImplementedError

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        """(q, n_items) scores for query rows of weighted item indices (a basket or a history)."""
        raise NotImplementedError(f"{self.name} cannot score item queries")

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        """(len(item_idx), n_items) item-to-item similarity; defaults to scoring one-item queries."""
        return self.score(query_matrix([[i] for i in item_idx], self.n_items_))

    def score_users(self, user_idx: np.ndarray) -> np.ndarray:
        """(len(user_idx), n_items) personalised scores; defaults to scoring each user's history
        (weighted towards its latest items when the model has a `recency_decay` below 1)."""
        history = getattr(self, "recency_history_", None)
        return self.score((history if history is not None else self.user_history_)[user_idx])

    # -- shared -------------------------------------------------------------------------------
    def fit(self, data: InteractionData) -> "Recommender":
        self.items_: Vocabulary = data.items
        self.users_: Vocabulary = data.users
        self.n_items_ = data.n_items
        hist = data.user_items.copy()
        hist.data = np.ones_like(hist.data)
        self.user_history_ = hist.tocsr()
        decay = getattr(self.config, "recency_decay", 1.0)
        self.recency_history_ = data.recency_history(decay) if decay < 1.0 and len(data.seq_items) else None
        self._fit(data)
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "items_"):
            raise RuntimeError(f"{self.name} is not fitted; call fit(data) first")

    def _recs(self, idx: np.ndarray, val: np.ndarray, fallback: bool = False) -> Recs:
        keep = idx >= 0
        return Recs(tuple(self.items_.ids_of(idx[keep])), val[keep].astype(np.float32), fallback=fallback)

    def similar_items(self, item_ids: Sequence[str], n: int = 10) -> list[Recs]:
        """For each item id, the n most similar other items (unknown ids, and items the model has no score for,
        such as a product never bought for a co-purchase model, give empty Recs: nothing is similar to them)."""
        self._check_fitted()
        idx = self.items_.indices(item_ids)
        out = [Recs((), np.zeros(0, np.float32)) for _ in idx]
        known = np.flatnonzero(idx >= 0)
        if len(known):
            scores = self.similar_scores(idx[known])
            exclude = sp.csr_matrix((np.ones(len(known)), (np.arange(len(known)), idx[known])),
                                    shape=(len(known), self.n_items_))
            blank = self._scores_nothing(exclude, scores, exclude)
            top, val = rank_top_n(scores, n, exclude)
            for k, row in enumerate(known):
                if not blank[k]:
                    out[row] = self._recs(top[k], val[k])
        return out

    def recommend(self, user_id: str | None = None, *, history: Sequence[str] | None = None,
                  basket: Sequence[str] | None = None, n: int = 10, exclude_seen: bool = True,
                  candidates: Sequence[str] | None = None) -> Recs:
        """Recommendations for a known user, an ad-hoc history, or a basket (one of them)."""
        return self.recommend_batch(
            [user_id] if user_id is not None else None,
            histories=[list(history or basket or [])] if user_id is None else None,
            n=n, exclude_seen=exclude_seen, candidates=candidates)[0]

    def recommend_batch(self, user_ids: Sequence[str] | None = None, *,
                        histories: Sequence[Sequence[str]] | None = None, n: int = 10,
                        exclude_seen: bool = True, candidates: Sequence[str] | None = None) -> list[Recs]:
        """Batch form: either known `user_ids` or item-id `histories` (baskets)."""
        self._check_fitted()
        cand = None
        if candidates is not None:
            cand = self.items_.indices(candidates)
            cand = cand[cand >= 0]
        if user_ids is not None:
            uidx = self.users_.indices(user_ids)
            known = uidx >= 0
            scores = np.zeros((len(uidx), self.n_items_), np.float32)
            if known.any():
                scores[known] = self.score_users(uidx[known])
            seen = sp.csr_matrix(self.user_history_[np.where(known, uidx, 0)].multiply(
                known[:, None].astype(np.float32)))
            fallback = ~known | self._scores_nothing(seen, scores, seen)
        else:
            seen = query_matrix([self.items_.indices(h) for h in histories or []], self.n_items_)
            scores = self.score(seen) if seen.nnz else np.zeros(seen.shape, np.float32)
            fallback = (np.diff(seen.indptr) == 0) | self._scores_nothing(seen, scores, seen)  # no known item, or none scored
        if fallback.any():
            scores[fallback] = self._popularity_fallback()
        top, val = rank_top_n(scores, n, seen if exclude_seen else None, cand)
        return [self._recs(top[k], val[k], bool(fallback[k])) for k in range(top.shape[0])]

    def _scores_nothing(self, queries: sp.csr_matrix, scores: np.ndarray, exclude: sp.csr_matrix) -> np.ndarray:
        """(q,) the query rows this model has nothing to say about, answered with the flagged best sellers (and
        nothing similar): by default those it scores zero for every item outside `exclude`. A model whose scores
        carry a floor for every query (rules, usermix) says when that floor is all it has."""
        return scores_nothing(scores, exclude)

    def _popularity_fallback(self) -> np.ndarray:
        """Scores for a query with nothing known: item popularity in the training data, tiny scale."""
        pop = np.asarray(self.user_history_.sum(axis=0)).ravel().astype(np.float32)
        return pop / max(pop.max(), 1.0) * 1e-6

    # -- persistence (no pickle) ------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write learned arrays to `<path>.npz` and parameters to `<path>.json`."""
        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"items_": np.asarray(self.items_.ids, dtype=str),
                                         "users_": np.asarray(self.users_.ids, dtype=str)}
        sparse_names = []
        for key, val in vars(self).items():
            if not key.endswith("_") or key in ("items_", "users_", "n_items_"):
                continue
            if sp.issparse(val):
                csr = val.tocsr()
                arrays.update({f"{key}data": csr.data, f"{key}indices": csr.indices, f"{key}indptr": csr.indptr,
                               f"{key}shape": np.asarray(csr.shape)})
                sparse_names.append(key)
            elif isinstance(val, np.ndarray):
                arrays[key] = val
        np.savez(path.with_suffix(".npz"), **arrays)
        meta = {"model": self.name, "config": self.config.model_dump(), "sparse": sparse_names,
                "artifact_version": self.artifact_version}
        path.with_suffix(".json").write_text(json.dumps(meta, indent=1))
        return path

    def _restore(self, arrays: dict[str, np.ndarray], sparse_names: list[str], path: Path | None = None) -> None:
        self.items_ = Vocabulary(arrays.pop("items_").astype(object), presorted=True)
        self.users_ = Vocabulary(arrays.pop("users_").astype(object), presorted=True)
        self.n_items_ = len(self.items_)
        for key in sparse_names:
            shape = tuple(arrays.pop(f"{key}shape"))
            setattr(self, key, sp.csr_matrix((arrays.pop(f"{key}data"), arrays.pop(f"{key}indices"),
                                              arrays.pop(f"{key}indptr")), shape=shape))
        for key, val in arrays.items():
            setattr(self, key, val)
