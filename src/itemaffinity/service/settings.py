"""Service settings: one validated, immutable object built from arguments and the environment.

Environment variables (all optional except the store, which has a default):

- ``ITEMAFFINITY_STORE``: the DuckDB store file (default ``itemaffinity.duckdb``).
- ``ITEMAFFINITY_API_KEYS``: comma-separated keys accepted in ``X-API-Key`` for writes and admin.
- ``ITEMAFFINITY_HOST`` / ``ITEMAFFINITY_PORT``: where to listen (default 127.0.0.1:8000).
- ``ITEMAFFINITY_WORKERS``: uvicorn worker processes (several workers are read-only replicas).
- ``ITEMAFFINITY_SEMANTIC``: ``auto`` | ``sentence`` | ``tfidf`` | ``off`` (text search layer).
- ``ITEMAFFINITY_TEXT_MODEL``: the sentence model of semantic search (name or local folder).
- ``ITEMAFFINITY_MODELS``: comma-separated model names to load (default: every saved model).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_PREFIX = "ITEMAFFINITY_"

SemanticMode = Literal["auto", "sentence", "tfidf", "off"]


class Settings(BaseModel):
    """Everything the service needs to start; passed to `create_app`.

    Attributes:
        store_path: the DuckDB store file (resolved to an absolute path).
        host, port: listen address; 127.0.0.1 unless told otherwise.
        workers: uvicorn worker processes. With more than one, every worker is a read-only replica
            (DuckDB allows one writing process), so event ingest and rebuilds are refused (409).
        api_keys: keys accepted in the ``X-API-Key`` header for writes and admin; with none,
            writes are refused (403).
        read_only: never write to the store (forced when workers > 1).
        max_body_bytes: larger request bodies are refused with 413.
        max_events_per_request: larger event batches are refused with 422.
        models: model names to load (None: every model saved next to the store).
        semantic: text search layer: ``auto`` (the sentence model and TF-IDF together when the sentence model
            is available, else TF-IDF, loaded in the background; TF-IDF too when the sentence model is the bundled
            English one and most titles are Chinese, Japanese or Korean), ``sentence``, ``tfidf`` or ``off``
            (lexical search only).
        text_model: the sentence-transformers model of semantic search, a name or local folder (None: the
            bundled all-MiniLM-L6-v2, English; a multilingual model for a Chinese catalog). The environment
            variable is also what every text model defaults to (`text.encoders.default_text_model`).
        cache_entries: responses kept per snapshot in the in-memory response cache.
        pairs_per_item: partners kept per item when an item's pair list is recomputed online
            (the analysis writes 50 per item).
        pair_min_count: minimum co-occurrence count of a pair (the analysis uses 2).
        compute_threads: BLAS/OpenMP threads per worker for request-time scoring (the products
            are small, so one thread is fastest, and workers do not fight over cores); rebuilds
            use every core. None: leave the libraries' defaults.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    store_path: Path = Path("itemaffinity.duckdb")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    api_keys: tuple[str, ...] = ()
    read_only: bool = False
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_events_per_request: int = Field(default=10_000, ge=1)
    models: tuple[str, ...] | None = None
    semantic: SemanticMode = "auto"
    text_model: str | None = None
    cache_entries: int = Field(default=50_000, ge=0)
    pairs_per_item: int = Field(default=50, ge=1)
    pair_min_count: int = Field(default=2, ge=1)
    compute_threads: int | None = Field(default=1, ge=1)

    @field_validator("store_path")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # One spelling of the path: DuckDB shares a database instance per path within a process.
        return Path(v).expanduser().resolve()

    @field_validator("api_keys")
    @classmethod
    def _non_empty_keys(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(k.strip() for k in v if k.strip())

    @property
    def writable(self) -> bool:
        """Whether this process may write to the store (events, rebuilds)."""
        return not self.read_only and self.workers == 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> "Settings":
        """Settings from ``ITEMAFFINITY_*`` variables, with explicit `overrides` winning.

        Args:
            env: the environment to read (default ``os.environ``).
            **overrides: field values given by the caller (e.g. CLI options); None values are ignored.
        """
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        simple = {"STORE": "store_path", "HOST": "host", "PORT": "port", "WORKERS": "workers",
                  "SEMANTIC": "semantic", "MAX_BODY_BYTES": "max_body_bytes", "TEXT_MODEL": "text_model"}
        for key, field in simple.items():
            if env.get(ENV_PREFIX + key):
                values[field] = env[ENV_PREFIX + key]
        if env.get(ENV_PREFIX + "API_KEYS"):
            values["api_keys"] = tuple(env[ENV_PREFIX + "API_KEYS"].split(","))
        if env.get(ENV_PREFIX + "MODELS"):
            values["models"] = tuple(m.strip() for m in env[ENV_PREFIX + "MODELS"].split(",") if m.strip())
        if env.get(ENV_PREFIX + "READ_ONLY", "").lower() in ("1", "true", "yes"):
            values["read_only"] = True
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The ``ITEMAFFINITY_*`` variables that reproduce these settings (for worker processes)."""
        env = {ENV_PREFIX + "STORE": str(self.store_path), ENV_PREFIX + "HOST": self.host,
               ENV_PREFIX + "PORT": str(self.port), ENV_PREFIX + "WORKERS": str(self.workers),
               ENV_PREFIX + "SEMANTIC": self.semantic, ENV_PREFIX + "MAX_BODY_BYTES": str(self.max_body_bytes),
               ENV_PREFIX + "API_KEYS": ",".join(self.api_keys),
               ENV_PREFIX + "READ_ONLY": "1" if self.read_only else ""}
        if self.models is not None:
            env[ENV_PREFIX + "MODELS"] = ",".join(self.models)
        if self.text_model is not None:
            env[ENV_PREFIX + "TEXT_MODEL"] = self.text_model
        return env
