"""Recommendations: complete a basket, for a known customer, for an ad-hoc history."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Path
from starlette.responses import Response

from itemaffinity.service import queries
from itemaffinity.service.deps import Current, Explain, Filters, ModelName, N, State, json_response
from itemaffinity.service.queries import ItemFilter
from itemaffinity.service.routes import problems
from itemaffinity.service.schemas import BasketIn, FilterFields, HistoryIn, RecsOut
from itemaffinity.service.state import Serving

router = APIRouter(prefix="/v1", tags=["recommendations"])


def _filter(body: FilterFields) -> ItemFilter:
    return ItemFilter(tuple(body.category), tuple(body.exclude_category), body.min_price, body.max_price,
                      tuple(body.exclude))


@router.post("/baskets/complete", response_model=RecsOut, responses=problems(400, 413, 422),
             summary="Complete a basket")
async def complete_basket(body: BasketIn, state: State, serving: Current) -> Response:
    """Items to add to a basket; with `explain`, the rules, co-purchases or look-alike names behind each."""
    return json_response(queries.recommend(serving.snap, serving.online, model=body.model, n=body.n,
                                           filt=_filter(body), explain=body.explain, history=body.items,
                                           mode="basket", semantic=state.semantic,
                                           new_products=serving.new_products))


def user_info(serving: Serving, user_id: str, n_history: int = 20) -> dict[str, Any]:
    """Segment and recent items of a customer (snapshot history, newest first, plus posted events)."""
    snap, online = serving.snap, serving.online
    u = snap.data.users.index(user_id)
    recent: list[int] = []
    if u >= 0:
        seq = snap.data.sequence(u)[::-1]
        _, first = np.unique(seq, return_index=True)
        recent = [int(i) for i in seq[np.sort(first)]]
    posted = [i for i in online.user_delta.get(user_id, {}) if i not in recent]
    items = posted[::-1] + recent
    return {"user_id": user_id, "known": u >= 0 or online.has_online_history(user_id),
            "segment": snap.segments.get(user_id), "items_bought": len(items),
            "recent_items": [queries.item_summary(snap, i) for i in items[:n_history]]}


@router.get("/users/{user_id}/recommendations", response_model=RecsOut, responses=problems(422),
            summary="Recommendations for a customer")
async def user_recommendations(user_id: Annotated[str, Path(min_length=1, max_length=200)], state: State,
                               serving: Current, filters: Filters, model: ModelName = None, n: N = 10,
                               explain: Explain = False) -> Response:
    """For a customer's history (including events posted since the snapshot); unknown customers
    get the most bought products (`fallback: popular`)."""
    out = queries.recommend(serving.snap, serving.online, model=model, n=n, filt=filters, explain=explain,
                            user_id=user_id, semantic=state.semantic)
    out["user"] = user_info(serving, user_id)
    return json_response(out)


@router.post("/recommendations", response_model=RecsOut, responses=problems(400, 413, 422),
             summary="Recommendations for a history (new or anonymous shoppers)")
async def history_recommendations(body: HistoryIn, state: State, serving: Current) -> Response:
    """For a list of items a shopper viewed or bought, e.g. a session of an anonymous visitor."""
    return json_response(queries.recommend(serving.snap, serving.online, model=body.model, n=body.n,
                                           filt=_filter(body), explain=body.explain, history=body.history,
                                           semantic=state.semantic, new_products=serving.new_products))
