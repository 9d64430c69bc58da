"""Hypothesis: malformed files never crash ingest, and every row read is accounted for.

Invariants for any input file: the CLI exits 0 or 2 (never 1, never a traceback); on 0,
rows_read == accepted + sum(rejected), and the store holds exactly `accepted` events and
`sum(rejected)` rejects; on 2, one error line and no store.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from itemaffinity.cli import main

HEADER = ["order", "sku", "customer", "when", "qty", "price"]
COLS = ["--col", "basket_id=order", "--col", "item_id=sku", "--col", "user_id=customer",
        "--col", "ts=when", "--col", "quantity=qty", "--col", "price=price"]
FUZZ = settings(max_examples=35, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

good_cell = {
    "order": st.sampled_from(["o1", "o2", "C9", "536365"]),
    "sku": st.sampled_from(["A", "B", "85123A", "POST"]),
    "customer": st.sampled_from(["c1", "c2", "17850"]),
    "when": st.sampled_from(["2024-01-01 10:00:00", "2024-02-29 23:59:59", "2011-12-09 12:50:00"]),
    "qty": st.sampled_from(["1", "2", "12"]),
    "price": st.sampled_from(["0.85", "2.55", "1,000.00"]),
}
bad_cell = st.one_of(
    st.sampled_from(["", " ", "abc", "-3", "0", "1e400", "NaN", "2024-13-45 25:61:00", "31/02/2024",
                     "null", "None", "\u00e9t\u00e9", "\u4e2d\u6587", "'", '"', "a,b", 'say "hi"', "x\ny",
                     "\t", "\\", "--", "0x1F", "9" * 40]),
    st.text(max_size=12),
)


@st.composite
def csv_files(draw) -> bytes:
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        cells = [draw(st.one_of(good_cell[c], bad_cell)) for c in HEADER]
        shape = draw(st.sampled_from(["keep", "keep", "keep", "drop", "extra"]))
        if shape == "drop":
            cells = cells[: draw(st.integers(0, len(cells) - 1))]
        elif shape == "extra":
            cells += draw(st.lists(bad_cell, min_size=1, max_size=3))
        rows.append(cells)
    if rows and draw(st.booleans()):
        rows.append(list(rows[0]))  # an exact duplicate line

    def render(cell: str) -> str:
        if draw(st.booleans()):  # properly quoted
            return '"' + cell.replace('"', '""') + '"'
        return cell  # raw: may break the line apart, which is the point

    delim = draw(st.sampled_from([",", ",", ";", "\t"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(delim.join(render(c) for c in r) for r in [HEADER, *rows]) + newline
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


json_value = st.one_of(st.none(), st.booleans(), st.integers(-10, 10_000), st.floats(allow_nan=False),
                       st.text(max_size=8), st.lists(st.integers(), max_size=2))


@st.composite
def jsonl_files(draw) -> bytes:
    lines = []
    for _ in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["object", "object", "object", "garbage", "array", "blank", "partial"]))
        if kind == "object":
            obj = {k: draw(st.one_of(json_value, good_cell[k])) for k in HEADER if draw(st.booleans()) or k == "sku"}
            lines.append(json.dumps(obj, ensure_ascii=draw(st.booleans())))
        elif kind == "garbage":
            lines.append(draw(st.text(min_size=1, max_size=20).filter(lambda s: "\n" not in s and "\r" not in s)))
        elif kind == "array":
            lines.append(json.dumps(draw(st.lists(json_value, max_size=3))))
        elif kind == "partial":
            lines.append('{"order": "o1", "sku": ')
        else:
            lines.append("")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _ingest_and_check(name: str, content: bytes, extra: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        store = Path(tmp) / "store.duckdb"
        result = CliRunner().invoke(main, ["ingest", str(path), *extra, "--store", str(store), "--json"])
        assert result.exit_code in (0, 2), (result.exit_code, result.stderr, result.exception)
        if result.exit_code == 2:
            assert result.stderr.startswith("itemaffinity: error: ") and result.stderr.count("\n") == 1
            assert not store.exists()
            return
        payload = json.loads(result.stdout)
        rejected = sum(payload["rejected"].values())
        assert payload["rows_read"] == payload["accepted"] + rejected
        with duckdb.connect(str(store), read_only=True) as con:
            events = con.execute("SELECT count(*) FROM events").fetchone()[0]
            rejects = con.execute("SELECT count(*) FROM rejects WHERE detail IS DISTINCT FROM 'catalog'").fetchone()[0]
            by_reason = dict(con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1").fetchall())
            rows = con.execute("SELECT source_row FROM rejects UNION ALL SELECT source_row FROM events").fetchall()
        assert events == payload["accepted"]
        assert rejects == rejected
        assert by_reason == payload["rejected"]
        # Every row read is either an event or a reject, each under its own row number.
        assert len({r for (r,) in rows}) == payload["rows_read"]


@FUZZ
@given(content=csv_files())
def test_random_csv_never_crashes_and_counts_add_up(content):
    _ingest_and_check("events.csv", content, COLS)


@FUZZ
@given(content=jsonl_files())
def test_random_jsonl_never_crashes_and_counts_add_up(content):
    _ingest_and_check("events.jsonl", content, COLS)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(content=st.binary(min_size=1, max_size=400), name=st.sampled_from(["g.csv", "g.jsonl", "g.tsv"]))
def test_random_bytes_never_crash(content, name):
    _ingest_and_check(name, content, ["--col", "item_id=sku", "--col", "basket_id=order"])
