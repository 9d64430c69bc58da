"""Writes and admin (API key needed): event ingest, rebuilds and their progress."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated

from fastapi import APIRouter, Body, Path
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from itemaffinity.service.auth import ApiKey
from itemaffinity.service.deps import State, json_response
from itemaffinity.service.jobs import rebuild
from itemaffinity.service.problems import Problem
from itemaffinity.service.routes import problems
from itemaffinity.service.schemas import CatalogIn, CatalogOut, EventsIn, EventsOut, JobOut, RebuildIn
from itemaffinity.service.state import ServiceState

router = APIRouter(prefix="/v1", tags=["writes"], dependencies=[ApiKey])


def _writable(state: ServiceState) -> None:
    if state.writer is None:
        why = (f"this server runs {state.settings.workers} workers, each a read-only replica"
               if state.settings.workers > 1 else "this server was started read-only")
        raise Problem(409, f"writes are not possible here: {why}; start one worker to write", title="Read-only")


@router.post("/events", response_model=EventsOut, responses=problems(400, 401, 403, 409, 413, 422),
             summary="Ingest events")
async def post_events(body: EventsIn, state: State) -> Response:
    """Validate a batch like file ingest (each bad row rejected with its reason), append the accepted
    rows durably to the store, and fold them into the live pair statistics and user histories."""
    _writable(state)
    if len(body.events) > state.settings.max_events_per_request:
        raise Problem(422, f"at most {state.settings.max_events_per_request:,} events per request")
    rows = [e.model_dump() for e in body.events]
    result = await run_in_threadpool(state.writer.write, rows)
    serving = state.current  # after the write: a snapshot swapped in meanwhile may already hold it
    folded = 0
    if result.run_id is not None and result.run_id > serving.snap.watermark:
        folded = serving.online.fold(result.accepted)
    counts = result.reject_counts()
    serving.api_rejects.update(counts)
    state.metrics.events_accepted += len(result.accepted)
    state.metrics.events_rejected += len(result.rejected)
    state.metrics.event_batches += 1
    return json_response({"run_id": result.run_id, "received": result.received, "accepted": len(result.accepted),
                          "rejected": counts, "rejects": [{"row": r, "reason": why} for r, why in result.rejected],
                          "folded": folded, "pending_rebuild": len(result.accepted) - folded})


@router.post("/catalog", response_model=CatalogOut, responses=problems(400, 401, 403, 409, 413, 422),
             summary="Add or update products")
async def post_catalog(body: CatalogIn, state: State) -> Response:
    """New products before their first sale, or new titles, categories and prices of known ones: validated like a
    catalog file (each bad row rejected with its reason) and stored durably. A new product is answered at once:
    its record, and similar items from its text (content → category → popularity); the next rebuild takes it into
    the models, and changes to known products into the answers."""
    _writable(state)
    rows = [p.model_dump() for p in body.products]
    result = await run_in_threadpool(state.writer.write_catalog, rows)
    new = [i for i in result.stored if state.current.snap.data.items.index(i) < 0]
    # Served from their text until a snapshot holds them (`queries.cold_start_neighbours`); read after the await, the
    # live snapshot may be a newer one.
    records = await run_in_threadpool(state.writer.catalog_records, new) if new else {}
    serving = state.current
    serving.new_products.update((i, row) for i, row in records.items() if serving.snap.data.items.index(i) < 0)
    return json_response({"run_id": result.run_id, "received": result.received, "stored": len(result.stored),
                          "rejected": result.reject_counts(),
                          "rejects": [{"row": r, "reason": why} for r, why in result.rejected],
                          "new_products": len(new)})


@router.post("/admin/rebuild", status_code=202, response_model=JobOut, responses=problems(400, 401, 403, 409, 413, 422),
             summary="Start a rebuild")
async def start_rebuild(state: State, body: Annotated[RebuildIn | None, Body()] = None) -> Response:
    """Re-mine pairs, itemsets and rules, re-cluster and refit models on the store in the background;
    the new snapshot goes live when done. Follow it with GET /v1/admin/jobs/{id}."""
    _writable(state)
    body = body or RebuildIn()
    if body.models is not None:
        from itemaffinity.models.registry import model_names

        unknown = sorted(set(body.models) - set(model_names()))
        if unknown:
            raise Problem(422, f"unknown model(s) {', '.join(unknown)}; known: {', '.join(model_names())}")
    job = state.jobs.create("rebuild")
    if job is None:
        running = state.jobs.active("rebuild")
        raise Problem(409, f"a rebuild is already running (job {running.id if running else '?'})",
                      title="Rebuild running")
    loop = asyncio.get_running_loop()
    threading.Thread(target=rebuild, args=(state, job, body.models, body.cluster, loop, body.relearn),
                     name=f"rebuild-{job.id}", daemon=True).start()
    return json_response(job.to_dict(), status=202)


@router.get("/admin/jobs/{job_id}", response_model=JobOut, responses=problems(401, 403, 404, 422),
            summary="Progress of a job")
async def get_job(job_id: Annotated[str, Path(max_length=64)], state: State) -> Response:
    job = state.jobs.get(job_id)
    if job is None:
        raise Problem(404, f"unknown job {job_id!r}")
    return json_response(job.to_dict())
