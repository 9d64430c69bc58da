"""Posted events: validated exactly like file ingest, then appended durably to the store.

The server is the store's one writing process (DuckDB allows one). Each POSTed batch is staged
with `data.validation.stage_events` — the same rules, in the same order, with the cleaning rules
of the store's newest ingest mapping (non-product codes, return prefix, event names, strict
catalog) — and written in one transaction as an `api` run: accepted rows to `events`, rejected
rows with their reason to `rejects`, and a `runs` row with the counts. Batches posted while a
write is in progress are written together in the next transaction (group commit): the fixed cost
of staging and committing is paid once for all of them.

Posted products (POST /v1/catalog) go the same way through `data.validation.stage_catalog_table`, the
rules of a catalog file, as a `catalog` run that upserts the `catalog` table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import duckdb
import pyarrow as pa

from itemaffinity.data.ingest import insert_rejects, upsert_catalog
from itemaffinity.data.mapping import Mapping
from itemaffinity.data.readers import Source
from itemaffinity.data.schema import CATALOG_ROLES, EVENT_ROLES
from itemaffinity.data.validation import REASONS, stage_catalog_table, stage_events
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
        return reason_counts(self.rejected)


@dataclass
class CatalogWriteResult:
    """What one posted batch of products did; `received == len(stored) + len(rejected)`."""

    run_id: int
    received: int
    stored: list[str]
    """The stored products' item ids, as the store folds them."""
    rejected: list[tuple[int, str]]

    def reject_counts(self) -> dict[str, int]:
        return reason_counts(self.rejected)


def reason_counts(rejected: Sequence[tuple[int, str]]) -> dict[str, int]:
    """Rejected rows counted by reason, in the order of REASONS."""
    counts: dict[str, int] = {}
    for _, reason in rejected:
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


NUMBER_ROLES = ("quantity", "value", "price")
"""Roles whose posted JSON numbers stay numbers: no decimal comma or point to guess, as in a file's number column."""


