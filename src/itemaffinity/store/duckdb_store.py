"""The DuckDB store: one file holding events, catalog, rejects and runs (DESIGN §2, §4).

Writes happen in one transaction per ingested file, so a crash mid-ingest leaves the previous
content intact (DuckDB's WAL only replays committed transactions).
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import duckdb

if TYPE_CHECKING:
    from itemaffinity.data.mapping import Mapping

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_STORE = "itemaffinity.duckdb"

SCHEMA = """
CREATE TABLE IF NOT EXISTS {db}.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS {db}.runs (
    run_id INTEGER PRIMARY KEY, kind VARCHAR, source VARCHAR, file_sha256 VARCHAR,
    mapping_sha256 VARCHAR, mapping VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP,
    rows_read BIGINT, accepted BIGINT, rejected VARCHAR, catalog_rows BIGINT);
CREATE TABLE IF NOT EXISTS {db}.events (
    event_key UHUGEINT, run_id INTEGER, source_row BIGINT, user_id VARCHAR, item_id VARCHAR,
    event VARCHAR, ts TIMESTAMP, seq DOUBLE, basket_id VARCHAR, quantity DOUBLE, value DOUBLE,
    price DOUBLE);
CREATE TABLE IF NOT EXISTS {db}.catalog (
    item_id VARCHAR PRIMARY KEY, title VARCHAR, description VARCHAR, category VARCHAR,
    brand VARCHAR, price DOUBLE, run_id INTEGER);
CREATE TABLE IF NOT EXISTS {db}.rejects (
    run_id INTEGER, source VARCHAR, source_row BIGINT, reason VARCHAR, detail VARCHAR, raw VARCHAR);
"""


class StoreVersionError(RuntimeError):
    """The store file was written by an incompatible version of itemaffinity."""


def ensure_schema(con: duckdb.DuckDBPyConnection, db: str = "main") -> None:
    """Create the tables if missing and check the schema version."""
    con.execute(SCHEMA.format(db=db))
    row = con.execute(f"SELECT value FROM {db}.meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        con.execute(f"INSERT INTO {db}.meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
    elif int(row[0]) != SCHEMA_VERSION:
        raise StoreVersionError(f"store schema version {row[0]}, this itemaffinity reads {SCHEMA_VERSION}")


@contextmanager
def open_store(path: str | Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the store file (created with its schema unless read-only)."""
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


def table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the store holds table `name` (tables an analysis or a mining writes may not be there yet)."""
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary",
                            [name]).fetchall()[0][0])  # fetchall: a result left unfinished blocks the connection


def store_summary(con: duckdb.DuckDBPyConnection) -> dict:
    """Counts for reports and `--json` output."""
    one = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
    rejects = dict(con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1 ORDER BY 2 DESC").fetchall())
    return {
        "events": one("SELECT count(*) FROM events"),
        "items": one("SELECT count(DISTINCT item_id) FROM events"),
        "users": one("SELECT count(DISTINCT user_id) FROM events"),
        "baskets": one("SELECT count(DISTINCT basket_id) FROM events WHERE event = 'purchase'"),
        "catalog_items": one("SELECT count(*) FROM catalog"),
        "rejects": {k: int(v) for k, v in rejects.items()},
        "runs": one("SELECT count(*) FROM runs"),
        "events_by_type": dict(con.execute("SELECT event, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC").fetchall()),
        "time_range": [str(x) if x is not None else None
                       for x in con.execute("SELECT min(ts), max(ts) FROM events").fetchone()],
    }


def runs_table(con: duckdb.DuckDBPyConnection) -> list[dict]:
    cur = con.execute("SELECT * FROM runs ORDER BY run_id")
    names = [d[0] for d in cur.description]
    out = []
    for r in cur.fetchall():
        d = dict(zip(names, r))
        d["rejected"] = json.loads(d["rejected"] or "{}")
        out.append(d)
    return out


def ingest_mapping(con: duckdb.DuckDBPyConnection) -> "Mapping":
    """The newest ingest's mapping: its cleaning rules (and id folding) for posted events and looked-up
    ids; the default rules when the store has none or it cannot be read."""
    from itemaffinity.data.mapping import Mapping

    row = con.execute("SELECT mapping FROM runs WHERE kind = 'ingest' AND mapping IS NOT NULL "
                      "ORDER BY run_id DESC LIMIT 1").fetchone()
    if not row:
        return Mapping(name="api")
    try:
        return Mapping.model_validate(json.loads(row[0]))
    except ValueError:
        log.warning("the newest ingest mapping could not be read; the default rules apply")
        return Mapping(name="api")
