"""Health and metrics."""

from __future__ import annotations

import numpy as np
from fastapi import APIRouter
from starlette.responses import Response

from itemaffinity.service.deps import Current, State, json_response
from itemaffinity.service.schemas import HealthOut

router = APIRouter(tags=["system"])


@router.get("/health", response_model=HealthOut, summary="Liveness and what is loaded")
async def health(state: State, serving: Current) -> Response:
    snap, online = serving.snap, serving.online
    return json_response({
        "status": "ok", "snapshot_version": snap.version, "snapshot_built_at": snap.built_at,
        "items": snap.n_items, "users": snap.data.n_users, "baskets": online.n_transactions,
        "unit": snap.unit,
        "models": sorted(snap.models), "default_model": snap.default_model,
        "writable": state.writer is not None, "semantic": state.semantic_status,
        "precomputed": state.warmed_version == snap.version,
        "events_since_snapshot": len(online.log), "rankers_learnt_until": rankers_learnt_until(snap.models)})


def rankers_learnt_until(models: dict) -> dict[str, str | None]:
    """Each hybrid's `rankers_until_` as ISO text (None when its artifact predates it or the data have no time)."""
    from itemaffinity.models.hybrid import Hybrid

    out = {}
    for name, model in sorted(models.items()):
        if isinstance(model, Hybrid):
            until = getattr(model, "rankers_until_", None)
            out[name] = None if until is None or np.isnat(until) else str(until)
    return out


@router.get("/metrics", summary="Prometheus metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def metrics(state: State) -> Response:
    serving = state.current
    gauges = {"itemaffinity_snapshot_version": ("Version of the live snapshot.",
                                                 serving.snap.version if serving else 0),
              "itemaffinity_snapshot_items": ("Items in the live snapshot.", serving.snap.n_items if serving else 0),
              "itemaffinity_events_since_snapshot": ("Posted events folded in since the snapshot.",
                                                     len(serving.online.log) if serving else 0),
              "itemaffinity_response_cache_entries": ("Entries in the response cache.", len(state.cache)),
              "itemaffinity_response_cache_hits": ("Response cache hits.", state.cache.hits),
              "itemaffinity_response_cache_misses": ("Response cache misses.", state.cache.misses)}
    return Response(state.metrics.render(gauges), media_type="text/plain; version=0.0.4; charset=utf-8")
