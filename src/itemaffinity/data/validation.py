"""Validation: map a read source to canonical columns and give every row a verdict.

Each row ends either accepted (reason NULL) or rejected with exactly one reason, the first that
applies in `REASONS` order. Nothing is dropped: rejected rows go to the store's `rejects` table.
All work is SQL inside DuckDB, so it runs at scan speed on large files.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import duckdb

from itemaffinity.data.mapping import Join, Mapping
from itemaffinity.data.readers import Source, _json_key, _sql_str, detect_format, own_columns, read_source
from itemaffinity.data.schema import ALL_ROLES, EVENT_SYNONYMS
from itemaffinity.errors import InputError

log = logging.getLogger(__name__)

REASONS = (
    "malformed_line", "repeated_header", "missing_item_id", "nested_item_id", "missing_basket_and_user",
    "bad_timestamp", "bad_quantity", "bad_price", "bad_value", "unknown_event", "non_product_code",
    "unknown_item", "non_positive_price", "non_positive_quantity", "duplicate_line",
    "already_in_store",
)
"""Every reject reason, in the order they are checked."""

COMPACT_FORMATS = ("%Y%m%d%H%M%S", "%Y%m%d")
"""Dates as digits (20240102, 20240102103000), as ERP and many Chinese shop exports write them, text or numbers."""
TS_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d",
              "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y %H:%M:%S",
              "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d",
              "%Y年%m月%d日 %H:%M:%S", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日", *COMPACT_FORMATS)
EXCEL_DAYS = (25569, 73051)
"""Excel's serial dates (days since 1899-12-30) from 1970 to 2100: a date column exported as General (45293 is
2 January 2024), not epoch seconds on 1 January 1970."""
EXCEL_SERIAL_TEXT = r"\d{5}(\.\d+)?"
EPOCH_TEXT = r"\d{9,13}(\.\d+)?"
"""Epoch seconds (or milliseconds, 13 digits) written as text, as a CSV holds them."""

NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "DOUBLE")


def q(name: str) -> str:
    """Quote an identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


def column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {table}").fetchall()}


def apply_joins(con: duckdb.DuckDBPyConnection, table: str, joins: list[Join], base_dir: Path,
                workdir: str) -> None:
    """Left-join sibling files onto `table` in place (one row per key on the joined side)."""
    for i, join in enumerate(joins):
        path = str(base_dir / join.file)
        jt = f"{table}_join{i}"
        src = read_source(con, path, jt, workdir=workdir)
        wanted = join.columns or [c for c in src.columns if c != join.on]
        missing = [c for c in [join.on, *wanted] if c not in src.columns]
        if missing:
            raise InputError(f"joined file has no column {missing[0]!r}", file=path, column=missing[0])
        own = column_types(con, table)
        if join.on not in own:
            raise InputError(f"join key {join.on!r} not found", column=join.on)
        picks = ", ".join(f"any_value({q(c)}) AS {q(c)}" for c in wanted if c not in own)
        if not picks:
            continue
        con.execute(f"""CREATE TEMP TABLE {table}_j AS SELECT t.*, {', '.join('j.' + q(c) for c in wanted if c not in own)}
            FROM {table} t LEFT JOIN (SELECT CAST({q(join.on)} AS VARCHAR) AS _k, {picks} FROM {jt} GROUP BY 1) j
            ON CAST(t.{q(join.on)} AS VARCHAR) = j._k ORDER BY t._row""")
        con.execute(f"DROP TABLE {table}; DROP TABLE {jt}; ALTER TABLE {table}_j RENAME TO {table}")


