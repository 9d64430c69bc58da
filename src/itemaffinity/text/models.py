"""Content recommenders: items scored by the similarity of their catalog text.

The item–item score is the cosine of the items' text vectors; a query (a basket or a history) scores
an item by the largest (`aggregate="max"`, the default of the sentence models: on the cold-start
task it ranks better) or the weighted mean of its similarities to the query's items. Every item
with text gets a vector, including catalog-only items that have no events yet, so these models
score cold items — what behaviour-only models cannot do.

- `content`: a pretrained sentence encoder (all-MiniLM-L6-v2 by default; any name or folder).
- `content-finetuned`: the same encoder fine-tuned in `fit` on the training data's co-purchases
  (text/finetune.py), or loaded from an earlier fine-tuned folder (`finetuned_path`); `refresh`
  encodes a grown catalog with the encoder a fit saved, without fine-tuning again.
- `tfidf`: word + character n-gram TF-IDF (no torch needed).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from itemaffinity.data.interactions import InteractionData
from itemaffinity.models._sparse import row_blocks
from itemaffinity.models.base import ModelConfig, Recommender
from itemaffinity.text.encoders import (EmbeddingCache, SentenceEncoder, default_text_model, item_texts,
                                        tfidf_vectors)
from itemaffinity.text.finetune import FinetuneConfig, finetune_on_baskets

log = logging.getLogger(__name__)


_BLOCK_ELEMENTS = 1 << 25
"""Item-similarity entries held at once by the max aggregation (128 MiB of float32)."""


def _dense(m: np.ndarray | sp.spmatrix) -> np.ndarray:
    return np.asarray(m.toarray() if sp.issparse(m) else m, dtype=np.float32)


def content_scores(queries: sp.csr_matrix, vectors: np.ndarray | sp.csr_matrix,
                   aggregate: Literal["mean", "max"] = "mean") -> np.ndarray:
    """Scores of every item for query rows, from item text vectors.

    Args:
        queries: (q, n_items) CSR of weighted item indices (a basket or a history per row).
        vectors: (n_items, dim) L2-normalised item vectors (dense, or sparse TF-IDF).
        aggregate: "mean": the query-weighted mean of the cosines to the query's items;
            "max": the largest cosine to any query item (weights are ignored).

    Returns:
        (q, n_items) float32 scores; all zero for an empty query row.
    """
    queries = sp.csr_matrix(queries, dtype=np.float32)
    if aggregate == "mean":
        weight = np.asarray(queries.sum(axis=1)).ravel()
        scores = _dense((queries @ vectors) @ vectors.T)
        return scores / np.where(weight > 0, weight, 1.0)[:, None].astype(np.float32)
    # max: the similarities of a block of rows' distinct query items are computed once per block.
    out = np.zeros(queries.shape, dtype=np.float32)
    ptr = queries.indptr
    for start, end in row_blocks(ptr, max(1, _BLOCK_ELEMENTS // max(queries.shape[1], 1))):
        uniq, inv = np.unique(queries.indices[ptr[start]:ptr[end]], return_inverse=True)
        sims = _dense(vectors[uniq] @ vectors.T) if len(uniq) else None
        for r in range(start, end):
            if ptr[r + 1] > ptr[r]:
                out[r] = sims[inv[ptr[r] - ptr[start]:ptr[r + 1] - ptr[start]]].max(axis=0)
    return out


class ContentConfig(ModelConfig):
    encoder: str = Field(default_factory=default_text_model, description=(
        "Sentence-transformers model name or local folder (default: $ITEMAFFINITY_TEXT_MODEL, else all-MiniLM-L6-v2)."))
    aggregate: Literal["mean", "max"] = Field(
        default="max", description="How a query's item similarities combine (max: measured better on cold start).")
    batch_size: int = Field(default=64, ge=1, description="Texts per forward pass when encoding.")
    device: str | None = Field(default=None, description="Torch device; None lets sentence-transformers choose.")
    embedding_cache: str | None = Field(
        default=None, description="DuckDB file caching text embeddings (normally the store); None: no cache.")


class ContentModel(Recommender):
    """Item–item cosine of pretrained sentence embeddings of the catalog text.

    Learned state: `item_vectors_`, (n_items, dim) float32, unit rows (zero for items without text).
    """

    name = "content"
    Config = ContentConfig
    ranks_by_text = True

    def _cache(self) -> EmbeddingCache | None:
        return EmbeddingCache(self.config.embedding_cache) if self.config.embedding_cache else None

    def _encoder_model(self, data: InteractionData):
        """What SentenceEncoder loads: a model name or folder (or a loaded model)."""
        return self.config.encoder

    def _fit(self, data: InteractionData) -> None:
        encoder = SentenceEncoder(self._encoder_model(data), cache=self._cache(), batch_size=self.config.batch_size,
                                  device=self.config.device)
        t0 = time.perf_counter()
        self.item_vectors_ = encoder.encode(item_texts(data))
        log.info("%s: %d item vectors in %.1fs", self.name, len(self.item_vectors_), time.perf_counter() - t0)

    def score(self, queries: sp.csr_matrix) -> np.ndarray:
        return content_scores(queries, self.item_vectors_, self.config.aggregate)

    def similar_scores(self, item_idx: np.ndarray) -> np.ndarray:
        return _dense(self.item_vectors_[np.asarray(item_idx)] @ self.item_vectors_.T)


class FinetunedContentConfig(ContentConfig, FinetuneConfig):
    finetuned_path: str | None = Field(
        default=None, description="Folder of an already fine-tuned encoder: fit loads it instead of training.")
    output_dir: str | None = Field(
        default=None, description="Where fit saves the fine-tuned encoder (None: it is not saved).")


class FinetunedContentModel(ContentModel):
    """`content` with the encoder fine-tuned on the training data's co-purchase pairs.

    Fine-tuning sees only `fit`'s data (the training period), so evaluation does not leak.
    """

    name = "content-finetuned"
    Config = FinetunedContentConfig

    def _encoder_model(self, data: InteractionData):
        cfg = self.config
        saved = vars(self).pop("_saved_encoder", None) or cfg.finetuned_path
        if saved:
            return saved
        tune = FinetuneConfig(**{k: getattr(cfg, k) for k in FinetuneConfig.model_fields})
        return finetune_on_baskets(data, cfg.encoder, tune, output_dir=cfg.output_dir, device=cfg.device)

    def refresh(self, data: InteractionData) -> "FinetunedContentModel":
        """A new model with `data`'s catalog encoded by the encoder this fit saved (`output_dir`, or the
        `finetuned_path` it loaded), so that a grown store's new products get vectors in seconds instead of
        a fine-tuning of minutes. The encoder keeps what it learnt from the earlier co-purchases; without a
        saved encoder this is a fit, which fine-tunes on `data`."""
        self._check_fitted()
        fresh = type(self)(config=self.config)
        saved = self.config.finetuned_path or self.config.output_dir
        if saved and (Path(saved) / "modules.json").is_file():
            fresh._saved_encoder = saved
        else:
            log.warning("%s: no saved encoder to refresh with (%s); fine-tuning again", self.name, saved)
        return fresh.fit(data)


class TfidfConfig(ModelConfig):
    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 4)
    char_weight: float = Field(default=0.5, ge=0.0, le=1.0, description="Share of character n-grams.")
    min_df: int = Field(default=1, ge=1)
    aggregate: Literal["mean", "max"] = "mean"


class TfidfModel(ContentModel):
    """Item–item cosine of word + character n-gram TF-IDF vectors of the catalog text.

    Learned state: `item_vectors_`, (n_items, n_terms) float32 CSR with unit rows.
    """

    name = "tfidf"
    Config = TfidfConfig

    def _fit(self, data: InteractionData) -> None:
        cfg = self.config
        self.item_vectors_ = tfidf_vectors(item_texts(data), word_ngrams=cfg.word_ngrams, char_ngrams=cfg.char_ngrams,
                                           char_weight=cfg.char_weight, min_df=cfg.min_df)
