"""The running service's state: the store connection, the current snapshot, caches and jobs.

One `ServiceState` per app (created by the app factory, kept on `app.state`; no module globals).
Reads take `state.current` once and use that `Serving` for the whole request; a rebuild builds a
new snapshot in a background thread and the event loop swaps it in with one assignment.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import duckdb

from itemaffinity.service.jobs import JobRegistry
from itemaffinity.service.metrics import Metrics
from itemaffinity.service.online import OnlineState
from itemaffinity.service.search import LexicalIndex, SemanticSearch, load_semantic
from itemaffinity.service.settings import Settings
from itemaffinity.service.snapshot import Snapshot, build_snapshot
from itemaffinity.service.writer import EventWriter

log = logging.getLogger(__name__)


class StoreUnavailable(RuntimeError):
    """The store file is missing or cannot be opened."""


@dataclass(frozen=True, eq=False)
class Serving:
    """What reads use: a snapshot, the events folded in since, the search index over it, and the products posted
    to the catalog since (`new_products`: folded id → catalog row; answered by `queries.cold_start_neighbours` until
    a snapshot holds them)."""

    snap: Snapshot
    online: OnlineState
    lexical: LexicalIndex
    api_rejects: Counter
    new_products: dict[str, dict[str, Any]] = field(default_factory=dict)


class CachedResponse(NamedTuple):
    """An encoded 200 response and what it depends on.

    Attributes:
        body: the JSON bytes.
        route: the route template (for metrics).
        version: the snapshot version it was computed on.
        item_idx, generation: the item whose online changes invalidate it (−1: none).
    """

    body: bytes
    route: str
    version: int
    item_idx: int = -1
    generation: int = 0


class ResponseCache:
    """Encoded GET responses by raw path and query string, bounded (oldest out first).

    The middleware answers a request from here, before routing and parameter parsing, when the
    entry's snapshot is still live and its item has not changed online since. Used from the event
    loop only.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, CachedResponse] = {}
        self.hits = 0
        self.misses = 0

    def lookup(self, key: bytes, serving: "Serving | None") -> CachedResponse | None:
        """The entry for `key` if it is still valid for `serving`."""
        entry = self._entries.get(key)
        if entry is not None and serving is not None and entry.version == serving.snap.version and (
                entry.item_idx < 0 or serving.online.item_generation(entry.item_idx) == entry.generation):
            self.hits += 1
            return entry
        self.misses += 1
        return None

    def put(self, key: bytes, entry: CachedResponse) -> None:
        if self.max_entries <= 0:
            return
        if key not in self._entries and len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


def touch_models(snap: Snapshot) -> None:
    """Run each model once, so the libraries models import on first use (LightGBM, scikit-learn,
    torch) are imported now, in one thread, not concurrently by requests and background loaders
    (concurrent first imports of the same package can fail half-initialised)."""
    if not snap.n_items:
        return
    item_id = snap.data.items.id(int(snap.popularity_order[0]))
    for name, model in snap.models.items():
        try:
            model.similar_items([item_id], n=1)
            model.recommend(basket=[item_id], n=1)
        except Exception as exc:  # noqa: BLE001 - a model that cannot do this fails the same way later
            log.info("model %s: first use failed: %s", name, exc)


class ServiceState:
    """Everything one app instance holds.

    Args:
        settings: the service settings.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.cache = ResponseCache(settings.cache_entries)
        self.jobs = JobRegistry()
        self.current: Serving | None = None
        self.semantic: SemanticSearch | None = None
        self.semantic_status = "off" if settings.semantic == "off" else "loading"
        self.con: duckdb.DuckDBPyConnection | None = None
        self.writer: EventWriter | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.warmed_version = 0
        self._thread_limits = None
        self._version = 0
        self._version_lock = threading.Lock()

    @property
    def store_path(self) -> Path:
        return self.settings.store_path

    def next_version(self) -> int:
        with self._version_lock:
            self._version += 1
            return self._version

    def _serving(self, snap: Snapshot) -> Serving:
        online = OnlineState(snap, k=self.settings.pairs_per_item, min_count=self.settings.pair_min_count)
        return Serving(snap, online, LexicalIndex.from_data(snap.data), Counter())

    # -- life cycle -------------------------------------------------------------------------------
    def open(self) -> None:
        """Open the store and build the first snapshot (blocking: run it off the event loop)."""
        path = self.store_path
        if not path.is_file():
            raise StoreUnavailable(f"store not found: {path} (run `itemaffinity analyze` or `ingest` first)")
        writable = self.settings.writable
        try:
            self.con = duckdb.connect(str(path), read_only=not writable)
        except duckdb.Error as exc:
            raise StoreUnavailable(f"cannot open store {path}: {str(exc).splitlines()[0]}") from None
        cur = self.con.cursor()
        try:
            snap = build_snapshot(cur, str(path), version=self.next_version(), model_names=self.settings.models,
                                  pair_min_count=self.settings.pair_min_count, progress=log.info)
        finally:
            cur.close()
        self.current = self._serving(snap)
        touch_models(snap)
        if self.settings.compute_threads is not None:
            from threadpoolctl import threadpool_limits

            # Process-wide and after the models are loaded (it limits the libraries loaded by then).
            self._thread_limits = threadpool_limits(limits=self.settings.compute_threads)
        if writable:
            self.writer = EventWriter(self.con, snap.mapping)
        else:
            # Replicas keep nothing open, so several processes can read the same file.
            self.con.close()
            self.con = None

    def start_warmup(self) -> None:
        """Precompute the plain answers of the live snapshot in the background (event loop only)."""
        from itemaffinity.service.warmup import warm

        if self.current is not None and self.loop is not None:
            self.loop.create_task(warm(self, self.current), name="warm-cache")

    def start_semantic(self) -> None:
        """Load the text search layer in a background thread (lexical search works meanwhile)."""
        if self.settings.semantic == "off" or self.current is None:
            return
        data = self.current.snap.data
        threading.Thread(target=self._load_semantic, args=(data,), name="semantic-search", daemon=True).start()

    def _load_semantic(self, data) -> None:
        cache_con = self.con.cursor() if self.con is not None else None
        try:
            found = load_semantic(data, self.settings.semantic, cache_con, self.settings.text_model)
        finally:
            if cache_con is not None:
                cache_con.close()
        self.semantic = found
        self.semantic_status = found.kind if found is not None else "unavailable"

    def swap(self, snap: Snapshot) -> None:
        """Make `snap` current, re-folding the events posted after its watermark (event loop only)."""
        old = self.current
        serving = self._serving(snap)
        if old is not None:
            serving.online.fold(old.online.replay_after(snap.watermark))
            # Products posted while the rebuild ran may be missing from its catalog.
            serving.new_products.update((k, v) for k, v in old.new_products.items() if snap.item_index(k) < 0)
        self.current = serving
        self.cache.clear()
        self.start_warmup()
        log.info("snapshot %d is live (%d events re-folded)", snap.version, serving.online.folded)
        if old is None or len(old.snap.data.items) != len(snap.data.items):
            self.start_semantic()

    def close(self) -> None:
        if self._thread_limits is not None:
            self._thread_limits.restore_original_limits()
            self._thread_limits = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.con is not None:
            self.con.close()
            self.con = None