def explode_list(con: duckdb.DuckDBPyConnection, source: Source, key: str) -> int:
    """One row per element of the list in column `key` (an order's line items in one JSON field), in place of the
    row: an element's fields become columns `key.field` (a plain value: column `key`), beside the row's other
    columns. `_row` numbers the line items in file order and `_line` keeps the row each came from. A row whose
    `key` holds no list, or an empty one, stays one row without element fields (so validation rejects it with its
    reason, never drops it); a single value or object is one element. Returns the number of rows before."""
    if key not in source.columns:
        raise InputError(f"no column {key!r} to explode; columns are: {', '.join(source.columns)}", file=source.path)
    t, col = source.table, q(key)
    ctype = column_types(con, t)[key]
    text = f"{col}" if ctype == "VARCHAR" else f"to_json({col})::VARCHAR"
    # a list: its elements; an empty list or nothing: one row without an element; one value or object: itself
    elements = f"""CASE WHEN _x IS NULL OR trim(_x) = '' THEN [NULL::JSON]
        WHEN NOT json_valid(_x) THEN [to_json(_x)]
        WHEN json_type(_x) <> 'ARRAY' THEN [_x::JSON]
        WHEN json_array_length(_x) = 0 THEN [NULL::JSON]
        ELSE json_extract(_x, '$[*]') END"""
    con.execute(f"""CREATE TEMP TABLE {t}_items AS
        SELECT * EXCLUDE (_x, _l), unnest(_l) AS _e, generate_subscripts(_l, 1) AS _i FROM (
            SELECT * EXCLUDE ({col}), {elements} AS _l FROM (SELECT *, {text} AS _x FROM {t}))""")
    fields = [k for (k,) in con.execute(f"""SELECT k FROM (SELECT unnest(json_keys(_e)) AS k, _row, _i
        FROM {t}_items WHERE json_type(_e) = 'OBJECT') GROUP BY k ORDER BY min(_row), min(_i)""").fetchall()]
    plain = con.execute(f"SELECT count(*) FROM {t}_items WHERE json_type(_e) NOT IN ('OBJECT', 'ARRAY', 'NULL')"
                        ).fetchone()[0]
    exprs = [f"json_extract_string(_e, {_sql_str('$.' + _json_key(k))}) AS {q(f'{key}.{k}')}"
             for k in fields]
    if plain:
        exprs.append(f"CASE WHEN json_type(_e) NOT IN ('OBJECT', 'ARRAY') THEN json_extract_string(_e, '$') END "
                     f"AS {col}")
    # Rows are renumbered in file order, a malformed line keeping its place among them: the k-th row is the k-th
    # line item or malformed line of the file, so that every reject has a number of its own.
    bad = sorted(m.row for m in source.malformed)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {t}_bad AS SELECT unnest(?::BIGINT[]) AS line", [bad])
    before = source.rows
    con.execute(f"""CREATE OR REPLACE TEMP TABLE {t} AS
        SELECT row_number() OVER (ORDER BY _row, _i) + (SELECT count(*) FROM {t}_bad b WHERE b.line < i._row) AS _row,
               _row AS _line, * EXCLUDE (_row, _e, _i) {''.join(', ' + e for e in exprs)}
        FROM {t}_items i ORDER BY i._row, _i""")
    moved = con.execute(f"""SELECT b.line, b.line - (SELECT count(DISTINCT _line) FROM {t} WHERE _line < b.line)
        + (SELECT count(*) FROM {t} WHERE _line < b.line) FROM {t}_bad b""").fetchall()
    renumber = dict(moved)
    source.malformed = [replace(m, row=renumber[m.row], detail=f"line {m.row}: {m.detail}") for m in source.malformed]
    con.execute(f"DROP TABLE {t}_items; DROP TABLE {t}_bad")
    source.columns = own_columns(con, t)
    source.rows = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
    return before


def object_fields(con: duckdb.DuckDBPyConnection, source: Source, mapping: Mapping) -> None:
    """Columns for the mapped names that reach into an object column, as JSON exports nest them
    (`--col user_id=customer.id`: the field `id` of each row's `customer`), kept in `source.fields` and out of the
    rows' own columns (their event keys). A field that no row's object holds is an input error, not a column of
    nulls."""
    t = source.table
    nested = [c for c in dict.fromkeys(mapping.columns.values())
              if "." in c and c not in source.columns and c not in source.fields]
    types = column_types(con, t) if nested else {}
    found: dict[str, tuple[str, str]] = {}  # mapped name → (object column, field path within it)
    for column in nested:
        parts = column.split(".")
        base = next((".".join(parts[:k]) for k in range(len(parts) - 1, 0, -1) if ".".join(parts[:k]) in source.columns),
                    None)
        if base is not None:
            found[column] = (base, column[len(base) + 1:])
    if not found:
        return
    exprs = []
    for column, (base, rest) in found.items():
        path = _sql_str("$." + ".".join(_json_key(p) for p in rest.split(".")))
        value = f"to_json({q(base)})" if types[base] != "VARCHAR" else \
            f"CASE WHEN json_valid({q(base)}) THEN {q(base)}::JSON END"  # a JSON text in a CSV cell
        exprs.append(f"json_extract_string({value}, {path}) AS {q(column)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {t} AS SELECT *, {', '.join(exprs)} FROM {t} ORDER BY _row")
    counts = con.execute("SELECT " + ", ".join(f"count({q(c)})" for c in found) + f" FROM {t}").fetchone()
    for (column, (base, rest)), n in zip(found.items(), counts):
        if not n:
            raise InputError(f"no row's {base!r} holds a field {rest!r} (mapped as {column!r})", file=source.path,
                             column=column)
    source.fields.extend(found)


