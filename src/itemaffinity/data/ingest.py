"""Ingest: files → validated canonical rows → one atomic write into the store.

Everything up to the write happens in an in-memory DuckDB, so a fatal input error leaves the
store untouched (for several files, every file is validated before the first is written). The write is one transaction per file; re-ingesting an identical file with the
same mapping is a no-op, and rows already stored by another file are rejected as
`already_in_store`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import duckdb

from itemaffinity.data.mapping import Mapping
from itemaffinity.data.readers import Source, _check_readable, own_columns, read_source
from itemaffinity.data.validation import (REASONS, apply_joins, explode_list, object_fields, reject_summary,
                                          resolve_columns, stage_catalog, stage_events, utc_session)
from itemaffinity.errors import InputError
from itemaffinity.store.duckdb_store import StoreVersionError, ensure_schema

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class IngestResult:
    """What one file's ingest did; `rows_read == accepted + sum(rejected.values())`."""

    source: str
    rows_read: int
    accepted: int
    rejected: dict[str, int]
    catalog_rows: int = 0
    run_id: int | None = None
    skipped: str | None = None
    seconds: float = 0.0
    catalog_rejected: dict[str, int] = field(default_factory=dict)
    case_twins: list[list[str]] = field(default_factory=list)
    """Groups of the store's item ids that differ only in letter case (kept apart: item_id_case keep)."""
    filled_from_order: dict[str, int] = field(default_factory=dict)
    """Accepted lines without a customer (user_id) or time (ts) that took them from their order's other lines."""
    notes: list[str] = field(default_factory=list)
    """How the file was read where it leaves a choice open (`readers.Source.notes`)."""
    kind: str = "ingest"
    """ingest: an events file (with its catalog); catalog: a catalog alone (no event rows)."""

    def to_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _crash_point(name: str) -> None:
    """Test hook: `ITEMAFFINITY_CRASH_AT=name` SIGKILLs this process here (crash-safety tests)."""
    if os.environ.get("ITEMAFFINITY_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _derive_catalog(con: duckdb.DuckDBPyConnection, roles: dict[str, str]) -> bool:
    """Catalog from product columns carried on event rows (e.g. Online Retail's Description).

    `roles` are the resolved role → column pairs, so same-named columns (`title`) count too.
    """
    if not any(r in roles for r in ("title", "description", "category", "brand", "price")):
        return False
    # The most frequent value per item; ties go to the one on the latest row. (DuckDB's mode()
    # breaks ties arbitrarily, so the same file could give different titles from run to run.)
    fields = ("title", "description", "category", "brand")
    most_common = {f: f"""{f}_top AS (SELECT item_id, {f} FROM (
            SELECT item_id, {f}, count(*) AS n, max(source_row) AS last_row FROM base
            WHERE {f} IS NOT NULL GROUP BY ALL)
            QUALIFY row_number() OVER (PARTITION BY item_id ORDER BY n DESC, last_row DESC) = 1)"""
                   for f in fields}
    con.execute(f"""CREATE OR REPLACE TEMP TABLE derived_catalog AS
        WITH base AS (SELECT * FROM staged WHERE reason IS NULL AND event <> 'return'),
        items AS (SELECT item_id, median(price) FILTER (WHERE price > 0) AS price FROM base GROUP BY item_id),
        {', '.join(most_common.values())}
        SELECT item_id, {', '.join(f'{f}_top.{f}' for f in fields)}, items.price FROM items
        {' '.join(f'LEFT JOIN {f}_top USING (item_id)' for f in fields)}""")
    return True


def upsert_catalog(con: duckdb.DuckDBPyConnection, db: str, select: str) -> None:
    """Insert `select`'s products into `db`.catalog; for a stored id a value given replaces the stored one and
    a missing one (NULL) keeps it, so a price list does not erase titles."""
    con.execute(f"""INSERT INTO {db}.catalog BY NAME ({select})
        ON CONFLICT (item_id) DO UPDATE SET
          title = coalesce(excluded.title, title), description = coalesce(excluded.description, description),
          category = coalesce(excluded.category, category), brand = coalesce(excluded.brand, brand),
          price = coalesce(excluded.price, price), run_id = excluded.run_id""")


def insert_rejects(con: duckdb.DuckDBPyConnection, db: str, staged: str, src: str, run_id: int, source: str,
                   detail: str | None = None) -> None:
    """Keep `staged`'s rejected rows in `db`.rejects with their reason and their row of `src` as read (JSON);
    `detail` 'catalog' marks a catalog's rows."""
    con.execute(f"""INSERT INTO {db}.rejects SELECT ?, ?, r.source_row, r.reason, ?, to_json(s)::VARCHAR
                    FROM {staged} r JOIN {src} s ON s._row = r.source_row
                    WHERE r.reason IS NOT NULL ORDER BY r.source_row""", [run_id, source, detail])


@dataclass
class _Prepared:
    """One file read and validated in its own in-memory DuckDB (`con`), not yet written."""

    path: str
    con: duckdb.DuckDBPyConnection
    source: Source | None
    """The events file; None for a catalog alone (`path` is then the catalog's)."""
    mapping: Mapping
    catalog_file: str | None
    catalog_source: Source | None
    derived: bool
    sha: str
    seconds: float


@contextmanager
def _staging() -> Iterator[tuple[duckdb.DuckDBPyConnection, str]]:
    """An in-memory DuckDB whose spill files and transcoded copies live in a temp dir removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="itemaffinity-") as workdir:
        con = duckdb.connect(config={"temp_directory": workdir})
        utc_session(con)  # the runs' start and end too, as the service's writer records them
        try:
            yield con, workdir
        finally:
            con.close()


def _stage_catalog_file(con: duckdb.DuckDBPyConnection, path: str, mapping: Mapping, workdir: str,
                        say: Progress) -> Source:
    """Read and validate a catalog file into `staged_catalog` (with events, or alone)."""
    say(f"reading catalog {path}")
    source, _ = stage_catalog(con, path, mapping, Path(path).parent, workdir, delimiter=mapping.delimiter,
                              encoding=mapping.encoding)
    return source


@contextmanager
def _prepare(path: str, mapping: Mapping, catalog_path: str | None, say: Progress) -> Iterator[_Prepared]:
    """Read, join and validate one file; fatal input problems raise InputError here, before any write."""
    t0 = time.perf_counter()
    with _staging() as (con, workdir):
        say(f"reading {path}")
        source = read_source(con, path, "src", delimiter=mapping.delimiter, encoding=mapping.encoding,
                             sheet=mapping.sheet, header_row=mapping.header_row, workdir=workdir)
        base_dir = Path(path).parent
        if mapping.explode:
            lines = explode_list(con, source, mapping.explode)
            say(f"{lines:,} rows exploded into {source.rows:,} rows of their {mapping.explode}")
        if mapping.joins:
            apply_joins(con, "src", list(mapping.joins), base_dir, workdir)
            source.columns = own_columns(con, "src")
        object_fields(con, source, mapping)
        catalog_file = catalog_path
        if catalog_file is None and mapping.catalog and mapping.catalog.file:
            catalog_file = str(base_dir / mapping.catalog.file)
        catalog_source = None
        if catalog_file:
            catalog_source = _stage_catalog_file(con, catalog_file, mapping, workdir, say)
            con.execute("CREATE OR REPLACE TEMP VIEW known_items AS "
                        "SELECT item_id FROM staged_catalog WHERE reason IS NULL")
        say("validating")
        stage_events(con, source, mapping, known_items_table="known_items" if catalog_file else None)
        derived = _derive_catalog(con, resolve_columns(mapping, source))
        yield _Prepared(path, con, source, mapping, catalog_file, catalog_source, derived,
                        file_sha256(path), time.perf_counter() - t0)


def _catalog_rejects(con: duckdb.DuckDBPyConnection, prep: _Prepared, run_id: int) -> dict[str, int]:
    """Store the catalog's rejected rows, its malformed lines too, and count them by reason."""
    insert_rejects(con, "store", "staged_catalog", "catsrc", run_id, prep.catalog_file, "catalog")
    malformed = prep.catalog_source.malformed
    counts = reject_summary(con, "staged_catalog")
    if not malformed:
        return counts
    con.executemany("INSERT INTO store.rejects VALUES (?, ?, ?, ?, ?, ?)",
                    [(run_id, prep.catalog_file, m.row, m.reason, f"catalog: {m.detail}", m.raw) for m in malformed])
    return {"malformed_line": len(malformed), **counts}


def _write_events(con: duckdb.DuckDBPyConnection, source: Source, path: str, run_id: int) -> None:
    """Append the staged events and the rejected rows, each with its reason, inside the open transaction."""
    con.execute("""UPDATE staged SET reason = 'already_in_store' WHERE reason IS NULL
                   AND event_key IN (SELECT event_key FROM store.events)""")
    con.execute(f"""INSERT INTO store.events SELECT event_key, {run_id}, source_row, user_id, item_id,
        event, ts, seq, basket_id, quantity, value, price FROM staged WHERE reason IS NULL ORDER BY source_row""")
    _crash_point("mid_ingest")
    insert_rejects(con, "store", "staged", "src", run_id, path)
    if source.malformed:
        con.executemany("INSERT INTO store.rejects VALUES (?, ?, ?, ?, ?, ?)",
                        [(run_id, path, m.row, m.reason, m.detail, m.raw) for m in source.malformed])


def _write(prep: _Prepared, store_path: str | Path, say: Progress) -> IngestResult:
    """Write one prepared file into the store in one transaction (or skip it if already there)."""
    t0 = time.perf_counter()
    con, path, source = prep.con, prep.path, prep.source
    mapping_json = prep.mapping.model_dump_json()
    mapping_sha = hashlib.sha256(mapping_json.encode()).hexdigest()
    elapsed = lambda: prep.seconds + time.perf_counter() - t0  # noqa: E731
    say("writing store")
    try:
        con.execute(f"ATTACH '{str(store_path).replace(chr(39), chr(39) * 2)}' AS store")
        con.execute("BEGIN TRANSACTION")
        ensure_schema(con, "store")
        kind = "catalog" if source is None else "ingest"
        prev = con.execute("SELECT run_id, rows_read, accepted, rejected, catalog_rows FROM store.runs "
                           "WHERE file_sha256 = ? AND mapping_sha256 = ? AND kind = ? ORDER BY run_id LIMIT 1",
                           [prep.sha, mapping_sha, kind]).fetchone()
        if prev:
            con.execute("ROLLBACK")
            skipped = f"identical file already ingested in run {prev[0]}"
            if kind == "catalog":  # a catalog run keeps its catalog's reject counts
                return IngestResult(path, 0, 0, {}, prev[4], prev[0], skipped=skipped, seconds=elapsed(),
                                    catalog_rejected=json.loads(prev[3]), kind=kind)
            return IngestResult(path, prev[1], prev[2], json.loads(prev[3]), prev[4], prev[0],
                                skipped=skipped, seconds=elapsed())
        run_id = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM store.runs").fetchone()[0]
        if source is not None:
            _write_events(con, source, path, run_id)
        catalog_rows = 0
        catalog_rejected: dict[str, int] = {}
        cols = "item_id, title, description, category, brand, price"
        if prep.derived:
            upsert_catalog(con, "store", f"SELECT {cols}, {run_id} AS run_id FROM derived_catalog")
            catalog_rows = con.execute("SELECT count(*) FROM derived_catalog").fetchone()[0]
        if prep.catalog_source is not None:
            upsert_catalog(con, "store", f"SELECT {cols}, {run_id} AS run_id FROM staged_catalog WHERE reason IS NULL")
            catalog_rows += con.execute("SELECT count(*) FROM staged_catalog WHERE reason IS NULL").fetchone()[0]
            catalog_rejected = _catalog_rejects(con, prep, run_id)
        rows_read, accepted, rejected, filled = 0, 0, {}, {}
        if source is not None:
            rejected = reject_summary(con)
            if source.malformed:
                rejected = {"malformed_line": len(source.malformed), **rejected}
            rejected = dict(sorted(rejected.items(), key=lambda kv: REASONS.index(kv[0])))
            rows_read = source.rows_read
            accepted, users, times = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE _user_filled), count(*) FILTER (WHERE _ts_filled) "
                "FROM staged WHERE reason IS NULL").fetchone()
            filled = {k: n for k, n in (("user_id", users), ("ts", times)) if n}
        con.execute("INSERT INTO store.runs VALUES (?, ?, ?, ?, ?, ?, now() - INTERVAL (?) SECOND, now(), ?, ?, ?, ?)",
                    [run_id, kind, path, prep.sha, mapping_sha, mapping_json, int(elapsed()),
                     rows_read, accepted, json.dumps(catalog_rejected if kind == "catalog" else rejected),
                     catalog_rows])
        twins = []  # a catalog alone adds no event ids: no scan of the events for case twins
        if source is not None and prep.mapping.item_id_case == "keep":
            twins = [sorted(g) for (g,) in con.execute(
                "SELECT list(DISTINCT item_id) FROM store.events GROUP BY lower(item_id) "
                "HAVING count(DISTINCT item_id) > 1 ORDER BY min(item_id)").fetchall()]
        _crash_point("before_commit")
        con.execute("COMMIT")
        result = IngestResult(path, rows_read, accepted, rejected, catalog_rows, run_id,
                              seconds=elapsed(), catalog_rejected=catalog_rejected, case_twins=twins, kind=kind,
                              filled_from_order=filled, notes=list(source.notes) if source is not None else [])
        log.info("ingested %s: %d rows, %d accepted, %d catalog rows in %.2fs", path, result.rows_read, accepted,
                 catalog_rows, result.seconds)
        return result
    except StoreVersionError as exc:
        raise InputError(f"cannot use store: {exc}", file=str(store_path)) from None
    except duckdb.Error as exc:
        msg = str(exc).splitlines()[0]
        if "lock" in msg.lower() or "Could not set lock" in msg:
            raise InputError(f"store is in use by another process: {msg}", file=str(store_path)) from None
        if "IO Error" in msg or "not a valid DuckDB database" in msg.lower() or "Serialization" in msg:
            raise InputError(f"cannot open store: {msg}", file=str(store_path)) from None
        raise
    finally:
        # Let go of the store file before the next file of the same command attaches it.
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        try:
            con.execute("DETACH store")
        except duckdb.Error:
            pass