def posted_table(rows: Sequence[dict[str, Any]], roles: Sequence[str] = EVENT_ROLES) -> pa.Table:
    """The posted rows as an Arrow table with `_row` (1-based), like a read file: text, but a number role whose
    values are all JSON numbers (or missing) is a number column."""
    cols: dict[str, pa.Array] = {"_row": pa.array(range(1, len(rows) + 1), pa.int64())}
    for role in roles:
        values = [r.get(role) for r in rows]
        if role in NUMBER_ROLES and all(v is None or isinstance(v, (int, float)) for v in values):
            cols[role] = pa.array(values, pa.float64())
        else:
            conv = _ts_text if role == "ts" else (lambda v: v)
            cols[role] = pa.array([_text(conv(v)) for v in values], pa.string())
    return pa.table(cols)


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

    def write_catalog(self, rows: Sequence[dict[str, Any]]) -> CatalogWriteResult:
        """Validate posted products like a catalog file and upsert the good ones, in one `catalog` run."""
        with self._lock:
            return self._write_catalog(rows)

    def catalog_records(self, item_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored catalog rows of these items (id → item_id and the catalog's columns)."""
        cols = ("item_id", *CATALOG_ROLES)
        with self._lock:
            found = self._con.execute(f"SELECT {', '.join(cols)} FROM main.catalog WHERE item_id IN "
                                      "(SELECT unnest(?::VARCHAR[]))", [list(item_ids)]).fetchall()
        return {row[0]: dict(zip(cols, row)) for row in found}

    def _write_catalog(self, rows: Sequence[dict[str, Any]]) -> CatalogWriteResult:
        con = self._con
        roles = ("item_id", *CATALOG_ROLES)
        _load_posted(con, posted_table(rows, roles), "api_catalog")
        stage_catalog_table(con, "api_catalog", list(roles), {}, self.mapping)
        with self._run(("api_catalog", "staged_catalog")) as run:
            upsert_catalog(con, "main", f"""SELECT {", ".join(roles)}, {run.run_id} AS run_id FROM staged_catalog
                                           WHERE reason IS NULL""")
            insert_rejects(con, "main", "staged_catalog", "api_catalog", run.run_id, API_SOURCE, "catalog")
            stored = [i for (i,) in con.execute(
                "SELECT item_id FROM staged_catalog WHERE reason IS NULL ORDER BY source_row").fetchall()]
            rejected = [(int(r), str(why)) for r, why in con.execute(
                "SELECT source_row, reason FROM staged_catalog WHERE reason IS NOT NULL ORDER BY source_row").fetchall()]
            self._record(run, "catalog", 0, 0, reason_counts(rejected), catalog_rows=len(stored))
        log.info("api catalog run %d: %d products, %d stored", run.run_id, len(rows), len(stored))
        return CatalogWriteResult(run.run_id, len(rows), stored, rejected)

    @contextmanager
    def _run(self, temp_tables: Sequence[str]) -> Iterator["_Run"]:
        """One transaction of a posted batch with its new run id: committed when the block ends, rolled back on
        an error; the batch's temp tables are dropped either way."""
        con = self._con
        started = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        con.execute("BEGIN TRANSACTION")
        try:
            run_id = int(con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM main.runs").fetchone()[0])
            yield _Run(run_id, started)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute("; ".join(f"DROP TABLE IF EXISTS {t}" for t in temp_tables))

    def _record(self, run: _Run, kind: str, rows_read: int, accepted: int, rejected: dict[str, int],
                catalog_rows: int = 0) -> None:
        """The batch's row in `runs`: what it read, kept and rejected by reason."""
        finished = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        self._con.execute("INSERT INTO main.runs VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
                          [run.run_id, kind, API_SOURCE, self._mapping_sha, self._mapping_json, run.started, finished,
                           rows_read, accepted, json.dumps(rejected), catalog_rows])

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
        _load_posted(con, posted_table(rows), "api_src")
        source = Source(path=API_SOURCE, fmt="api", table="api_src", columns=list(EVENT_ROLES), rows=len(rows))
        known = "catalog" if self.mapping.strict_catalog else None
        stage_events(con, source, self.mapping, known_items_table=known)
        with self._run(("api_src", "staged")) as run:
            con.execute("""UPDATE staged SET reason = 'already_in_store' WHERE reason IS NULL
                           AND event_key IN (SELECT event_key FROM main.events)""")
            con.execute("""INSERT INTO main.events SELECT event_key, ?, source_row, user_id, item_id, event,
                           coalesce(ts, ?::TIMESTAMP), seq, basket_id, quantity, value, price
                           FROM staged WHERE reason IS NULL ORDER BY source_row""", [run.run_id, run.started])
            insert_rejects(con, "main", "staged", "api_src", run.run_id, API_SOURCE)
            accepted = [(int(r), PostedEvent(run.run_id, u, i, e, b)) for r, u, i, e, b in con.execute(
                """SELECT source_row, user_id, item_id, event, basket_id FROM staged
                   WHERE reason IS NULL ORDER BY source_row""").fetchall()]
            rejected = [(int(r), str(reason)) for r, reason in con.execute(
                "SELECT source_row, reason FROM staged WHERE reason IS NOT NULL ORDER BY source_row").fetchall()]
            self._record(run, "api", len(rows), len(accepted), reason_counts(rejected))
        log.info("api run %d: %d events, %d accepted", run.run_id, len(rows), len(accepted))
        return _GroupResult(run.run_id, accepted, rejected)


def _load_posted(con: duckdb.DuckDBPyConnection, table: pa.Table, name: str) -> None:
    """The posted rows as temp table `name`, as a read file would be."""
    con.register("_posted", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _posted")
    finally:
        con.unregister("_posted")


@dataclass
class _Run:
    """The run a posted batch is written as, inside its transaction."""

    run_id: int
    started: dt.datetime


@dataclass
class _GroupResult:
    """One transaction's outcome over the concatenated rows of a group (1-based row numbers)."""

    run_id: int
    accepted_rows: list[tuple[int, PostedEvent]]
    rejected: list[tuple[int, str]]