def _below_a_title(option: str, has_rows: bool) -> str:
    """The hint of a missing-column error for a CSV or Excel file (`has_rows`), whose names may sit below a title."""
    return f" (if the column names are on a later row, below a title, give {option} N)" if has_rows else ""


def resolve_columns(mapping: Mapping, source: Source, roles: tuple[str, ...] = ALL_ROLES) -> dict[str, str]:
    """role → source column: the mapping's columns (checked to exist; `object_fields` reads nested ones) plus
    same-named columns."""
    cols = dict(mapping.columns)
    for role, column in cols.items():
        if column not in source.columns and column not in source.fields:
            below = _below_a_title("--header-row", source.fmt in ("csv", "xlsx"))
            raise InputError(f"required column {column!r} (mapped to {role}) not found; the file's "
                             f"columns are: {', '.join(source.columns)}{below}", file=source.path, column=column)
    for role in roles:
        if role not in cols and role in source.columns:
            cols[role] = role
    if "item_id" not in cols:
        raise InputError("no item_id column: map one with --col item_id=COLUMN, --map FILE or --preset",
                         file=source.path)
    if "basket_id" not in cols and "user_id" not in cols:
        raise InputError("no basket_id or user_id column: map one with --col basket_id=COLUMN or "
                         "--col user_id=COLUMN", file=source.path)
    return cols


def _id_expr(col: str) -> str:
    return f"NULLIF(trim(CAST({q(col)} AS VARCHAR)), '')"


CURRENCY = r"^(?:[¥￥$€£]|RMB|CNY|USD|EUR|GBP)\s*|\s*(?:[¥￥$€£元]|RMB|CNY|USD|EUR|GBP)$"
"""A currency sign or code before or after a number ("¥1,299", "199元", "12.50 USD"): shop exports write prices so."""


COMMA_DECIMAL = r"^[-+]?(?:\d{1,3}(?:[. ]\d{3})+|\d+),\d{1,2}$"
"""A number written with a decimal comma ("12,50", "1.299,00", "1 299,5"), as European shop exports do."""
CLEAR_POINT_DECIMAL = r"^[-+]?(?:\d{1,3}(?:,\d{3})+\.\d+|\d+\.(?:\d{1,2}|\d{4,}))$"
"""A decimal point that no thousands separator could be ("12.5", "1,299.00"); "1.299" could be either."""


def _num_expr(con: duckdb.DuckDBPyConnection, table: str, col: str, ctype: str) -> str:
    """A number from a numeric column, or from text without currency signs and thousands separators.

    A value written unmistakably with a decimal comma ("12,50", "1.299,00") or point ("12.5", "1,299.00") is read
    so; an ambiguous one ("1.299", "1,299") as most of the column's unmistakable values are written: else "12,50"
    would be read as 1250, a price 100 times too high (a spreadsheet column of number cells with one text cell "2,5",
    too). Every row counts, not a sample: a German export whose first rows cost whole euros reads its "1.299" as 1299.
    """
    if ctype.split("(")[0] in NUMERIC_TYPES or ctype.startswith("DECIMAL"):
        return f"CAST({q(col)} AS DOUBLE)"
    text = f"regexp_replace(trim(CAST({q(col)} AS VARCHAR)), '{CURRENCY}', '', 'gi')"
    comma, point = _sample_counts(con, table, col, text, [_matches(COMMA_DECIMAL), _matches(CLEAR_POINT_DECIMAL)],
                                  limit=None)
    comma_read = f"TRY_CAST(replace(regexp_replace({text}, '[. ]', '', 'g'), ',', '.') AS DOUBLE)"
    point_read = f"TRY_CAST(replace({text}, ',', '') AS DOUBLE)"
    return f"""(CASE WHEN regexp_full_match({text}, {_sql_str(COMMA_DECIMAL)}) THEN {comma_read}
        WHEN regexp_full_match({text}, {_sql_str(CLEAR_POINT_DECIMAL)}) THEN {point_read}
        ELSE {comma_read if comma > point else point_read} END)"""


