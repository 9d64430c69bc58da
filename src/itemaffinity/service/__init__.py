"""The REST service (DESIGN §7): `create_app(Settings(...))`, served by `itemaffinity serve`.

Modules: settings (configuration), app (the factory), state (store connection, live snapshot,
caches), snapshot (the immutable read model), online (posted events folded into pair statistics
and histories), writer (validated event append), jobs (background rebuilds), queries (the reads),
search (lexical + semantic seam), routes/ (endpoints), auth, deps, schemas, problems, metrics,
middleware, server (uvicorn runner).
"""

from itemaffinity.service.app import create_app
from itemaffinity.service.settings import Settings

__all__ = ["Settings", "create_app"]
