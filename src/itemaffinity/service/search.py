"""Product search: lexical over item ids and titles, plus semantic search when the text layer offers it.

The seam to the text layer (`itemaffinity.text`) is `load_semantic`: it returns an object with
`search(query, k) -> [(item_id, score)]`, or None when the layer (or its models) is not available, in which
case search is lexical only. A pair's text similarity (its evidence and relation) is not the search layer's but
the snapshot's TF-IDF cosine, the one `analyze` stores with the pair.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

from itemaffinity.data.interactions import InteractionData

log = logging.getLogger(__name__)


class SemanticSearch(Protocol):
    """What the service needs from a text search layer."""

    kind: str

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The k items closest to a free-text query: (item_id, cosine), best first."""

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        """`search` for several queries, encoded together."""


@dataclass(frozen=True, eq=False)
class LexicalIndex:
    """Case-insensitive matching of query words against item ids and titles.

    Attributes:
        ids: upper-cased item ids (numpy unicode array, item index order).
        titles: " " + upper-cased title, so a word start is " WORD".
    """

    ids: np.ndarray
    titles: np.ndarray

    @classmethod
    def from_data(cls, data: InteractionData) -> "LexicalIndex":
        return cls.of(data.items.ids, data.titles)

    @classmethod
    def of(cls, ids: Sequence[Any], titles: Sequence[Any]) -> "LexicalIndex":
        """An index over aligned ids and titles (a title may be None)."""
        return cls(np.array([str(i).upper() for i in ids], dtype=str),
                   np.array([" " + " ".join(str(t or "").upper().split()) for t in titles], dtype=str))

    def search(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Matching item indices and scores in [0, 1] (unordered).

        An exact id scores 1, an id prefix 0.9. Otherwise each significant query word (two letters
        or more, not a stop word like "for") counts 1 at a word start in the title and 0.6 inside a
        word, averaged over those words; an item missing one of them scores at most 0.5 and needs
        half of them to be kept.
        """
        words = query.upper().split()
        if not words:
            return np.zeros(0, np.int64), np.zeros(0)
        significant = [w for w in words if len(w) > 1 and w not in STOP_WORDS] or words
        score = np.zeros(len(self.ids))
        matched_all = np.ones(len(self.ids), dtype=bool)
        for w in significant:
            start = np.char.find(self.titles, " " + w) >= 0
            inside = np.char.find(self.titles, w) >= 0
            score += np.where(start, 1.0, np.where(inside, 0.6, 0.0))
            matched_all &= inside
        score /= len(significant)
        score = np.where(matched_all, score, np.where(score >= 0.5, 0.5, 0.0))
        q = " ".join(words)
        score = np.maximum(score, np.where(self.ids == q, 1.0, np.where(np.char.startswith(self.ids, q), 0.9, 0.0)))
        hit = np.flatnonzero(score > 0)
        return hit, score[hit]


STOP_WORDS = frozenset({"A", "AN", "AND", "FOR", "OF", "THE", "TO", "IN", "ON", "WITH", "OR", "AT", "BY", "MY"})
"""Query words that say nothing about the product (English; a query of only these still matches)."""


class TextLayerSearch:
    """Adapter over `itemaffinity.text.ann.ProductSearch` (sentence model or TF-IDF vectors) or `TextFusion`."""

    def __init__(self, product_search, kind: str) -> None:
        self._ps = product_search
        self.kind = kind

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        return self.search_batch([query], k)[0]

    def search_batch(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        return [[(str(i), float(s)) for i, s in zip(recs.item_ids, recs.scores)]
                for recs in self._ps.search_batch(list(queries), k)]


def load_semantic(data: InteractionData, mode: str, cache_con=None, text_model: str | None = None
                  ) -> SemanticSearch | None:
    """The text layer's product search over `data`'s catalog, or None.

    Args:
        data: the snapshot's interaction data (items and titles).
        mode: "sentence" (sentence-transformers model), "tfidf", "auto" (both, by the mean of their cosines,
            `text.ann.TextFusion`: the sentence model knows what a query means, TF-IDF matches names typed with a
            slip; else TF-IDF alone, also when the sentence model is the bundled English one and most of the
            catalog's texts are Chinese, Japanese or Korean, which TF-IDF's character n-grams match and that model
            does not understand) or "off".
        cache_con: a DuckDB connection for the text layer's embedding cache (None: no cache).
        text_model: the sentence model, a name or local folder (None: `default_text_model()`).
    """
    if mode == "off":
        return None
    try:
        from itemaffinity.text.ann import ProductSearch, TextFusion
        from itemaffinity.text.encoders import (EmbeddingCache, SentenceEncoder, default_text_model, fitted_tfidf,
                                                is_bundled_english, item_texts, mostly_cjk)
    except ImportError as exc:
        log.info("text layer not available (%s): lexical search only", exc)
        return None
    t0 = time.perf_counter()
    text_model = text_model or default_text_model()
    attempts = ["sentence+tfidf", "tfidf"] if mode == "auto" else [mode]
    if mode == "auto" and is_bundled_english(text_model) and mostly_cjk(item_texts(data)):
        log.info("most product texts are Chinese, Japanese or Korean and the sentence model is %s (English): "
                 "TF-IDF text search (set a multilingual text model for semantic search)", text_model)
        attempts = ["tfidf"]
    for kind in attempts:
        try:
            parts = []
            if "sentence" in kind:
                cache = EmbeddingCache(cache_con) if cache_con is not None else None
                encoder = SentenceEncoder(text_model, cache=cache)
                parts.append(ProductSearch.from_data(data, encoder))
                encoder.cache = None  # the catalog is encoded; search queries are not worth caching
            if "tfidf" in kind:  # the snapshot's pair similarities fit the same catalog's TF-IDF: fitted once for both
                texts = item_texts(data)
                encoder, vectors = fitted_tfidf(texts)
                parts.append(ProductSearch(encoder, data.items.ids, texts, vectors))
            search = TextLayerSearch(parts[0] if len(parts) == 1 else TextFusion(*parts), kind)
        except Exception as exc:  # noqa: BLE001 - any failure of an optional layer means "not available"
            log.warning("%s text search not available: %s", kind, exc)
            continue
        log.info("%s text search over %d items ready in %.1fs", kind, data.n_items, time.perf_counter() - t0)
        return search
    return None