def _sample_counts(con: duckdb.DuckDBPyConnection, table: str, col: str, text: str, tests: list[str],
                   limit: int | None = 2000) -> tuple:
    """For each SQL test over `v` (non-null when it holds), how many of a sample of the column's present values
    (`limit` of them; None: all), read through the expression `text`, pass it: how a column is written, judged
    before parsing all of it."""
    sample = f"(SELECT {text} AS v FROM {table} WHERE {_present(col)}{'' if limit is None else f' LIMIT {limit}'})"
    return con.execute("SELECT " + ", ".join(f"count({t})" for t in tests) + f" FROM {sample}").fetchone()


def _matches(pattern: str) -> str:
    """SQL test of `_sample_counts`: v is wholly matched by the regular expression."""
    return f"nullif(regexp_full_match(v, {_sql_str(pattern)}), false)"


def _present(col: str) -> str:
    return f"({q(col)} IS NOT NULL AND trim(CAST({q(col)} AS VARCHAR)) <> '')"


def timestamp_expr(con: duckdb.DuckDBPyConnection, table: str, col: str, ctype: str,
                   fmt: str | None, file: str | None = None, notes: list[str] | None = None) -> str:
    """A SQL expression parsing `col` into TIMESTAMP (NULL where it cannot be parsed).

    Native timestamps and dates are cast; numbers are epoch seconds (milliseconds when > 1e11);
    text uses the given strptime format or, of TS_FORMATS and epoch numbers, what parses most of a sample;
    dd/mm or mm/dd is judged on every row (`_slash_date_order`), and `notes` says when no row tells.
    """
    base = ctype.split("(")[0]
    if base.startswith("TIMESTAMP") or base == "DATE":
        return f"CAST({q(col)} AS TIMESTAMP)"
    if base in NUMERIC_TYPES:
        # 20240102 or 45293 (Excel's serial day) as a number is a date, not epoch seconds in 1970: what most read as
        number = f"CAST({q(col)} AS DOUBLE)"
        *compact, serial, present = _sample_counts(con, table, col, number, [
            *(f"try_strptime({_digits('v')}, {_sql_str(f)})" for f in COMPACT_FORMATS),
            f"nullif({_in_excel_days('v')}, false)", "v"])
        best = max(range(len(compact)), key=lambda i: compact[i])
        if compact[best] * 2 > present:
            return f"try_strptime({_digits(number)}, {_sql_str(COMPACT_FORMATS[best])})"
        return _excel_serial(number) if serial * 2 > present else _epoch(number)
    text = f"trim(CAST({q(col)} AS VARCHAR))"
    if fmt:
        try:
            con.execute(f"SELECT try_strptime('', {_sql_str(fmt)})")
        except duckdb.Error as exc:
            raise InputError(f"invalid timestamp format {fmt!r}: {str(exc).splitlines()[0]}",
                             file=file, column=col) from None
        return f"try_strptime({text}, {_sql_str(fmt)})"
    counts = _sample_counts(con, table, col, text, ["TRY_CAST(v AS TIMESTAMP)"]
                            + [f"try_strptime(v, {_sql_str(f)})" for f in TS_FORMATS]
                            + [_matches(EXCEL_SERIAL_TEXT), _matches(EPOCH_TEXT)])
    best = max(range(len(counts)), key=lambda i: counts[i])
    if best >= len(counts) - 2 and counts[best]:
        pattern, read = (EPOCH_TEXT, _epoch) if best == len(counts) - 1 else (EXCEL_SERIAL_TEXT, _excel_serial)
        return f"CASE WHEN regexp_full_match({text}, {_sql_str(pattern)}) THEN {read(f'TRY_CAST({text} AS DOUBLE)')} END"
    if counts[best] == 0 or best == 0:
        return _iso_timestamp(text)
    # The column's format first, then the same date order with another time part (a time left out at midnight,
    # seconds on some rows): never the other date order, which would read 03.01 as March where most rows say January.
    chosen = TS_FORMATS[best - 1]
    if chosen.startswith(("%m/%d/", "%d/%m/")):
        chosen = _slash_date_order(con, table, col, text, chosen, notes)
    formats = [chosen, *(f for f in TS_FORMATS if f.split(" ")[0] == chosen.split(" ")[0] and f != chosen)]
    return "coalesce(" + ", ".join(f"try_strptime({text}, {_sql_str(f)})" for f in formats) + ")"


