"""`itemaffinity ingest` through the real executable: fatal input errors and the happy path.

Every fatal case must exit 2 with exactly one stderr line `itemaffinity: error: ...` (no
traceback) and leave the store exactly as it was: byte-identical when it existed, absent when it
did not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from itemaffinity.cli import main

GOOD_CSV = ("order,sku,customer,when,qty\n"
            "o1,A,c1,2024-01-01 10:00:00,1\n"
            "o1,B,c1,2024-01-01 10:00:00,2\n"
            "o2,A,c2,2024-01-02 11:30:00,1\n")
COLS = ["--col", "basket_id=order", "--col", "item_id=sku", "--col", "user_id=customer",
        "--col", "ts=when", "--col", "quantity=qty"]


def _good(tmp: Path, name: str = "events.csv") -> Path:
    p = tmp / name
    p.write_text(GOOD_CSV, encoding="utf-8")
    return p


def _toml(tmp: Path, text: str) -> Path:
    p = tmp / "map.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _xlsx(path: Path, sheets: dict[str, list[list]]) -> Path:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for r in rows:
            ws.append(r)
    wb.save(path)
    return path


def _parquet(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


# Each case builds its inputs in `tmp` and returns (argv after `ingest`, expected message part).
# Cases that name their own --store test the store argument itself.
Case = Callable[[Path], tuple[list, str]]


def c_missing_file(tmp):
    return [tmp / "nope.csv", *COLS], "file not found"


def c_directory(tmp):
    (tmp / "dir.csv").mkdir()
    return [tmp / "dir.csv", *COLS], "not a regular file"


def c_empty_file(tmp):
    (tmp / "empty.csv").write_bytes(b"")
    return [tmp / "empty.csv", *COLS], "file is empty"


def c_header_only(tmp):
    (tmp / "h.csv").write_text("order,sku,customer,when,qty\n")
    return [tmp / "h.csv", *COLS], "no data rows"


def c_unsupported_extension(tmp):
    (tmp / "events.xml").write_text("<events/>")
    return [tmp / "events.xml", *COLS], "unsupported file type '.xml'"


def c_no_extension(tmp):
    (tmp / "events").write_text(GOOD_CSV)
    return [tmp / "events", *COLS], "unsupported file type '(none)'"


def c_binary_garbage_csv(tmp):
    (tmp / "bin.csv").write_bytes(bytes(range(256)) * 64)
    return [tmp / "bin.csv", *COLS], "looks binary"


def c_wrong_encoding_given(tmp):
    (tmp / "latin.csv").write_bytes("order,sku\no1,Caf\u00e9\n".encode("latin-1"))
    return [tmp / "latin.csv", "--encoding", "utf-8", "--col", "basket_id=order",
            "--col", "item_id=sku"], "not valid UTF-8 at byte 16"


def c_wrong_encoding_ascii(tmp):
    (tmp / "u8.csv").write_bytes("order,sku\no1,Caf\u00e9\n".encode("utf-8"))
    return [tmp / "u8.csv", "--encoding", "ascii", "--col", "basket_id=order",
            "--col", "item_id=sku"], "not valid ascii"


def c_unknown_encoding(tmp):
    return [_good(tmp), "--encoding", "klingon-8", *COLS], "unknown encoding 'klingon-8'"


def c_corrupt_gzip(tmp):
    (tmp / "e.csv.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\xff" * 50)
    return [tmp / "e.csv.gz", *COLS], "cannot decompress"


def c_corrupt_parquet(tmp):
    (tmp / "bad.parquet").write_bytes(b"PAR1" + os.urandom(300))
    return [tmp / "bad.parquet", *COLS], "unreadable Parquet file"


def c_truncated_parquet(tmp):
    p = _parquet(tmp / "full.parquet", pa.table({"order": ["o1"] * 500, "sku": [f"s{i}" for i in range(500)]}))
    data = p.read_bytes()
    (tmp / "cut.parquet").write_bytes(data[: len(data) // 2])
    return [tmp / "cut.parquet", "--col", "basket_id=order", "--col", "item_id=sku"], "unreadable Parquet file"


def c_empty_parquet(tmp):
    p = _parquet(tmp / "none.parquet", pa.table({"order": pa.array([], pa.string()),
                                                 "sku": pa.array([], pa.string())}))
    return [p, "--col", "basket_id=order", "--col", "item_id=sku"], "no data rows"


def c_corrupt_xlsx(tmp):
    (tmp / "bad.xlsx").write_text("this is not a workbook")
    return [tmp / "bad.xlsx", *COLS], "unreadable Excel file"


def c_zip_not_workbook(tmp):
    with zipfile.ZipFile(tmp / "zip.xlsx", "w") as z:
        z.writestr("hello.txt", "not a workbook")
    return [tmp / "zip.xlsx", *COLS], "unreadable Excel file"


def c_xlsx_unknown_sheet(tmp):
    p = _xlsx(tmp / "book.xlsx", {"Orders": [["order", "sku"], ["o1", "A"]]})
    return [p, "--sheet", "Sales", "--col", "basket_id=order", "--col", "item_id=sku"], "no sheet 'Sales'; sheets: Orders"


def c_xlsx_empty_sheet(tmp):
    p = _xlsx(tmp / "blank.xlsx", {"Empty": []})
    return [p, "--col", "basket_id=order", "--col", "item_id=sku"], "no header row"


def c_jsonl_no_objects(tmp):
    (tmp / "e.jsonl").write_text('[1, 2]\n"text"\n{broken\n42\n')
    return [tmp / "e.jsonl", "--col", "basket_id=order", "--col", "item_id=sku"], "no JSON objects"


def c_bad_timestamp_format(tmp):
    return [_good(tmp), *COLS, "--timestamp-format", "%Q"], "invalid timestamp format '%Q'"


def c_delimiter_too_long(tmp):
    return [_good(tmp), *COLS, "--delimiter", ";;;;;"], "cannot read CSV"


def c_missing_mapped_column(tmp):
    return [_good(tmp), "--col", "item_id=product", "--col", "basket_id=order"], \
        "required column 'product' (mapped to item_id) not found"


def c_column_name_with_a_line_break(tmp):
    """The message quotes the header: a name holding a line break must not break the one-line message."""
    path = tmp / "broken_header.csv"
    path.write_text('order,sku,"pri\nce"\no1,A,1\n')
    return [path, "--col", "basket_id=order", "--col", "item_id=sku", "--col", "price=price"], \
        "the file's columns are: order, sku, pri\\nce"


def c_no_item_id_column(tmp):
    return [_good(tmp), "--col", "basket_id=order"], "no item_id column"


def c_no_basket_or_user(tmp):
    return [_good(tmp), "--col", "item_id=sku"], "no basket_id or user_id column"


def c_unknown_preset(tmp):
    return [_good(tmp), "--preset", "amazon-books"], "unknown preset 'amazon-books'"


def c_preset_and_map(tmp):
    m = _toml(tmp, '[columns]\nitem_id = "sku"\nbasket_id = "order"\n')
    return [_good(tmp), "--preset", "online-retail", "--map", m], "either --preset or --map"


def c_bad_col_syntax(tmp):
    return [_good(tmp), "--col", "item_id"], "--col expects ROLE=COLUMN"


def c_bad_catalog_col_syntax(tmp):
    return [_good(tmp), *COLS, "--catalog", _good(tmp, "cat.csv"), "--catalog-col", "=title"], \
        "--catalog-col expects ROLE=COLUMN"


def c_unknown_role(tmp):
    return [_good(tmp), *COLS, "--col", "colour=sku"], "unknown role(s) ['colour']"


def c_invalid_toml(tmp):
    m = _toml(tmp, "[columns\nitem_id = sku\n")
    return [_good(tmp), "--map", m], "not valid TOML"


def c_toml_unknown_key(tmp):
    m = _toml(tmp, 'name = "x"\nhalf_life = 30\n[columns]\nitem_id = "sku"\nbasket_id = "order"\n')
    return [_good(tmp), "--map", m], "half_life: Extra inputs are not permitted"


def c_toml_unknown_event(tmp):
    m = _toml(tmp, '[columns]\nitem_id = "sku"\nbasket_id = "order"\n[event_values]\nbuy = "steal"\n')
    return [_good(tmp), "--map", m], "event_values map to unknown event(s)"


def c_toml_weight_unknown_event(tmp):
    m = _toml(tmp, '[columns]\nitem_id = "sku"\nbasket_id = "order"\n[event_weights]\nwishlist = 2.0\n')
    return [_good(tmp), "--map", m], "event_weights for unknown event(s)"


def c_toml_bad_half_life(tmp):
    m = _toml(tmp, 'half_life_days = -5\n[columns]\nitem_id = "sku"\nbasket_id = "order"\n')
    return [_good(tmp), "--map", m], "half_life_days"


def c_toml_unknown_catalog_role(tmp):
    m = _toml(tmp, '[columns]\nitem_id = "sku"\nbasket_id = "order"\n[catalog.columns]\nitem_id = "sku"\ncolour = "c"\n')
    return [_good(tmp), "--map", m], "unknown catalog role(s) ['colour']"


def c_mapping_file_not_found(tmp):
    return [_good(tmp), "--map", tmp / "nope.toml"], "mapping file not found"


def c_catalog_missing(tmp):
    return [_good(tmp), *COLS, "--catalog", tmp / "products.csv"], "file not found"


def c_catalog_without_item_id(tmp):
    (tmp / "products.csv").write_text("code,name\nA,Apple\nB,Banana\n")
    return [_good(tmp), *COLS, "--catalog", tmp / "products.csv"], "catalog has no item_id column"


def c_catalog_column_missing(tmp):
    (tmp / "products.csv").write_text("item_id,name\nA,Apple\n")
    return [_good(tmp), *COLS, "--catalog", tmp / "products.csv", "--catalog-col", "title=title"], \
        "catalog column 'title' (mapped to title) not found"


def c_join_file_missing(tmp):
    _parquet(tmp / "order_products_sample.parquet",
             pa.table({"order_id": [1, 1], "product_id": [10, 11], "add_to_cart_order": [1, 2]}))
    return [tmp / "order_products_sample.parquet", "--preset", "instacart"], "file not found"


def c_second_file_missing(tmp):
    return [_good(tmp), tmp / "later.csv", *COLS], "file not found (file " + str(tmp / "later.csv")


def c_second_file_fatal(tmp):
    # The first file is fine; nothing of it may be written when the second one is fatal.
    (tmp / "later.csv").write_text("order,sku\n")
    return [_good(tmp), tmp / "later.csv", *COLS], "no data rows (file " + str(tmp / "later.csv")


def c_store_not_duckdb(tmp):
    (tmp / "notes.duckdb").write_text("shopping list: milk, eggs\n" * 100)
    return [_good(tmp), *COLS, "--store", tmp / "notes.duckdb"], "cannot open store"


def c_store_is_directory(tmp):
    (tmp / "store_dir").mkdir()
    return [_good(tmp), *COLS, "--store", tmp / "store_dir"], "store"


def c_store_parent_missing(tmp):
    return [_good(tmp), *COLS, "--store", tmp / "no" / "such" / "dir" / "s.duckdb"], "cannot open store"


_HELD: dict[Path, subprocess.Popen] = {}  # case folder → process holding its store open

HOLD_STORE = """
import sys, duckdb
from itemaffinity.store.duckdb_store import ensure_schema
con = duckdb.connect(sys.argv[1])
ensure_schema(con)
con.execute("CHECKPOINT")
print("ready", flush=True)
sys.stdin.read()
con.close()
"""


def c_store_locked(tmp):
    # Another process, not this one: POSIX locks die when any fd of the file closes in-process.
    path = tmp / "busy.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_STORE, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    _HELD[tmp] = holder
    assert holder.stdout.readline().strip() == "ready"
    return [_good(tmp), *COLS, "--store", path], "is open in another process (PID"


def c_store_other_version(tmp):
    import duckdb

    from itemaffinity.store.duckdb_store import ensure_schema

    path = tmp / "future.duckdb"
    with duckdb.connect(str(path)) as con:
        ensure_schema(con)
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return [_good(tmp), *COLS, "--store", path], "store schema version 99"


CASES: dict[str, Case] = {name[2:]: fn for name, fn in dict(globals()).items() if name.startswith("c_")}


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def c_unreadable(tmp):
    p = _good(tmp, "secret.csv")
    p.chmod(0)
    return [p, *COLS], "permission denied"


CASES["unreadable"] = c_unreadable
MARKS = {
    "unreadable": pytest.mark.skipif(_is_root(), reason="root reads files whatever their mode"),
}


def test_there_are_at_least_twenty_distinct_cases():
    assert len(set(CASES) - set(MARKS)) >= 20


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> Path:
    """A small, valid store the fatal cases must leave byte-identical."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    tmp = tmp_path_factory.mktemp("base")
    src = tmp / "first.csv"
    src.write_text("order,sku,customer\nz1,Q,c9\nz1,R,c9\nz2,Q,\nz3,,c1\n")
    path = tmp / "base.duckdb"
    ingest_file(str(src), resolve_mapping(cols=["basket_id=order", "item_id=sku", "user_id=customer"]), path)
    assert not Path(str(path) + ".wal").exists()
    return path