def ingest_file(path: str, mapping: Mapping, store_path: str | Path, catalog_path: str | None = None,
                progress: Progress | None = None) -> IngestResult:
    """Ingest one events file (and optionally its catalog) into the store at `store_path`.

    Raises:
        InputError: a fatal input problem; nothing was written.
    """
    say = progress or (lambda _msg: None)
    with _prepare(path, mapping, catalog_path, say) as prep:
        return _write(prep, store_path, say)


def ingest_catalog(catalog_path: str, mapping: Mapping, store_path: str | Path,
                   progress: Progress | None = None) -> IngestResult:
    """Ingest a catalog file alone: products before their first sale, or new titles and prices for known ones.

    New products get their answers from their text (the content models, the hybrid's fallback chain) once the
    models are fitted again. One atomic run of kind `catalog`: stored rows are upserted, bad rows go to `rejects`
    with their reason; `catalog_rows + sum(catalog_rejected)` is the catalog's rows read.

    Raises:
        InputError: a fatal input problem; nothing was written.
    """
    say = progress or (lambda _msg: None)
    _check_readable(catalog_path)
    t0 = time.perf_counter()
    with _staging() as (con, workdir):
        catalog_source = _stage_catalog_file(con, catalog_path, mapping, workdir, say)
        prep = _Prepared(catalog_path, con, None, mapping, catalog_path, catalog_source, False,
                         file_sha256(catalog_path), time.perf_counter() - t0)
        return _write(prep, store_path, say)


def ingest_files(paths: list[str], mapping: Mapping, store_path: str | Path,
                 catalog_path: str | None = None, progress: Progress | None = None) -> list[IngestResult]:
    """Ingest several files in order, each its own atomic run (`catalog_path` goes with the first).

    Every file is read and validated before the first is written, so a fatal input error in any
    of them leaves the store untouched (all staged files are held in memory/temp space at once).

    Raises:
        InputError: a fatal input problem in any file; nothing was written.
    """
    say = progress or (lambda _msg: None)
    for p in paths:
        _check_readable(p)
    with ExitStack() as stack:
        prepared = [stack.enter_context(_prepare(p, mapping, catalog_path if i == 0 else None, say))
                    for i, p in enumerate(paths)]
        return [_write(prep, store_path, say) for prep in prepared]