def _slash_date_order(con: duckdb.DuckDBPyConnection, table: str, col: str, text: str, chosen: str,
                      notes: list[str] | None) -> str:
    """`chosen` (a n/n/yyyy format) in the date order the whole column shows: a first number over 12 is a day
    (31/01/2024), a second one a day of a month-first date (01/31/2024). The sample alone misreads an export sorted
    by date whose first thousands of rows fall on the 1st to 12th of a month. Where every date fits both orders
    the sample's choice stands, month first, and a note says how to read them the other way."""
    parts = _sql_str(r"^\s*(\d{1,2})/(\d{1,2})/")
    day_first, month_first = con.execute(f"""SELECT count(*) FILTER (WHERE a > 12), count(*) FILTER (WHERE b > 12)
        FROM (SELECT TRY_CAST(regexp_extract(v, {parts}, 1) AS INT) AS a, TRY_CAST(regexp_extract(v, {parts}, 2) AS INT)
              AS b FROM (SELECT {text} AS v FROM {table} WHERE {_present(col)}))""").fetchone()
    order = "%d/%m/" if day_first > month_first else "%m/%d/" if month_first > day_first else chosen[:6]
    if not chosen.startswith(order):
        chosen = order + chosen[6:]
    if notes is not None and not (day_first or month_first):
        other = ("%d/%m/" if order == "%m/%d/" else "%m/%d/") + chosen[6:]
        notes.append(f"every date in column {col!r} fits both day and month orders: read as "
                     f"{'month/day' if order == '%m/%d/' else 'day/month'} (01/03/2024 = "
                     f"{'3 January' if order == '%m/%d/' else '1 March'}); give --timestamp-format '{other}' if "
                     f"they are the other way")
    return chosen


def _iso_timestamp(x: str) -> str:
    """SQL of ISO text as a timestamp: with a UTC offset ('+01:00', Shopify's ' +0100', 'Z'), the UTC time (a
    plain TIMESTAMP cast drops the offset); without one, the time as written."""
    offset = _sql_str(r"\s+([+-]\d\d:?\d\d)$")
    return (f"coalesce(TRY_CAST(regexp_replace({x}, {offset}, '\\1') AS TIMESTAMPTZ)::TIMESTAMP, "
            f"TRY_CAST({x} AS TIMESTAMP))")


def utc_session(con: duckdb.DuckDBPyConnection) -> None:
    """Read times in UTC whatever the machine's time zone: epoch numbers and time-zone-aware columns become UTC
    times, so that one file gives the same stored times on every machine (without ICU they are UTC already)."""
    try:
        con.execute("SET TimeZone = 'UTC'")
    except duckdb.Error:
        pass


def _digits(x: str) -> str:
    """SQL of a whole number `x` as its digits (20240102.0 → '20240102'), NULL for a fraction."""
    return f"CASE WHEN {x} = floor({x}) THEN CAST(CAST({x} AS BIGINT) AS VARCHAR) END"


def _in_excel_days(x: str) -> str:
    return f"({x} >= {EXCEL_DAYS[0]} AND {x} < {EXCEL_DAYS[1]})"


def _excel_serial(x: str) -> str:
    """SQL of the timestamp of Excel serial days `x` (since 1899-12-30), NULL outside EXCEL_DAYS."""
    return (f"CASE WHEN {_in_excel_days(x)} THEN CAST(TIMESTAMP '1899-12-30' + "
            f"to_microseconds(CAST(round({x} * 86400000000) AS BIGINT)) AS TIMESTAMP) END")


