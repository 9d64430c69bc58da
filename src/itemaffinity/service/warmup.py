"""Precomputed answers: after a snapshot goes live, the plain `similar` (default model) and
`bought-together` answers of every item (n=10, no filters, no explanation — what a shop widget
asks for) are computed in small slices on the event loop and put in the response cache, so the
first shopper to open a product page gets a cached answer too. Where the model has nothing on a product, its
`similar` answer is the cold-start chain's, a text search each (about 10 ms on Online Retail, where rules has no
rule from 2,240 of 3,921 products): too slow to run for thousands on the event loop, so it is cached on first use.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

from itemaffinity.service import queries
from itemaffinity.service.deps import dumps
from itemaffinity.service.state import CachedResponse

if TYPE_CHECKING:
    from itemaffinity.service.state import Serving, ServiceState

log = logging.getLogger(__name__)

N = 10
SLICE = 128
SIMILAR = "/v1/items/{item_id}/similar"
BOUGHT = "/v1/items/{item_id}/bought-together"


def _put(state: "ServiceState", serving: "Serving", route: str, item_id: str, body: bytes, item_idx: int) -> None:
    path = route.replace("{item_id}", quote(item_id, safe="")).encode()
    gen = serving.online.item_generation(item_idx) if item_idx >= 0 else 0
    entry = CachedResponse(body, route, serving.snap.version, item_idx, gen)
    for qs in (b"", f"n={N}".encode()):  # the default written out or left off
        state.cache.put(path + b"?" + qs, entry)


async def warm(state: "ServiceState", serving: "Serving") -> None:
    """Fill the response cache for `serving`'s snapshot; stops early when it is swapped out."""
    snap, online = serving.snap, serving.online
    if state.settings.cache_entries < 4 * snap.n_items:
        log.info("response cache too small to precompute every item; answers are cached on first use")
        return
    t0 = time.perf_counter()
    order = snap.popularity_order.tolist()
    model = snap.models.get(snap.default_model) if snap.default_model else None
    filt = queries.ItemFilter()
    for start in range(0, len(order), SLICE):
        if state.current is not serving:
            return
        chunk = order[start:start + SLICE]
        ids = snap.data.items.ids_of(chunk)
        if model is not None:
            for item_id, idx, recs in zip(ids, chunk, model.similar_items(ids, n=N)):
                if len(recs):  # else the cold-start chain's answer, a text search: computed on first use
                    body = queries.similar_body(snap, item_id, snap.default_model, recs, N, filt)
                    _put(state, serving, SIMILAR, item_id, dumps(body), -1)
        for item_id, idx in zip(ids, chunk):
            body = queries.bought_together(snap, online, item_id, n=N, filt=filt, explain=False)
            _put(state, serving, BOUGHT, item_id, dumps(body), idx)
        await asyncio.sleep(0)  # let requests through between slices
    state.warmed_version = snap.version
    # Move the snapshot and the cache (millions of long-lived objects) out of the collector's
    # sight: a full collection over them stalls every request for tens of milliseconds.
    gc.collect()
    gc.freeze()
    log.info("precomputed similar/bought-together for %d items in %.1fs", len(order), time.perf_counter() - t0)
