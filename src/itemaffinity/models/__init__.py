"""Recommenders behind one small protocol (DESIGN §5) and a registry by name."""

from itemaffinity.models.base import Recommender, Recs, rank_top_n
from itemaffinity.models.registry import MODELS, create_model, load_model, model_names

__all__ = ["MODELS", "Recommender", "Recs", "create_model", "load_model", "model_names", "rank_top_n"]