def _epoch(x: str) -> str:
    """SQL of the timestamp of epoch seconds `x` (milliseconds when over 1e11)."""
    return f"CASE WHEN abs({x}) > 1e11 THEN to_timestamp({x} / 1000) ELSE to_timestamp({x}) END::TIMESTAMP"


def _event_map_table(con: duckdb.DuckDBPyConnection, mapping: Mapping) -> None:
    pairs = {**EVENT_SYNONYMS, **{k.strip().lower(): v for k, v in mapping.event_values.items()}}
    con.execute("CREATE OR REPLACE TEMP TABLE _event_map(src VARCHAR, event VARCHAR)")
    con.executemany("INSERT INTO _event_map VALUES (?, ?)", list(pairs.items()))


def item_id_expr(expr: str, mapping: Mapping) -> str:
    """SQL of `Mapping.fold_item_id`: the item id as the mapping's `item_id_case` asks."""
    return {"keep": expr, "upper": f"upper({expr})", "lower": f"lower({expr})"}[mapping.item_id_case]


def stage_events(con: duckdb.DuckDBPyConnection, source: Source, mapping: Mapping,
                 known_items_table: str | None = None) -> str:
    """Create temp table `staged` with canonical columns, `event_key` and `reason` for each row.

    Args:
        con: connection holding `source.table`.
        source: the read events file.
        mapping: the resolved mapping.
        known_items_table: a table with column item_id; with `strict_catalog`, other items are
            rejected as unknown_item.

    Returns:
        The staged table's name.
    """
    t = source.table
    utc_session(con)
    cols = resolve_columns(mapping, source)
    types = column_types(con, t)
    src_cols = source.columns
    sel = {
        "item_id": item_id_expr(_id_expr(cols["item_id"]), mapping),
        "user_id": _id_expr(cols["user_id"]) if "user_id" in cols else "NULL::VARCHAR",
        "basket_id": _id_expr(cols["basket_id"]) if "basket_id" in cols else "NULL::VARCHAR",
    }
    # Exports joined end to end (cat jan.csv feb.csv) repeat the header: such a line is not an order of product "sku".
    sel["_header_again"] = " AND ".join(f"coalesce(CAST({q(c)} AS VARCHAR) = {_sql_str(c)}, false)"
                                        for c in dict.fromkeys(cols.values()))
    checks: list[tuple[str, str]] = [
        ("repeated_header", "_header_again"),
        ("missing_item_id", "item_id IS NULL"),
        # a list or object (an order's products in one JSON field) would become one odd product named like it
        ("nested_item_id",
         "left(item_id, 1) IN ('[', '{') AND json_type(TRY_CAST(item_id AS JSON)) IN ('ARRAY', 'OBJECT')"),
        ("missing_basket_and_user", "basket_id IS NULL AND user_id IS NULL"),
    ]
    if "ts" in cols:
        c = cols["ts"]
        sel["ts"] = timestamp_expr(con, t, c, types[c], mapping.timestamp_format, source.path, source.notes)
        sel["_ts_given"] = _present(c)
        checks.append(("bad_timestamp", "_ts_given AND ts IS NULL"))
    else:
        sel["ts"] = "NULL::TIMESTAMP"
    for role, reason in (("quantity", "bad_quantity"), ("price", "bad_price"), ("value", "bad_value")):
        if role in cols:
            c = cols[role]
            sel[f"_{role}"] = _num_expr(con, t, c, types[c])
            sel[f"_{role}_given"] = _present(c)
            checks.append((reason, f"_{role}_given AND _{role} IS NULL"))
        else:
            sel[f"_{role}"] = "NULL::DOUBLE"
    sel["seq"] = _num_expr(con, t, cols["order"], types[cols["order"]]) if "order" in cols else "NULL::DOUBLE"
    for role in ("title", "description", "category", "brand"):
        sel[role] = _id_expr(cols[role]) if role in cols else "NULL::VARCHAR"
    _event_map_table(con, mapping)
    if "event" in cols:
        sel["_event_src"] = f"lower(trim(CAST({q(cols['event'])} AS VARCHAR)))"
        event_join = "LEFT JOIN _event_map m ON m.src = base._event_src"
        event_expr = f"coalesce(m.event, {_sql_str(mapping.default_event)})"
        checks.append(("unknown_event", "_event_mapped IS NULL AND coalesce(_event_src, '') <> ''"))
    else:
        event_join = ""
        event_expr = _sql_str(mapping.default_event)
    if mapping.return_basket_prefix:
        event_expr = (f"CASE WHEN starts_with(basket_id, {_sql_str(mapping.return_basket_prefix)}) "
                      f"THEN 'return' ELSE {event_expr} END")
    np_terms = []
    if mapping.non_product_codes:
        codes = ", ".join(_sql_str(c) for c in dict.fromkeys(map(mapping.fold_item_id, mapping.non_product_codes)))
        np_terms.append(f"item_id IN ({codes})")
    if mapping.non_product_pattern:
        flags = ", 'i'" if mapping.item_id_case != "keep" else ""  # the pattern was written for the ids as given
        np_terms.append(f"regexp_full_match(item_id, {_sql_str(mapping.non_product_pattern)}{flags})")
    if np_terms:
        checks.append(("non_product_code", " OR ".join(np_terms)))
    if mapping.strict_catalog and known_items_table:
        checks.append(("unknown_item", f"item_id NOT IN (SELECT item_id FROM {known_items_table})"))
    if "price" in cols:
        checks.append(("non_positive_price", "_price <= 0"))
    if "quantity" in cols:
        checks.append(("non_positive_quantity", "quantity <= 0"))
    checks.append(("duplicate_line", "_dup > 1"))

    # An order export may give the customer and time on the order's first line only (Shopify does): the other
    # lines of the basket take them from it (a time only where none was given, a customer only if it is one).
    fill_ts = "NOT _ts_given" if "ts" in cols else "FALSE"
    part = ", ".join(q(c) for c in src_cols)
    inner = ", ".join(f"{expr} AS {q(name)}" for name, expr in sel.items())
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {_sql_str(r)}" for r, cond in checks) + " END"
    con.execute(f"""CREATE OR REPLACE TEMP TABLE staged AS
    WITH base AS (
        SELECT _row, {inner},
               md5_number(row({part})::VARCHAR) AS event_key,
               row_number() OVER (PARTITION BY {part} ORDER BY _row) AS _dup
        FROM {t}),
    typed AS (
        SELECT base.*, {"m.event" if event_join else "NULL"} AS _event_mapped, {event_expr} AS event
        FROM base {event_join}),
    orders AS (
        SELECT basket_id, min(user_id) AS _order_user, max(user_id) = min(user_id) AS _one_user, min(ts) AS _order_ts
        FROM typed WHERE basket_id IN (SELECT basket_id FROM typed WHERE user_id IS NULL OR {fill_ts})
        GROUP BY basket_id),
    filled AS (
        SELECT typed.*, _order_user, user_id IS NULL AND _one_user AS _user_filled,
               {fill_ts} AND _order_ts IS NOT NULL AS _ts_filled, _order_ts
        FROM typed LEFT JOIN orders USING (basket_id)),
    fin AS (
        SELECT * REPLACE (CASE WHEN _user_filled THEN _order_user ELSE user_id END AS user_id,
                          CASE WHEN _ts_filled THEN _order_ts ELSE ts END AS ts),
               CASE WHEN event = 'return' THEN abs(_quantity) ELSE _quantity END AS quantity
        FROM filled)
    SELECT _row AS source_row, event_key, user_id, item_id, event, ts, seq, basket_id, _user_filled, _ts_filled,
           coalesce(quantity, 1.0) AS quantity,
           coalesce(_value, CASE WHEN event = 'rating' THEN NULL ELSE _price * coalesce(quantity, 1.0) END) AS value,
           _price AS price, title, description, category, brand,
           {reason} AS reason
    FROM fin ORDER BY _row""")
    return "staged"


