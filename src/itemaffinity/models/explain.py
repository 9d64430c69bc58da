"""Evidence for associations and recommendations, and complement vs substitute.

Every answer can say why: which query items contributed (from the model's own item–item
scores), how often the two products were bought together and the lift of that, how similar
their texts are, and whether they share a category or brand. A pair is a *complement* when it is
bought together far more than chance, a *substitute* when it is alike (text or category) but not
bought together more than chance — one instead of the other — and otherwise just *related*.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from itemaffinity.data.interactions import InteractionData
from itemaffinity.mining.measures import MEASURES
from itemaffinity.mining.transactions import transactions
from itemaffinity.models.base import Recommender, Recs

COMPLEMENT_MIN_COUNT = 3
COMPLEMENT_MIN_LIFT = 2.0
SUBSTITUTE_MIN_TEXT = 0.5
SUBSTITUTE_MAX_LIFT = 1.0
"""A substitute is bought together no more than chance: bananas and strawberries, one aisle, in 20 baskets at 1.7× chance,
go together."""
RELATION_SCAN = 2000
"""Most of a model's ranking walked for items in one relation to a product (a relation filter)."""


def relation(co_count: int, lift: float, text_similarity: float | None, same_category: bool) -> str:
    """"complement" | "substitute" | "related" for one item pair: `relations`, the one rule."""
    return relations(np.array([co_count]), np.array([lift], np.float64),
                     np.array([np.nan if text_similarity is None else text_similarity], np.float64),
                     np.array([same_category]))[0]


def shares_value(values: np.ndarray, a: int, b: np.ndarray) -> np.ndarray:
    """(len(b),) whether item a has a value in `values` (a category, a brand) and each item of b the same one."""
    return np.zeros(len(b), bool) if values[a] is None else np.asarray(values[b] == values[a], bool)


def relations(co_count: np.ndarray, lift: np.ndarray, text_similarity: np.ndarray,
              same_category: np.ndarray) -> np.ndarray:
    """"complement" | "substitute" | "related" per pair of aligned arrays (text_similarity NaN where unknown;
    thresholds above). A complement is bought together often and far above chance; a substitute is alike in
    text or category and not bought together above chance (a NaN lift, a product never bought, is no sign of
    going together); the rest are related."""
    out = np.full(len(co_count), "related", dtype=object)
    complement = (co_count >= COMPLEMENT_MIN_COUNT) & (lift >= COMPLEMENT_MIN_LIFT)
    alike = (np.nan_to_num(text_similarity, nan=-1.0) >= SUBSTITUTE_MIN_TEXT) | same_category
    out[~complement & alike & ~(lift > SUBSTITUTE_MAX_LIFT)] = "substitute"
    out[complement] = "complement"
    return out


def text_vectors(data: InteractionData) -> sp.csr_matrix:
    """Unit-norm TF-IDF (word + character n-gram) vectors of every item's catalog text."""
    from itemaffinity.text.encoders import item_texts, tfidf_vectors

    return tfidf_vectors(item_texts(data))


FALLBACK_SOURCES = {"text": "the products whose texts are most like its text",
                    "category": "the best sellers of its category", "popular": "the best sellers"}
"""What the cold-start chain (`cold_start_chain`) answers with, by its step."""


def cold_start_chain(text_idx: np.ndarray, text_scores: np.ndarray, categories: Sequence[str | None],
                     counts: np.ndarray, query_categories: Sequence[str | None], depth: int, items: Sequence[int] = ()
                     ) -> tuple[np.ndarray, np.ndarray, str]:
    """The cold-start chain of issue #5 for products no model has anything on (one product's similar items, or a
    basket of them): content, then category, then popularity. Returns (item indices, scores, step): "text", the
    candidates `text_idx` by their text cosines `text_scores` (those above 0); else "category", the best sellers
    (`counts`: each item's baskets, or customers) of `query_categories`; else "popular", the best sellers. `items`,
    the query's own products, are never answered."""
    items = np.asarray(items, np.int64)
    keep = (text_idx >= 0) & (text_scores > 0) & ~np.isin(text_idx, items)
    if keep.any():
        order = np.argsort(-text_scores[keep], kind="stable")[:depth]
        return text_idx[keep][order], np.asarray(text_scores[keep][order], np.float32), "text"
    order = np.argsort(-counts, kind="stable")
    order = order[(counts[order] > 0) & ~np.isin(order, items)]
    wanted = {c for c in query_categories if c}
    same = order[[categories[i] in wanted for i in order]] if wanted else order[:0]
    order = same if len(same) else order
    return order[:depth], counts[order[:depth]].astype(np.float32), "category" if len(same) else "popular"


