"""The REST service (DESIGN §7): `create_app(Settings(...))`, served by `itemaffinity serve`.

Modules: settings (configuration), app (the factory), state (store connection, live snapshot,
caches), snapshot (the immutable read model), online (posted events folded into pair statistics
and histories), writer (validated, group-committed event append), jobs (background rebuilds),
warmup (precomputed answers), queries (the reads), search (lexical + semantic seam), routes/
(endpoints), auth, deps, schemas, problems, metrics, middleware, server (uvicorn runner).

`create_app` is imported lazily, so `itemaffinity.service.__main__` (the CLI's `serve` command)
does not load FastAPI and numpy until the server starts.
"""

from __future__ import annotations

from typing import Any

from itemaffinity.service.settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from itemaffinity.service.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