def _store_arg(argv: list, default: Path) -> tuple[list[str], Path]:
    argv = [str(a) for a in argv]
    if "--store" in argv:
        return argv, Path(argv[argv.index("--store") + 1])
    return [*argv, "--store", str(default)], default


def _state(path: Path, digest) -> tuple:
    if path.is_dir():
        return ("dir", sorted(p.name for p in path.iterdir()))
    return ("file", digest(path), Path(str(path) + ".wal").exists())


@pytest.fixture(scope="module")
def fatal_runs(tmp_path_factory, base_store, cli, digest) -> dict[str, tuple]:
    """Each case set up in its own folder and run through the real executable, a few at a time.

    Returns name → (completed process, expected message part, store state before, after).
    """

    def run(name: str) -> tuple:
        tmp = tmp_path_factory.mktemp(name)
        argv, expected = CASES[name](tmp)
        store = tmp / "store.duckdb"
        shutil.copy(base_store, store)
        argv, store = _store_arg(argv, store)
        before = _state(store, digest)
        try:
            proc = cli("ingest", *argv)
        finally:
            if tmp in _HELD:
                holder = _HELD.pop(tmp)
                holder.stdin.close()
                holder.wait(timeout=30)
        return proc, expected, before, _state(store, digest)

    names = [n for n in CASES if not (n == "unreadable" and _is_root())]
    with ThreadPoolExecutor(max_workers=max(2, min(4, os.cpu_count() or 2))) as pool:
        return dict(zip(names, pool.map(run, names)))


@pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, ())) for n in CASES])
def test_fatal_input_exits_2_with_one_line_and_store_untouched(name, fatal_runs):
    proc, expected, before, after = fatal_runs[name]
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("itemaffinity: error: "), lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout == ""
    assert after == before


@pytest.mark.parametrize("name", [pytest.param(n, marks=MARKS.get(n, ())) for n in CASES
                                  if not n.startswith("store_")])
def test_fatal_input_never_creates_a_store(name, tmp_path):
    """The same cases in-process against a store path that does not exist yet: it must not appear."""
    argv, expected = CASES[name](tmp_path)
    store = tmp_path / "fresh" / "new.duckdb"
    store.parent.mkdir()
    result = CliRunner().invoke(main, ["ingest", *map(str, argv), "--store", str(store)])
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert result.stderr.startswith("itemaffinity: error: ") and expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert sorted(store.parent.iterdir()) == []


def test_ingest_prints_counts_and_appends(tmp_path, cli, counts):
    src = _good(tmp_path)
    store = tmp_path / "s.duckdb"
    proc = cli("ingest", src, *COLS, "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["rows_read"] == 3 and payload["accepted"] == 3 and payload["rejected"] == {}
    assert payload["files"][0]["skipped"] is None
    assert counts(store)["events"] == 3

    again = cli("ingest", src, *COLS, "--store", store)
    assert again.returncode == 0, again.stderr
    assert "identical file already ingested in run 1" in again.stdout
    assert "rows read: 3   accepted: 3   rejected: 0" in again.stdout
    assert counts(store)["events"] == 3


def test_ingest_reports_rejects_and_exit_0(tmp_path, cli, query):
    src = tmp_path / "mixed.csv"
    src.write_text("order,sku,customer,when,qty\n"
                   "o1,A,c1,2024-01-01 10:00:00,1\n"
                   "o1,,c1,2024-01-01 10:00:00,1\n"
                   "o2,B,c2,not a date,1\n"
                   "o3,C,c3,2024-01-03 10:00:00,lots\n"
                   "o4,D,c4,2024-01-04 10:00:00,0\n"
                   "o1,A,c1,2024-01-01 10:00:00,1\n")
    store = tmp_path / "store.duckdb"
    proc = cli("ingest", src, *COLS, "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["rows_read"] == 6 and payload["accepted"] == 1
    assert payload["rejected"] == {"missing_item_id": 1, "bad_timestamp": 1, "bad_quantity": 1,
                                   "non_positive_quantity": 1, "duplicate_line": 1}
    assert query("SELECT source_row, reason FROM rejects ORDER BY source_row") == [
        (2, "missing_item_id"), (3, "bad_timestamp"), (4, "bad_quantity"),
        (5, "non_positive_quantity"), (6, "duplicate_line")]


def test_ingest_notes_lines_that_took_their_orders_customer_and_time(tmp_path, cli):
    src = tmp_path / "shopify.csv"  # the customer and time on an order's first line only
    src.write_text("order,sku,customer,when,qty\no1,A,c1,2024-01-01 10:00:00,1\no1,B,,,1\no1,C,,,2\n")
    proc = cli("ingest", src, *COLS, "--store", tmp_path / "s.duckdb")
    assert proc.returncode == 0, proc.stderr
    assert (f"note: {src}: lines without a customer or time took them from the other lines of their order: "
            "2 customers, 2 times") in proc.stdout


def test_times_are_the_same_on_a_machine_in_another_time_zone(tmp_path, cli, query):
    """Epoch numbers and offsets are instants: stored as UTC, not as the ingesting machine's local time."""
    src = tmp_path / "times.csv"
    src.write_text("order,sku,customer,when,qty\no1,A,c1,1700000000,1\no2,B,c2,1700003600,1\n")
    stored = {}
    for zone in ("UTC", "Asia/Shanghai"):
        store = tmp_path / f"{zone.replace('/', '-')}.duckdb"
        assert cli("ingest", src, *COLS, "--store", store, env={"TZ": zone}).returncode == 0
        stored[zone] = query("SELECT strftime(ts, '%Y-%m-%d %H:%M') FROM events ORDER BY 1", store=store)
    assert stored["Asia/Shanghai"] == stored["UTC"] == [("2023-11-14 22:13",), ("2023-11-14 23:13",)]


def test_ingest_explodes_an_orders_line_items(tmp_path, cli, query):
    src = tmp_path / "orders.jsonl"
    src.write_text('{"id": 7, "line_items": [{"sku": "A", "quantity": 2}, {"sku": "B", "quantity": 1}]}\n')
    proc = cli("ingest", src, "--explode", "line_items", "--col", "basket_id=id", "--col", "item_id=line_items.sku",
               "--col", "quantity=line_items.quantity", "--store", tmp_path / "store.duckdb")
    assert proc.returncode == 0 and "2 rows read, 2 accepted" in proc.stdout, proc.stdout + proc.stderr
    assert query("SELECT basket_id, item_id, quantity FROM events ORDER BY source_row") == [("7", "A", 2.0),
                                                                                          ("7", "B", 1.0)]


def test_ingest_reads_below_a_title_with_header_row(tmp_path, cli):
    src = tmp_path / "report.csv"
    src.write_text("Orders, December\norder,sku,customer,when,qty\no1,A,c1,2024-12-01 10:00:00,1\n")
    proc = cli("ingest", src, *COLS, "--header-row", "2", "--store", tmp_path / "s.duckdb")
    assert proc.returncode == 0 and "1 rows read, 1 accepted" in proc.stdout, proc.stdout + proc.stderr


def test_ingest_reads_the_catalog_sheet_of_the_orders_workbook(tmp_path, cli, query):
    from openpyxl import Workbook

    book = Workbook()
    book.active.title = "Orders"
    for row in (["order", "sku"], ["o1", "A"], ["o1", "B"]):
        book.active.append(row)
    products = book.create_sheet("Products")
    for row in (["sku", "name"], ["A", "Blue mug"], ["B", "Teapot"]):
        products.append(row)
    book.save(tmp_path / "shop.xlsx")
    proc = cli("ingest", tmp_path / "shop.xlsx", "--col", "basket_id=order", "--col", "item_id=sku", "--catalog",
               tmp_path / "shop.xlsx", "--catalog-sheet", "Products", "--catalog-col", "item_id=sku", "--catalog-col",
               "title=name", "--store", tmp_path / "store.duckdb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert query("SELECT item_id, title FROM catalog ORDER BY 1") == [("A", "Blue mug"), ("B", "Teapot")]


def test_a_catalog_below_a_title_is_named_and_read_with_catalog_header_row(tmp_path, cli, query):
    """A product list exported as a report (a title, a blank row, then the names): the error points to
    --catalog-header-row, which reads it, alone or beside an events file."""
    catalog = tmp_path / "products.csv"
    catalog.write_text("Product list, December\n\nsku,name\nA,Blue mug\nB,Teapot\n")
    orders = tmp_path / "orders.csv"
    orders.write_text("order,sku\no1,A\no1,B\n")
    base = [orders, "--col", "basket_id=order", "--col", "item_id=sku", "--catalog", catalog, "--catalog-col",
            "item_id=sku", "--catalog-col", "title=name", "--store", tmp_path / "s.duckdb"]
    proc = cli("ingest", *base)
    assert proc.returncode == 2 and "give --catalog-header-row N" in proc.stderr, proc.stderr
    proc = cli("ingest", *base, "--catalog-header-row", "3")
    assert proc.returncode == 0 and "catalog: 2 products stored" in proc.stdout, proc.stdout + proc.stderr
    assert query("SELECT item_id, title FROM catalog ORDER BY 1", store=tmp_path / "s.duckdb") == [
        ("A", "Blue mug"), ("B", "Teapot")]
    alone = cli("ingest", "--catalog", catalog, "--catalog-col", "item_id=sku", "--catalog-col", "title=name",
                "--catalog-header-row", "3", "--store", tmp_path / "alone.duckdb")
    assert alone.returncode == 0 and "2 products" in alone.stdout, alone.stdout + alone.stderr


def test_ingest_leaves_no_temporary_files(tmp_path, cli):
    """Transcoded copies of non-UTF-8 input live in a temp dir that must be removed afterwards."""
    src = tmp_path / "latin.csv"
    src.write_bytes("order,sku,title\no1,A,Caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    temp = tmp_path / "temp"
    temp.mkdir()
    proc = cli("ingest", src, "--col", "basket_id=order", "--col", "item_id=sku",
               "--store", tmp_path / "s.duckdb", env={"TMPDIR": str(temp)})
    assert proc.returncode == 0, proc.stderr
    assert list(temp.iterdir()) == []


def test_ids_differing_only_in_case_are_noted_or_merged(tmp_path, cli, query):
    src = tmp_path / "case.csv"
    src.write_text("order,sku,customer,when,qty\n"
                   "o1,85123A,c1,2024-01-01 10:00:00,1\n"
                   "o1,B,c1,2024-01-01 10:00:00,1\n"
                   "o2,85123a,c2,2024-01-02 10:00:00,1\n"
                   "o3,POST,c3,2024-01-03 10:00:00,1\n")
    kept = cli("ingest", src, *COLS, "--store", tmp_path / "kept.duckdb")
    assert kept.returncode == 0, kept.stderr
    assert ("note: item ids that differ only in letter case: 1 groups (e.g. 85123A / 85123a), kept as separate "
            "items; --item-id-case upper merges them") in kept.stdout

    retail = tmp_path / "retail.csv"
    retail.write_text("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
                      "o1,85123A,HEART,1,2024-01-01 10:00:00,2.5,c1\n"
                      "o1,22423,CAKESTAND,1,2024-01-01 10:00:00,1.0,c1\n"
                      "o2,85123a,HEART,1,2024-01-02 10:00:00,2.5,c2\n"
                      "o3,POST,POSTAGE,1,2024-01-03 10:00:00,18.0,c3\n")
    lower = cli("ingest", retail, "--preset", "online-retail", "--item-id-case", "lower",
                "--store", tmp_path / "store.duckdb", "--json")
    assert lower.returncode == 0, lower.stderr
    payload = json.loads(lower.stdout)
    assert payload["rejected"] == {"non_product_code": 1}  # the preset's POST, though ids are now lower case
    assert payload["files"][0]["case_twins"] == []
    assert query("SELECT item_id, count(*) FROM events GROUP BY 1 ORDER BY 1") == [("22423", 1), ("85123a", 2)]


def test_a_catalog_alone_adds_new_products_with_their_rejects(tmp_path, cli, query):
    """`ingest --catalog FILE` without events: new products before their first sale get their text (answers from
    their titles), ids are folded as the store's own ingest folds them, every bad catalog row is kept with its
    reason, and the same file again is a no-op; the store's event data and ingest mapping are untouched."""
    store = tmp_path / "store.duckdb"
    assert cli("ingest", _good(tmp_path), *COLS, "--item-id-case", "upper", "--store", store).returncode == 0
    catalog = tmp_path / "new.csv"
    catalog.write_text("item_id,title,price\n"
                       "a,Red enamel mug,2.5\n"      # a known product (folded to A): its title and price
                       "n1,Yellow enamel mug,3\n"    # a new product
                       ",No id at all,1\n"
                       "n1,Yellow mug again,3\n"
                       "n2,Broken,1,a stray field\n")
    proc = cli("ingest", "--catalog", catalog, "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    (f,) = json.loads(proc.stdout)["files"]
    assert (f["kind"], f["rows_read"], f["accepted"], f["catalog_rows"]) == ("catalog", 0, 0, 2)
    assert f["catalog_rejected"] == {"malformed_line": 1, "missing_item_id": 1, "duplicate_item": 1}
    assert query("SELECT item_id, title, price FROM catalog ORDER BY 1") == [
        ("A", "Red enamel mug", 2.5), ("N1", "Yellow enamel mug", 3.0)]
    assert query("SELECT source_row, reason FROM rejects ORDER BY 1") == [
        (3, "missing_item_id"), (4, "duplicate_item"), (5, "malformed_line")]
    assert query("SELECT kind, rows_read, catalog_rows FROM runs ORDER BY run_id") == [
        ("ingest", 3, 0), ("catalog", 0, 2)]
    assert query("SELECT count(*) FROM events") == [(3,)]

    again = cli("ingest", "--catalog", catalog, "--store", store)
    assert again.returncode == 0, again.stderr
    assert "new.csv: a catalog alone  (identical file already ingested in run 2)" in again.stdout
    assert "catalog: 2 products stored   rejected: 3" in again.stdout and "rows read:" not in again.stdout
    assert query("SELECT count(*) FROM runs") == [(2,)]

    similar = cli("similar", "n1", "--store", store, "--model", "tfidf", "--n", "1", "--json")
    assert similar.returncode == 0, similar.stderr
    assert json.loads(similar.stdout)["items"][0]["item_id"] == "A"  # the other enamel mug, by its title

    nothing = cli("ingest", "--store", store)
    assert nothing.returncode == 2 and "ingest --catalog FILE" in nothing.stderr