def fallback_note(model: str, step: str, *, known: bool, bought: bool) -> str:
    """Why a model's similar items of a product come from the cold-start chain's `step`: the model was fitted
    before the product was added (not `known`), or it has no score for it (never bought, or bought with nothing
    else): the CLI's line, the API's note."""
    why = (f"the {model} model has nothing on this product: it has no score for a product "
           f"{'bought with nothing else' if bought else 'never bought'}" if known else
           f"the {model} model was fitted before this product was added (a refit includes it: POST "
           "/v1/admin/rebuild on the service, or itemaffinity analyze)")
    return f"{why}; shown instead: {FALLBACK_SOURCES[step]}"


def _rounded(value: float, digits: int) -> float | None:
    """A measure for JSON: None where it is undefined (a product never bought), since JSON has no NaN."""
    return round(float(value), digits) if np.isfinite(value) else None


class Explainer:
    """Builds evidence for item pairs and for a model's recommendations.

    Args:
        data: the interaction data the model was fitted on (same item indices).
        item_vectors: (n_items, dim) unit-norm text vectors (dense or sparse), or None.
    """

    def __init__(self, data: InteractionData, item_vectors: np.ndarray | sp.spmatrix | None = None) -> None:
        self.x = sp.csc_matrix(transactions(data), dtype=np.float32)
        self.counts = np.diff(self.x.indptr)
        self.n = max(self.x.shape[0], 1)
        self.data = data
        self.vectors = item_vectors

    def pair_stats(self, a: int, b: np.ndarray) -> dict[str, np.ndarray]:
        """Co-count, lift, confidence a→b, text similarity and shared category/brand of a with each b; lift and
        confidence are NaN where a product was never bought (undefined, not zero), as the service's are."""
        b = np.asarray(b, dtype=np.int64)
        co = np.asarray((self.x[:, [a]].T @ self.x[:, b]).todense()).ravel() if len(b) else np.zeros(0)
        counts = (co, self.counts[a], self.counts[b], self.n)
        lift, conf = MEASURES["lift"](*counts), MEASURES["confidence"](*counts)
        if self.vectors is not None and len(b):
            v = self.vectors
            sim = v[b] @ v[a].T
            sim = np.asarray(sim.todense() if sp.issparse(sim) else sim).ravel()
        else:
            sim = np.full(len(b), np.nan)
        cats, brands = self.data.categories, self.data.brands
        same_cat, same_brand = shares_value(cats, a, b), shares_value(brands, a, b)
        return {"co_count": co.astype(np.int64), "lift": lift, "confidence": conf, "text_similarity": sim,
                "same_category": same_cat, "same_brand": same_brand,
                "relation": relations(co, lift, sim, same_cat)}

    def explain(self, model: Recommender, query_ids: Sequence[str], recs: Recs, top: int = 3) -> Recs:
        """`recs` with evidence: the query items behind each recommendation and pair statistics
        between the recommended item and its strongest contributor."""
        items = self.data.items
        q = items.indices(query_ids)
        q = q[q >= 0]
        rec_idx = items.indices(recs.item_ids)
        evidence: list[dict[str, Any]] = []
        contrib = None
        if len(q):
            try:
                contrib = np.asarray(model.similar_scores(q), dtype=np.float64)  # (|q|, n_items)
            except NotImplementedError:
                contrib = None
        for c in rec_idx:
            ev: dict[str, Any] = {}
            if len(q):
                weights = contrib[:, c] if contrib is not None else np.ones(len(q))
                weights = np.where(np.isfinite(weights), weights, 0.0)
                order = np.argsort(-weights, kind="stable")[:top]
                total = np.abs(weights).sum() or 1.0
                ev["because_of"] = [{"item_id": items.id(q[o]), "title": self.data.titles[q[o]],
                                     "weight": round(float(weights[o] / total), 4)} for o in order if weights[o] > 0]
                anchor = int(q[order[0]])
                stats = self.pair_stats(anchor, np.array([c]))
                ev.update({"anchor": items.id(anchor), "co_count": int(stats["co_count"][0]),
                           "lift": _rounded(stats["lift"][0], 3),
                           "confidence": _rounded(stats["confidence"][0], 4),
                           "same_category": bool(stats["same_category"][0]),
                           "same_brand": bool(stats["same_brand"][0]), "relation": stats["relation"][0]})
                sim = stats["text_similarity"][0]
                if np.isfinite(sim):
                    ev["text_similarity"] = round(float(sim), 4)
            ev["popularity"] = int(self.counts[c])
            evidence.append(ev)
        return replace(recs, evidence=tuple(evidence))