def reject_summary(con: duckdb.DuckDBPyConnection, table: str = "staged") -> dict[str, int]:
    rows = con.execute(f"SELECT reason, count(*) FROM {table} WHERE reason IS NOT NULL GROUP BY 1").fetchall()
    order = {r: i for i, r in enumerate(REASONS)}
    return dict(sorted(((r, int(n)) for r, n in rows), key=lambda kv: order.get(kv[0], 99)))


def stage_catalog(con: duckdb.DuckDBPyConnection, path: str, mapping: Mapping, base_dir: Path,
                  workdir: str, delimiter: str | None = None, encoding: str | None = None) -> tuple[Source, str]:
    """Read a catalog file into temp table `staged_catalog` (item_id + catalog roles + reason)."""
    spec = mapping.catalog
    src = read_source(con, path, "catsrc", delimiter=delimiter, encoding=encoding, sheet=spec.sheet if spec else None,
                      header_row=spec.header_row if spec else 1, workdir=workdir)
    if spec and spec.joins:
        apply_joins(con, "catsrc", list(spec.joins), base_dir, workdir)
        src.columns = own_columns(con, "catsrc")
    stage_catalog_table(con, "catsrc", src.columns, dict(spec.columns) if spec else {}, mapping, file=path)
    return src, "staged_catalog"


