"""Request dependencies: the service state, the current snapshot, filters and JSON responses."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import orjson
from fastapi import Depends, Query, Request
from starlette.responses import Response

from itemaffinity.service.problems import Problem
from itemaffinity.service.queries import ItemFilter
from itemaffinity.service.state import CachedResponse, Serving, ServiceState


async def get_state(request: Request) -> ServiceState:
    return request.app.state.service


async def get_serving(request: Request) -> Serving:
    """The snapshot (and its online state) this request uses from start to end."""
    serving = request.app.state.service.current
    if serving is None:
        raise Problem(503, "the service is still loading its snapshot")
    return serving


State = Annotated[ServiceState, Depends(get_state)]
Current = Annotated[Serving, Depends(get_serving)]

N = Annotated[int, Query(ge=1, le=100, description="How many items to return.")]
Explain = Annotated[bool, Query(description="Add the evidence (why each item is shown).")]
Relation = Annotated[Literal["complement", "substitute", "related"] | None, Query(description=(
    "Only items in this relation to the product: complement (goes with it: bought together far more than chance), "
    "substitute (instead of it: alike in text or category, not bought together more than chance) or related."))]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip.")]
ModelName = Annotated[str | None, Query(max_length=50, description="A loaded model (default: the best on the "
                                                                    "stored leaderboard, else ease).")]


async def item_filter(
    category: Annotated[list[Annotated[str, Query(max_length=200)]] | None, Query(
        max_length=50, description="Keep items whose category path or product group starts with this (repeatable).")] = None,
    exclude_category: Annotated[list[Annotated[str, Query(max_length=200)]] | None, Query(
        max_length=50, description="Drop items whose category path or product group starts with this (repeatable).")] = None,
    min_price: Annotated[float | None, Query(ge=0, description="Lowest price.")] = None,
    max_price: Annotated[float | None, Query(ge=0, description="Highest price.")] = None,
    exclude: Annotated[list[Annotated[str, Query(min_length=1, max_length=200)]] | None, Query(
        max_length=1000, description="Item ids never to return (repeatable).")] = None,
) -> ItemFilter:
    """Business filters from the query string."""
    return ItemFilter(tuple(category or ()), tuple(exclude_category or ()), min_price, max_price, tuple(exclude or ()))


Filters = Annotated[ItemFilter, Depends(item_filter)]


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """JSON bytes (orjson; NaN becomes null)."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(body: bytes | Any, status: int = 200) -> Response:
    return Response(body if isinstance(body, bytes) else dumps(body), status_code=status,
                    media_type="application/json")


def cached_json(request: Request, state: ServiceState, serving: Serving, body: bytes, item_idx: int = -1
                ) -> Response:
    """Answer with `body` and keep it for identical GETs while the snapshot (and, with `item_idx`,
    the item's online pair list) stays the same."""
    from itemaffinity.service.middleware import cache_key

    route = request.scope["route"].path
    gen = serving.online.item_generation(item_idx) if item_idx >= 0 else 0
    state.cache.put(cache_key(request.scope), CachedResponse(body, route, serving.snap.version, item_idx, gen))
    return json_response(body)
