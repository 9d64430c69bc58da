"""Run the service with uvicorn: one process by default, or `workers` read-only replicas.

DuckDB lets one process write a database file. With one worker the server is that process: it
holds the store open read-write, appends posted events and runs rebuilds. With several workers
each worker loads its own snapshot read-only and closes the file, and writes are refused (409) —
run a separate single-worker server for event ingest and restart the replicas after a rebuild.
"""

from __future__ import annotations

import logging
import os

from itemaffinity.errors import InputError
from itemaffinity.service.settings import Settings

log = logging.getLogger(__name__)


def run(settings: Settings, *, log_level: str = "info", access_log: bool = False) -> None:
    """Serve until interrupted.

    Raises:
        InputError: the store file does not exist.
    """
    import uvicorn

    if not settings.store_path.is_file():
        raise InputError("store not found: run `itemaffinity analyze` or `itemaffinity ingest` first",
                         file=str(settings.store_path))
    try:  # a clear error now rather than a traceback from a worker (DuckDB allows one writer)
        import duckdb

        duckdb.connect(str(settings.store_path), read_only=not settings.writable).close()
    except duckdb.Error as exc:
        raise InputError(f"cannot open the store: {str(exc).splitlines()[0]}",
                         file=str(settings.store_path)) from None
    if settings.compute_threads is not None:
        # Before numpy/LightGBM load (here and in worker processes): OpenMP reads these at start-up.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, str(settings.compute_threads))
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the API is reachable from other machines", settings.host)
    if not settings.api_keys:
        log.warning("no API key configured (ITEMAFFINITY_API_KEYS): event ingest and rebuilds are refused")
    common = {"host": settings.host, "port": settings.port, "log_level": log_level, "access_log": access_log,
              "server_header": False, "proxy_headers": False}
    if settings.workers > 1:
        log.info("%d workers: each is a read-only replica; writes are refused", settings.workers)
        os.environ.update(settings.to_env())
        uvicorn.run("itemaffinity.service.app:app_from_env", factory=True, workers=settings.workers, **common)
    else:
        from itemaffinity.service.app import create_app

        uvicorn.run(create_app(settings), **common)
