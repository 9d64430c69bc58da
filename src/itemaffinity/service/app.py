"""The app factory: `create_app(settings)` wires settings, state, routes, errors and the web UI.

Nothing is created at import time; each app owns its `ServiceState` (on `app.state.service`), which
opens the store and builds the first snapshot when the app starts (lifespan).
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from itemaffinity import __version__
from itemaffinity.service.middleware import ServiceMiddleware
from itemaffinity.service.problems import install_problem_handlers, problem_response
from itemaffinity.service.queries import BadRequest, NotFound
from itemaffinity.service.routes import insights, items, recommend, system, writes
from itemaffinity.service.settings import Settings
from itemaffinity.service.state import ServiceState
from itemaffinity.ui import STATIC_DIR

log = logging.getLogger(__name__)

UI_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
          "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
"""The web UI loads nothing from elsewhere: every script and style is served by this server."""

DESCRIPTION = """Product associations from behaviour logs: what is bought together, what is similar,
what to add to a basket, what to show a customer — and why.

Errors are RFC 7807 problem documents (`application/problem+json`). Lists paginate with `limit` and
`offset`. Writes (`POST /v1/events`, `/v1/admin/*`) need an `X-API-Key` header matching one of the
server's keys (`ITEMAFFINITY_API_KEYS`): a missing or wrong key is **401**; a server with no key
configured refuses every write with **403**; a read-only replica (several workers) answers **409**.
The web UI for merchandisers is at `/`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new service app over `settings` (default: from the ITEMAFFINITY_* environment)."""
    settings = settings if settings is not None else Settings.from_env()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.loop = asyncio.get_running_loop()
        await run_in_threadpool(state.open)
        state.start_semantic()
        state.start_warmup()
        log.info("serving %s (%s)", settings.store_path, "read-write" if state.writer else "read-only")
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="itemaffinity", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  openapi_tags=[{"name": "items", "description": "Search, product records, similar and bought together."},
                                {"name": "recommendations", "description": "Baskets, customers, histories."},
                                {"name": "insights", "description": "Rules, segments, leaderboard, data quality."},
                                {"name": "writes", "description": "Event ingest and rebuilds (API key)."},
                                {"name": "system", "description": "Health and metrics."}])
    app.state.service = state
    install_problem_handlers(app)

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return problem_response(404, str(exc), instance=request.url.path)

    @app.exception_handler(BadRequest)
    async def _bad_request(request: Request, exc: BadRequest) -> Response:
        return problem_response(422, str(exc), title="Invalid request", instance=request.url.path)

    for module in (system, items, recommend, insights, writes):
        app.include_router(module.router)

    @app.get("/", include_in_schema=False)
    async def ui_index() -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"Content-Security-Policy": UI_CSP,
                                                                 "Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        # Swagger UI from the vendored copy (FastAPI's default page loads it from a CDN).
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="itemaffinity API",
                                   swagger_js_url="/ui/swagger-ui-bundle.js", swagger_css_url="/ui/swagger-ui.css",
                                   swagger_favicon_url="/ui/favicon.png")

    app.mount("/ui", StaticFiles(directory=STATIC_DIR), name="ui")
    app.add_middleware(ServiceMiddleware, state=state, max_body=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn worker processes (`--workers N`): settings come from the environment."""
    return create_app(Settings.from_env())
