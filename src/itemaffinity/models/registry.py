"""Models by name: `create_model("itemknn", k=50)`, `load_model(path)`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from itemaffinity.errors import InputError
from itemaffinity.models.base import Recommender
from itemaffinity.models.ease import EASE
from itemaffinity.models.factorization import ALS, BPR
from itemaffinity.models.itemknn import ItemKNN, LineKNN
from itemaffinity.models.popularity import Popularity, RecentPopularity
from itemaffinity.models.userknn import UserKNN
from itemaffinity.models.usermix import UserMixture

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls for cls in (Popularity, RecentPopularity, ItemKNN, LineKNN, UserKNN, UserMixture, EASE, ALS, BPR)
}

LAZY_MODELS: dict[str, str] = {
    "content": "itemaffinity.text.models:ContentModel",
    "content-finetuned": "itemaffinity.text.models:FinetunedContentModel",
    "tfidf": "itemaffinity.text.models:TfidfModel",
    "rules": "itemaffinity.models.rules:RulesRecommender",
    "hybrid": "itemaffinity.models.hybrid:Hybrid",
    "sasrec": "itemaffinity.models.sasrec:SASRec",
    "graph": "itemaffinity.models.graph:LightGCN",}
"""Models with heavy optional dependencies (torch, sentence-transformers): name → "module:Class",
imported on first use so that `import itemaffinity` stays light."""


def model_class(name: str) -> type[Recommender]:
    if name not in MODELS and name in LAZY_MODELS:
        import importlib

        module, _, cls = LAZY_MODELS[name].partition(":")
        MODELS[name] = getattr(importlib.import_module(module), cls)
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return MODELS[name]


def register(cls: type[Recommender]) -> type[Recommender]:
    """Add a model class to the registry (used by modules with heavy optional dependencies)."""
    MODELS[cls.name] = cls
    return cls


def model_names() -> list[str]:
    return list(dict.fromkeys([*MODELS, *LAZY_MODELS]))


def create_model(name: str, **params: Any) -> Recommender:
    return model_class(name)(**params)


def create_store_model(name: str, store_path: str | Path | None, **params: Any) -> Recommender:
    """`create_model` for a model fitted on a store's data: one that encodes the catalog text keeps the vectors
    in the store's embedding cache (keyed by the encoder's weights and the text), so each fit after the first
    reads them instead of encoding the titles again (unless `params` name another cache, or None). No store:
    `create_model`."""
    if store_path is not None and "embedding_cache" in model_class(name).Config.model_fields:
        params.setdefault("embedding_cache", str(Path(store_path).resolve()))
    return create_model(name, **params)


def load_model(path: str | Path) -> Recommender:
    """Load a model saved with `Recommender.save` (npz arrays + JSON, no pickle)."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    model = create_model(meta["model"], **meta["config"])
    saved = meta.get("artifact_version", 1)
    if saved != model.artifact_version:
        raise InputError(f"{path}: a {model.name} saved by an {'older' if saved < model.artifact_version else 'newer'} "
                         f"itemaffinity (artifact version {saved}, this one reads {model.artifact_version}); "
                         "fit it again (itemaffinity analyze)")
    with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    model._restore(arrays, meta["sparse"], path)
    return model
