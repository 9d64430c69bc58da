"""Posted events: validated exactly like file ingest, then appended durably to the store.

The server is the store's one writing process (DuckDB allows one). Each POSTed batch is staged
with `data.validation.stage_events` — the same rules, in the same order, with the cleaning rules
of the store's newest ingest mapping (non-product codes, return prefix, event names, strict
catalog) — and written in one transaction as an `api` run: accepted rows to `events`, rejected
rows with their reason to `rejects`, and a `runs` row with the counts. Batches posted while a
write is in progress are written together in the next transaction (group commit): the fixed cost
of staging and committing is paid once for all of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Sequence

import duckdb
import pyarrow as pa

from itemaffinity.data.mapping import Mapping
from itemaffinity.data.readers import Source
from itemaffinity.data.schema import EVENT_ROLES
from itemaffinity.data.validation import REASONS, stage_events
from itemaffinity.service.online import PostedEvent

log = logging.getLogger(__name__)

API_SOURCE = "api"


@dataclass
class WriteResult:
    """What one posted batch did; `received == len(accepted) + len(rejected)`."""

    run_id: int | None
    received: int
    accepted: list[PostedEvent] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)

    def reject_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, reason in self.rejected:
            counts[reason] = counts.get(reason, 0) + 1
        order = {r: i for i, r in enumerate(REASONS)}
        return dict(sorted(counts.items(), key=lambda kv: order.get(kv[0], 99)))


def api_mapping(mapping: Mapping) -> Mapping:
    """The store's ingest mapping with its cleaning rules, over the canonical column names."""
    return mapping.model_copy(update={"name": "api", "columns": {}, "joins": [], "catalog": None,
                                      "timestamp_format": None, "delimiter": None, "encoding": None,
                                      "sheet": None})


def _ts_text(value: Any) -> Any:
    """Epoch seconds (or milliseconds) and ISO times with a UTC offset → naive UTC text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = value / 1000.0 if abs(value) > 1e11 else float(value)
        try:
            return dt.datetime.fromtimestamp(secs, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        except (OverflowError, OSError, ValueError):
            return str(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return value
        if parsed.tzinfo is not None:
            return parsed.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
    return value


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return repr(value)
    return str(value)


def posted_table(rows: Sequence[dict[str, Any]]) -> pa.Table:
    """The posted rows as an all-text Arrow table with `_row` (1-based), like a read file."""
    cols: dict[str, list] = {"_row": list(range(1, len(rows) + 1))}
    for role in EVENT_ROLES:
        conv = _ts_text if role == "ts" else (lambda v: v)
        cols[role] = [_text(conv(r.get(role))) for r in rows]
    return pa.table({"_row": pa.array(cols.pop("_row"), pa.int64()),
                     **{k: pa.array(v, pa.string()) for k, v in cols.items()}})


class EventWriter:
    """Validates and appends posted event batches (thread-safe; concurrent batches are grouped).

    Args:
        con: a read-write connection to the store; the writer uses a cursor of its own.
        mapping: the store's newest ingest mapping (its cleaning rules apply to posted rows).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, mapping: Mapping) -> None:
        self._con = con.cursor()
        self._lock = threading.Lock()
        self._pending: list[tuple[Sequence[dict[str, Any]], Future]] = []
        self._pending_lock = threading.Lock()
        self.mapping = api_mapping(mapping)
        self._mapping_json = self.mapping.model_dump_json()
        self._mapping_sha = hashlib.sha256(self._mapping_json.encode()).hexdigest()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def write(self, rows: Sequence[dict[str, Any]]) -> WriteResult:
        """Validate `rows` (dicts of the canonical event columns) and append the accepted ones.

        Blocks until the rows are committed (possibly together with other callers' rows, in one
        run); the result covers this call's rows only, numbered from 1.
        """
        if not rows:
            return WriteResult(None, 0)
        done: Future = Future()
        with self._pending_lock:
            self._pending.append((rows, done))
        with self._lock:
            with self._pending_lock:
                group, self._pending = self._pending, []
            if group:
                self._write_group(group)
        return done.result()

    def _write_group(self, group: list[tuple[Sequence[dict[str, Any]], Future]]) -> None:
        try:
            result = self._write([r for rows, _ in group for r in rows])
        except BaseException as exc:  # every waiting caller gets the error
            for _, done in group:
                done.set_exception(exc)
            return
        start = 0
        accepted = iter(result.accepted_rows)
        pending_acc = next(accepted, None)
        for rows, done in group:
            end = start + len(rows)
            mine = WriteResult(result.run_id, len(rows))
            while pending_acc is not None and pending_acc[0] <= end:
                mine.accepted.append(pending_acc[1])
                pending_acc = next(accepted, None)
            mine.rejected = [(r - start, why) for r, why in result.rejected if start < r <= end]
            done.set_result(mine)
            start = end

    def _write(self, rows: Sequence[dict[str, Any]]) -> "_GroupResult":
        con = self._con
        started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        con.register("_posted", posted_table(rows))
        try:
            con.execute("CREATE OR REPLACE TEMP TABLE api_src AS SELECT * FROM _posted")
        finally:
            con.unregister("_posted")
        source = Source(path=API_SOURCE, fmt="api", table="api_src", columns=list(EVENT_ROLES), rows=len(rows))
        known = "catalog" if self.mapping.strict_catalog else None
        stage_events(con, source, self.mapping, known_items_table=known)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute("""UPDATE staged SET reason = 'already_in_store' WHERE reason IS NULL
                           AND event_key IN (SELECT event_key FROM main.events)""")
            run_id = int(con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM main.runs").fetchone()[0])
            con.execute("""INSERT INTO main.events SELECT event_key, ?, source_row, user_id, item_id, event,
                           coalesce(ts, ?::TIMESTAMP), seq, basket_id, quantity, value, price
                           FROM staged WHERE reason IS NULL ORDER BY source_row""", [run_id, started])
            con.execute("""INSERT INTO main.rejects SELECT ?, ?, r.source_row, r.reason, NULL, to_json(s)::VARCHAR
                           FROM staged r JOIN api_src s ON s._row = r.source_row
                           WHERE r.reason IS NOT NULL ORDER BY r.source_row""", [run_id, API_SOURCE])
            accepted = [(int(r), PostedEvent(run_id, u, i, e, b)) for r, u, i, e, b in con.execute(
                """SELECT source_row, user_id, item_id, event, basket_id FROM staged
                   WHERE reason IS NULL ORDER BY source_row""").fetchall()]
            rejected = [(int(r), str(reason)) for r, reason in con.execute(
                "SELECT source_row, reason FROM staged WHERE reason IS NOT NULL ORDER BY source_row").fetchall()]
            counts = WriteResult(run_id, len(rows), rejected=rejected).reject_counts()
            finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            con.execute("INSERT INTO main.runs VALUES (?, 'api', ?, NULL, ?, ?, ?, ?, ?, ?, ?, 0)",
                        [run_id, API_SOURCE, self._mapping_sha, self._mapping_json, started, finished, len(rows),
                         len(accepted), json.dumps(counts)])
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("DROP TABLE IF EXISTS api_src; DROP TABLE IF EXISTS staged")
        log.info("api run %d: %d events, %d accepted", run_id, len(rows), len(accepted))
        return _GroupResult(run_id, accepted, rejected)


@dataclass
class _GroupResult:
    """One transaction's outcome over the concatenated rows of a group (1-based row numbers)."""

    run_id: int
    accepted_rows: list[tuple[int, PostedEvent]]
    rejected: list[tuple[int, str]]
