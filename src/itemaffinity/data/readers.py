"""Readers: any supported file → a DuckDB temp table in file order, without pandas.

CSV/TSV, Parquet and JSON lines are scanned by DuckDB itself (streaming, spilling to disk when
large); Excel is streamed row by row with openpyxl. Every table gets `_row`, the 1-based data row
number, so a reject can name the row it came from. Lines that cannot be parsed at all (wrong field
count, invalid JSON) are kept as `Malformed` records rather than dropped.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import itertools
import logging
import os
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pyarrow as pa

from itemaffinity.errors import InputError

log = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".xlsx": "xlsx", ".xlsm": "xlsx", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_CHUNK = 1 << 24


@dataclass
class Malformed:
    """A source line that could not be parsed into fields."""

    row: int
    reason: str
    detail: str
    raw: str


@dataclass
class Source:
    """A file read into the temp table `table` (columns `_row` + the file's own columns)."""

    path: str
    fmt: str
    table: str
    columns: list[str]
    rows: int
    malformed: list[Malformed] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    """Columns read out of an object column for the mapping ("customer.id"): not the row's own content."""
    notes: list[str] = field(default_factory=list)
    """How a value was read where the file leaves it open (dates that fit both day/month orders)."""

    @property
    def rows_read(self) -> int:
        return self.rows + len(self.malformed)


def detect_format(path: str) -> str:
    ext = "".join(Path(path).suffixes[-1:]).lower()
    if ext == ".gz":
        ext = Path(path[:-3]).suffix.lower()
    if ext not in FORMATS:
        raise InputError(f"unsupported file type {ext or '(none)'!r}; use CSV/TSV, Parquet, "
                         f"Excel .xlsx or JSON lines", file=path)
    return FORMATS[ext]


def _check_readable(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", file=path)
    if not p.is_file():
        raise InputError("not a regular file", file=path)
    if not os.access(p, os.R_OK):
        raise InputError("file is not readable (permission denied)", file=path)
    if p.stat().st_size == 0:
        raise InputError("file is empty", file=path)


def _open_bytes(path: str):
    """The file's bytes, decompressed on the fly for `.gz` (DuckDB scans those directly too)."""
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


_BOMS = [(codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16")]


def _first_invalid_utf8(path: str) -> int | None:
    """Byte offset of the first invalid UTF-8 sequence, or None when the file is valid."""
    dec = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with _open_bytes(path) as fh:
        while chunk := fh.read(_CHUNK):
            try:
                dec.decode(chunk, final=False)
            except UnicodeDecodeError as exc:
                return offset + exc.start
            offset += len(chunk)
        try:
            dec.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None


def detect_encoding(path: str, given: str | None) -> str:
    """The file's text encoding: the given one (checked), a BOM, valid UTF-8, or a guess."""
    if given:
        try:
            name = codecs.lookup(given).name
        except LookupError:
            raise InputError(f"unknown encoding {given!r}", file=path) from None
        if name == "utf-8":
            bad = _first_invalid_utf8(path)
            if bad is not None:
                raise InputError(f"wrong encoding: not valid UTF-8 at byte {bad}; "
                                 f"give the file's encoding with --encoding", file=path)
        return name
    with _open_bytes(path) as fh:
        head = fh.read(1 << 20)
    for bom, name in _BOMS:
        if head.startswith(bom):
            return name
    if b"\x00" in head[:4096]:
        raise InputError("wrong encoding: the file looks binary (NUL bytes), not text", file=path)
    bad = _first_invalid_utf8(path)
    if bad is None:
        return "utf-8"
    from charset_normalizer import from_bytes

    # The bytes that are not UTF-8 decide, wherever they are: a file of plain ASCII for its first megabyte and a
    # "Café" further down was guessed ASCII from its head, and then refused.
    sample = head
    if bad >= len(head) - 4:
        with _open_bytes(path) as fh:
            fh.seek(max(0, bad - (1 << 16)))
            window = fh.read(1 << 17)
        sample = head[:1 << 18] + window[window.find(b"\n") + 1:]  # from a line's start: no character cut
    matches = from_bytes(sample)
    best = matches.best()
    if best is None:
        raise InputError("wrong encoding: cannot detect the text encoding; give --encoding", file=path)
    # Short Western text often scores the same in several single-byte code pages, and the
    # detector's first pick (e.g. cp1250) then garbles è/à/û. Windows-1252, the usual encoding of
    # non-UTF-8 shop exports, wins whenever it explains the bytes as well as the best guess.
    if any("cp1252" in m.could_be_from_charset and m.chaos <= best.chaos for m in matches):
        log.info("%s: detected encoding cp1252 (best guess %s)", path, best.encoding)
        return "cp1252"
    log.info("%s: detected encoding %s", path, best.encoding)
    return best.encoding


def _transcode_to_utf8(path: str, encoding: str, workdir: str) -> str:
    """Stream-decode `path` into a UTF-8 temp file; a decode error is a fatal wrong-encoding error."""
    out = os.path.join(workdir, Path(path).name + ".utf8")
    dec = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with _open_bytes(path) as src, open(out, "w", encoding="utf-8", newline="") as dst:
        try:
            while chunk := src.read(_CHUNK):
                dst.write(dec.decode(chunk, final=False))
                offset += len(chunk)
            dst.write(dec.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            raise InputError(f"wrong encoding: not valid {encoding} near byte {offset + exc.start}",
                             file=path) from None
    return out


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _read_csv(con: duckdb.DuckDBPyConnection, path: str, table: str, delimiter: str | None,
              encoding: str | None, workdir: str, header_row: int = 1) -> list[Malformed]:
    enc = detect_encoding(path, encoding)
    scan_path = path if enc in ("utf-8", "utf-8-sig") else _transcode_to_utf8(path, enc, workdir)
    # The dialect is sniffed from every line (sample_size=-1), not the first 20,480: a file whose first quoted field
    # ("Mug, blue") comes later was read without quotes, each such valid line a malformed one (+0.2 s on 47 MB).
    opts = ["all_varchar=true", f"header={'true' if header_row else 'false'}", "store_rejects=true",
            "null_padding=false", "parallel=false", f"skip={max(header_row - 1, 0)}", "sample_size=-1"]
    if delimiter:
        opts.append(f"delim={_sql_str(delimiter)}")
    elif path.lower().removesuffix(".gz").endswith(".tsv"):
        opts.append("delim='\t'")
    # Strict mode is tried first: the lenient parser can leave doubled quotes ("") unescaped,
    # cutting a field short, and silently drops fields beyond the header instead of rejecting
    # the line. Files strict mode cannot sniff (e.g. mixed line endings) are read leniently.
    for strict in ("true", "false"):
        con.execute("DROP TABLE IF EXISTS reject_errors; DROP TABLE IF EXISTS reject_scans")
        try:
            con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM read_csv({_sql_str(scan_path)}, "
                        f"{', '.join(opts)}, strict_mode={strict})")
            break
        except duckdb.Error as exc:
            if strict == "false":
                raise InputError(f"cannot read CSV: {str(exc).splitlines()[0]}", file=path) from None
            log.debug("%s: strict CSV parsing failed, reading leniently: %s", path, exc)
    if not header_row:  # no header line: DuckDB's column0, column1, … become column1, column2, … as a sheet counts
        names = [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description]
        for name in reversed(names):
            con.execute(f'ALTER TABLE {table} RENAME COLUMN "{name}" TO "column{int(name[6:]) + 1}"')
    # DuckDB logs one error per problem (e.g. one per missing column): one malformed row per line.
    bad = con.execute("SELECT line, any_value(error_type::VARCHAR), any_value(error_message), "
                      "any_value(csv_line) FROM reject_errors GROUP BY line ORDER BY line").fetchall()
    return [Malformed(int(line) - header_row, "malformed_line", f"{etype}: {msg}", raw or "")  # a data row's number
            for line, etype, msg, raw in bad]


def _read_parquet(con: duckdb.DuckDBPyConnection, path: str, table: str) -> list[Malformed]:
    try:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM read_parquet({_sql_str(path)})")
    except duckdb.Error as exc:
        raise InputError(f"unreadable Parquet file: {str(exc).splitlines()[0]}", file=path) from None
    return []


def _read_jsonl(con: duckdb.DuckDBPyConnection, path: str, table: str, encoding: str | None,
                workdir: str) -> list[Malformed]:
    """JSON lines: each line is parsed on its own, so one bad line is a reject, not a failure."""
    enc = detect_encoding(path, encoding)
    scan_path = path if enc in ("utf-8", "utf-8-sig") else _transcode_to_utf8(path, enc, workdir)
    try:
        con.execute(f"""CREATE TEMP TABLE {table}_lines AS
            SELECT row_number() OVER () AS n, line FROM read_csv({_sql_str(scan_path)},
              columns={{'line': 'VARCHAR'}}, header=false, delim='\x01', quote='', escape='',
              parallel=false, strict_mode=false)
            WHERE line IS NOT NULL AND trim(line) <> ''""")
    except duckdb.Error as exc:
        raise InputError(f"cannot read JSON lines: {str(exc).splitlines()[0]}", file=path) from None
    bad = con.execute(f"""SELECT n, line FROM {table}_lines
        WHERE NOT coalesce(json_valid(line), false) OR json_type(line) <> 'OBJECT' ORDER BY n""").fetchall()
    keys = [k for (k,) in con.execute(f"""SELECT k FROM (SELECT unnest(json_keys(line)) AS k, n
        FROM {table}_lines WHERE json_valid(line) AND json_type(line) = 'OBJECT')
        GROUP BY k ORDER BY min(n)""").fetchall()]
    if not keys:
        raise InputError("no JSON objects found", file=path)
    cols = ", ".join(f"json_extract_string(line, {_sql_str('$.' + _json_key(k))}) AS \"{k}\"" for k in keys)
    con.execute(f"""CREATE TEMP TABLE {table} AS SELECT {cols} FROM {table}_lines
        WHERE json_valid(line) AND json_type(line) = 'OBJECT' ORDER BY n""")
    con.execute(f"DROP TABLE {table}_lines")
    return [Malformed(int(n), "malformed_line", "not a JSON object", line) for n, line in bad]


def _json_key(key: str) -> str:
    return '"' + key.replace('"', '\\"') + '"'


def _cell_text(v: object) -> str | None:
    if v is None:
        return None
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ")
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _read_xlsx(con: duckdb.DuckDBPyConnection, path: str, table: str, sheet: str | None,
               header_row: int = 1) -> list[Malformed]:
    """Excel: streamed with openpyxl's read-only mode, cells as text (dates ISO-formatted)."""
    import zipfile

    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise InputError(f"unreadable Excel file: {exc}", file=path) from None
    try:
        if sheet and sheet not in wb.sheetnames:
            raise InputError(f"no sheet {sheet!r}; sheets: {', '.join(wb.sheetnames)}", file=path)
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(min_row=max(header_row, 1), values_only=True)
        header = next(rows, None)
        if header is None or all(h is None for h in header):
            raise InputError("Excel sheet has no header row", file=path)
        if not header_row:  # no header row: the first row is data, its columns column1, column2, …
            rows = itertools.chain([header], rows)
            header = [None] * len(header)
        names = [str(h).strip() if h is not None else f"column{i + 1}" for i, h in enumerate(header)]
        batches, cols = [], [[] for _ in names]
        for r in rows:
            if r is None or all(v is None for v in r):
                continue
            for i in range(len(names)):
                cols[i].append(_cell_text(r[i]) if i < len(r) else None)
            if len(cols[0]) >= 100_000:
                batches.append(pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, cols)}))
                cols = [[] for _ in names]
        batches.append(pa.table({n: pa.array(c, pa.string()) for n, c in zip(names, cols)}))
    finally:
        wb.close()
    arrow = pa.concat_tables(batches)
    con.execute("SELECT 1").fetchall()  # DuckDB 2 registers nothing beside a result a fetchone() left open
    con.register(f"{table}_arrow", arrow)
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM {table}_arrow")
    con.unregister(f"{table}_arrow")
    return []


def _number_rows(con: duckdb.DuckDBPyConnection, raw: str, table: str, malformed: list[Malformed]) -> None:
    """Create `table` = `raw` with `_row` first: the k-th parsed row gets the k-th data row number
    that no malformed line holds, so rows keep their place in the file after a skipped line."""
    if not malformed:
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT rowid + 1 AS _row, * FROM {raw}")
        return
    # Before the j-th malformed row m_j lie m_j - j parsed rows; parsed row k follows every
    # malformed row with m_j - j < k, so its number is k + (the largest such j).
    gaps: dict[int, int] = {}
    for j, m in enumerate(sorted({m.row for m in malformed}), start=1):
        gaps[m - j] = j
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_gaps (g BIGINT, j BIGINT)")
    con.executemany(f"INSERT INTO {table}_gaps VALUES (?, ?)", list(gaps.items()))
    con.execute(f"""CREATE TEMP TABLE {table} AS
        SELECT r._k + coalesce(g.j, 0) AS _row, r.* EXCLUDE (_k)
        FROM (SELECT rowid + 1 AS _k, * FROM {raw}) r ASOF LEFT JOIN {table}_gaps g ON r._k > g.g
        ORDER BY r._k""")
    con.execute(f"DROP TABLE {table}_gaps")


INTERNAL_COLUMNS = ("_row", "_line")
"""Columns ingest adds to a read table: the row's number and, for an exploded list, the line it came from."""


def own_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """The columns of a read table that came from its file (and its joins): what a row's content, its event key,
    is made of."""
    return [d[0] for d in con.execute(f"SELECT * FROM {table} LIMIT 0").description if d[0] not in INTERNAL_COLUMNS]


def read_source(con: duckdb.DuckDBPyConnection, path: str, table: str, *, fmt: str | None = None,
                delimiter: str | None = None, encoding: str | None = None,
                sheet: str | None = None, header_row: int = 1, workdir: str | None = None) -> Source:
    """Read `path` into temp table `table` with a 1-based `_row` column (the data rows below the header, which
    is `header_row` in a CSV or Excel file); fatal problems raise InputError."""
    _check_readable(path)
    fmt = fmt or detect_format(path)
    own_tmp = None if workdir else tempfile.TemporaryDirectory(prefix="itemaffinity-")
    tmp = workdir or own_tmp.name
    try:
        if fmt == "csv":
            malformed = _read_csv(con, path, f"{table}_raw", delimiter, encoding, tmp, header_row)
        elif fmt == "parquet":
            malformed = _read_parquet(con, path, f"{table}_raw")
        elif fmt == "jsonl":
            malformed = _read_jsonl(con, path, f"{table}_raw", encoding, tmp)
        else:
            malformed = _read_xlsx(con, path, f"{table}_raw", sheet, header_row)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise InputError(f"cannot decompress: {exc}", file=path) from None
    finally:
        if own_tmp is not None:  # the tables are materialised: transcoded copies can go
            own_tmp.cleanup()
    _number_rows(con, f"{table}_raw", table, malformed)
    con.execute(f"DROP TABLE {table}_raw")
    columns = own_columns(con, table)
    rows = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    if rows == 0 and not malformed:
        raise InputError("file has no data rows", file=path)
    return Source(path, fmt, table, columns, rows, malformed)
