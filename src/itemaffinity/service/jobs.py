"""Background jobs: the rebuild (mining, clustering and model fitting on the store), with progress.

A rebuild reads the store's events in one transaction (so it knows exactly which posted batches
it includes: its watermark), re-runs the analysis pipeline's mining and fitting steps, writes the
tables and model artifacts, builds a new snapshot and hands it to the event loop, which swaps it
in and re-folds the events posted after the watermark. The leaderboard is not recomputed (run
`itemaffinity evaluate` for that).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.models.base import Recommender
    from itemaffinity.service.state import ServiceState

log = logging.getLogger(__name__)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class Job:
    """One background job; mutated by its thread, read by requests (under `lock`)."""

    id: str
    kind: str
    status: str = "queued"
    progress: float = 0.0
    steps: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None
    result: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def step(self, message: str, progress: float | None = None) -> None:
        with self.lock:
            if self.status == "queued":
                self.status, self.started_at = "running", _now()
            self.steps.append({"at": _now(), "message": message})
            if progress is not None:
                self.progress = progress
        log.info("job %s: %s", self.id, message)

    def finish(self, result: dict[str, Any]) -> None:
        with self.lock:
            self.status, self.progress, self.result, self.finished_at = "succeeded", 1.0, result, _now()

    def fail(self, error: str) -> None:
        with self.lock:
            self.status, self.error, self.finished_at = "failed", error, _now()

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running")

    def to_dict(self) -> dict[str, Any]:
        with self.lock:
            return {"id": self.id, "kind": self.kind, "status": self.status, "progress": round(self.progress, 3),
                    "steps": list(self.steps), "created_at": self.created_at, "started_at": self.started_at,
                    "finished_at": self.finished_at, "error": self.error, "result": self.result}


class JobRegistry:
    """Jobs by id (kept for the life of the process); at most one active job per kind."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def create(self, kind: str) -> Job | None:
        """A new queued job, or None when a job of this kind is still active."""
        with self._lock:
            if any(j.kind == kind and j.active for j in self._jobs.values()):
                return None
            job = Job(id=uuid.uuid4().hex[:12], kind=kind)
            self._jobs[job.id] = job
            return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def active(self, kind: str) -> Job | None:
        return next((j for j in self._jobs.values() if j.kind == kind and j.active), None)


def refit(old: "Recommender | None", name: str, data: "InteractionData", relearn: bool = False,
          say: "Callable[[str], None]" = lambda _m: None, store: str | None = None) -> "Recommender":
    """`name` fitted on `data`, with the loaded model's configuration when there is one (else the defaults, with
    `store`'s embedding cache). A loaded model that can refresh keeps what it learnt and refits the rest, seconds
    instead of minutes, unless `relearn`: the hybrid its rankers (benchmarks/bench_refresh.py measures the cost),
    content-finetuned its fine-tuned encoder. `say` hears which of the two it does."""
    from itemaffinity.models.registry import create_store_model

    if not relearn and hasattr(old, "refresh"):
        say(f"refreshing model {name}")
        return old.refresh(data)
    say(f"fitting model {name}")
    if old is not None:
        return type(old)(config=old.config).fit(data)
    return create_store_model(name, store).fit(data)


def rebuild(state: "ServiceState", job: Job, models: list[str] | None, cluster: bool,
            loop: asyncio.AbstractEventLoop, relearn: bool = False) -> None:
    """Re-mine, re-cluster and refit on the store's current events, then swap the new snapshot in.

    Runs in a background thread; records progress and the outcome on `job`.
    """
    from itemaffinity.analysis import DEFAULT_MODELS, mine_tables
    from itemaffinity.models.cluster import customer_segments, product_groups, store_clusters
    from itemaffinity.service.snapshot import build_snapshot, read_data
    from itemaffinity.store.artifacts import save_model

    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    store = str(state.store_path)
    cur = state.con.cursor()
    # Fitting wants every core; requests meanwhile share them (the limit is process-wide).
    limits = threadpool_limits(limits=os.cpu_count() or 1)
    try:
        job.step("reading events", 0.02)
        data, watermark = read_data(cur)
        job.step(f"mining pairs, itemsets and rules over {data.n_baskets:,} baskets" if data.n_baskets else
                 f"mining pairs, itemsets and rules over {data.n_users:,} customers (no orders)", 0.1)
        mine_tables(store, data)
        if cluster:
            job.step("clustering products and segmenting customers", 0.3)
            groups = product_groups(data)
            store_clusters(store, data, groups, customer_segments(cur, data, groups))
        loaded = state.current.snap.models if state.current is not None else {}
        names = models if models is not None else (list(loaded) or list(DEFAULT_MODELS))
        fitted = {}
        for k, name in enumerate(names):
            progress = 0.5 + 0.4 * k / max(len(names), 1)
            fitted[name] = refit(loaded.get(name), name, data, relearn, lambda m: job.step(m, progress), store)
            save_model(store, fitted[name], name)
        kept = {n: m for n, m in loaded.items() if n not in fitted}
        job.step("building the new snapshot", 0.92)
        snap = build_snapshot(cur, store, version=state.next_version(), data=data, watermark=watermark,
                              models={**kept, **fitted}, pair_min_count=state.settings.pair_min_count)

        async def swap() -> None:
            state.swap(snap)

        asyncio.run_coroutine_threadsafe(swap(), loop).result()
        job.finish({"snapshot_version": snap.version, "items": data.n_items, "baskets": data.n_baskets,
                    "users": data.n_users, "watermark": watermark, "models_fitted": list(fitted),
                    "seconds": round(time.perf_counter() - t0, 1)})
    except Exception as exc:  # noqa: BLE001 - a failed job reports its error; the old snapshot stays live
        log.exception("rebuild %s failed", job.id)
        job.fail(f"{type(exc).__name__}: {exc}")
    finally:
        limits.restore_original_limits()
        cur.close()