def stage_catalog_table(con: duckdb.DuckDBPyConnection, table: str, columns: list[str],
                        roles: dict[str, str | list[str]], mapping: Mapping, file: str | None = None) -> None:
    """Temp table `staged_catalog` from `table` (a read catalog file, or products posted to the service).

    `roles` maps catalog roles to `columns`; a role missing from it takes the column of its own name. Rows
    without an item id, with a price that cannot be read, or a later row of an id already stored get their
    `reason`.
    """
    roles = dict(roles)
    for role in ("item_id", "title", "description", "category", "brand", "price"):
        if role not in roles and role in columns:
            roles[role] = role
    if "item_id" not in roles:
        raise InputError("catalog has no item_id column: map one with --catalog-col item_id=COLUMN",
                         file=file)
    below = _below_a_title("--catalog-header-row", bool(file) and detect_format(file) in ("csv", "xlsx"))
    for role, c in roles.items():
        for col in ([c] if isinstance(c, str) else c):
            if col not in columns:
                raise InputError(f"catalog column {col!r} (mapped to {role}) not found; columns are: "
                                 f"{', '.join(columns)}{below}", file=file, column=col)
    types = column_types(con, table)
    exprs = {}
    for role in ("item_id", "title", "description", "category", "brand"):
        c = roles.get(role)
        if c is None:
            exprs[role] = "NULL::VARCHAR"
        elif isinstance(c, list):
            exprs[role] = "NULLIF(concat_ws(' > ', " + ", ".join(_id_expr(x) for x in c) + "), '')"
        else:
            exprs[role] = _id_expr(c)
    if "variant_of" in roles:  # a variant's row (Shopify's) leaves its product's text to the product's first row
        family = _id_expr(roles["variant_of"])
        for role in ("title", "description", "category", "brand"):
            exprs[role] = (f"coalesce({exprs[role]}, CASE WHEN {family} IS NOT NULL THEN first_value({exprs[role]} "
                           f"IGNORE NULLS) OVER (PARTITION BY {family} ORDER BY _row ROWS BETWEEN UNBOUNDED PRECEDING "
                           f"AND UNBOUNDED FOLLOWING) END)")
    exprs["item_id"] = item_id_expr(exprs["item_id"], mapping)
    exprs["price"] = (_num_expr(con, table, roles["price"], types[roles["price"]]) if "price" in roles
                      else "NULL::DOUBLE")
    sel = ", ".join(f"{e} AS {r}" for r, e in exprs.items())
    price_given = _present(roles["price"]) if "price" in roles else "false"
    # a later row of an id is a duplicate of the first good one, so a row rejected for its price does not hide it
    con.execute(f"""CREATE OR REPLACE TEMP TABLE staged_catalog AS
        SELECT * EXCLUDE (_first_reason), coalesce(_first_reason, CASE WHEN row_number() OVER (
            PARTITION BY item_id, _first_reason IS NULL ORDER BY _row) > 1 THEN 'duplicate_item' END) AS reason
        FROM (SELECT _row AS source_row, * EXCLUDE (_price_given),
                CASE WHEN item_id IS NULL THEN 'missing_item_id'
                     WHEN _price_given AND price IS NULL THEN 'bad_price' END AS _first_reason
              FROM (SELECT _row, {sel}, {price_given} AS _price_given FROM {table}))
        ORDER BY _row""")
