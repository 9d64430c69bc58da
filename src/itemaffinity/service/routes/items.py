"""Products: search, records, similar items (substitutes) and bought-together (complements)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from itemaffinity.service import queries
from itemaffinity.service.deps import (Current, Explain, Filters, Limit, ModelName, N, Offset, Relation, State,
                                       cached_json, dumps, json_response)
from itemaffinity.service.routes import problems
from itemaffinity.service.schemas import BoughtTogetherOut, ItemDetailOut, SearchOut, SimilarOut

router = APIRouter(prefix="/v1/items", tags=["items"])

ItemPath = Annotated[str, Path(min_length=1, max_length=200, description="External item id.")]


@router.get("", response_model=SearchOut, responses=problems(422), summary="Search products")
async def search(state: State, serving: Current,
                 q: Annotated[str | None, Query(max_length=200, description="Words of the title, or an item id. "
                                                "Empty: the most bought products.")] = None,
                 limit: Limit = 20, offset: Offset = 0) -> Response:
    """Lexical search over item ids and titles, plus semantic search when the text layer is loaded."""
    # Encoding the query with a sentence model takes milliseconds of CPU: off the event loop.
    return json_response(await run_in_threadpool(queries.search_items, serving.snap, serving.online,
                                                 serving.lexical, state.semantic, q, limit, offset,
                                                 serving.new_products))


@router.get("/{item_id}", response_model=ItemDetailOut, responses=problems(404, 422), summary="One product")
async def item(item_id: ItemPath, serving: Current) -> Response:
    """The catalog record and statistics: baskets, buyers, first/last seen, product group."""
    return json_response(queries.item_detail(serving.snap, serving.online, item_id, serving.new_products))


@router.get("/{item_id}/similar", response_model=SimilarOut, responses=problems(404, 422),
            summary="Similar products (substitutes, alternatives)")
async def similar(request: Request, item_id: ItemPath, state: State, serving: Current, filters: Filters,
                  model: ModelName = None, n: N = 10, explain: Explain = False, relation: Relation = None) -> Response:
    """Items a fitted model scores as most similar to this one; where it has nothing on the product (a product
    never bought, or newer than the model or the snapshot), the cold-start chain's: by text, else the category's
    best sellers, else the best sellers (`fallback` says which)."""
    snap, online = serving.snap, serving.online
    answer = queries.similar(snap, online, item_id, model=model, n=n, filt=filters, explain=explain,
                             relation=relation, semantic=state.semantic, new_products=serving.new_products)
    body, idx = dumps(answer), snap.item_index(item_id)
    if idx < 0 or (answer.get("fallback") and state.semantic_status == "loading"):
        return json_response(body)  # a new product's record may change; the text search is not loaded yet
    # Model scores change only with the snapshot; the evidence's co-counts and relations also with posted baskets.
    by_pairs = explain or relation is not None
    return cached_json(request, state, serving, body, idx if by_pairs else -1)


@router.get("/{item_id}/bought-together", response_model=BoughtTogetherOut, responses=problems(404, 422),
            summary="Bought together (complements) and bundles")
async def bought_together(request: Request, item_id: ItemPath, state: State, serving: Current, filters: Filters,
                          n: N = 10, explain: Explain = False, relation: Relation = None) -> Response:
    """Partners ranked by shrunk lift from the pair statistics (posted baskets included), and the
    frequent itemsets holding the item."""
    snap, online = serving.snap, serving.online
    idx = snap.item_index(item_id)
    if idx < 0:
        return json_response(queries.new_product_bought_together(snap, online, item_id, serving.new_products, n=n,
                                                                 filt=filters, explain=explain, relation=relation))
    body = dumps(queries.bought_together(snap, online, item_id, n=n, filt=filters, explain=explain,
                                         relation=relation))
    return cached_json(request, state, serving, body, idx)
