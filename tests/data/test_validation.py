"""Validation: every reject reason is counted and stored; returns, anonymous rows, file order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.validation import REASONS
from itemaffinity.errors import InputError

HEADER = "order,sku,customer,when,qty,price,value,action"
GOOD = ["o1,A,c1,2024-01-01 10:00:00,1,2.50,,buy",
        "o1,B,c1,2024-01-01 10:00:00,2,1.00,,buy",
        "o2,A,c2,2024-01-02 10:00:00,1,2.50,,buy"]
COLS = ["basket_id=order", "item_id=sku", "user_id=customer", "ts=when", "quantity=qty",
        "price=price", "value=value", "event=action"]

# reason → the one offending line (appended after GOOD, so it is data row 4).
BAD_LINE = {
    "malformed_line": "o3,C,c3",
    "repeated_header": HEADER,  # files joined end to end, each with its header
    "missing_item_id": "o3,,c3,2024-01-03 10:00:00,1,1.00,,buy",
    "nested_item_id": "o3,[3],c3,2024-01-03 10:00:00,1,1.00,,buy",
    "missing_basket_and_user": ",C,,2024-01-03 10:00:00,1,1.00,,buy",
    "bad_timestamp": "o3,C,c3,the day after tomorrow,1,1.00,,buy",
    "bad_quantity": "o3,C,c3,2024-01-03 10:00:00,a few,1.00,,buy",
    "bad_price": "o3,C,c3,2024-01-03 10:00:00,1,cheap,,buy",
    "bad_value": "o3,C,c3,2024-01-03 10:00:00,1,1.00,n/a,buy",
    "unknown_event": "o3,C,c3,2024-01-03 10:00:00,1,1.00,,teleport",
    "non_product_code": "o3,POST,c3,2024-01-03 10:00:00,1,18.00,,buy",
    "unknown_item": "o3,ZZZ,c3,2024-01-03 10:00:00,1,1.00,,buy",
    "non_positive_price": "o3,C,c3,2024-01-03 10:00:00,1,0,,buy",
    "non_positive_quantity": "o3,C,c3,2024-01-03 10:00:00,-2,1.00,,buy",
    "duplicate_line": GOOD[1],
    "already_in_store": "o9,Q,c9,2024-01-09 10:00:00,1,1.00,,buy",
}


def test_every_reason_has_a_case():
    assert set(BAD_LINE) == set(REASONS)


@pytest.mark.parametrize("reason", REASONS)
def test_each_reject_reason_is_counted_and_stored(reason, write, ingest, query, tmp_path):
    options = {}
    catalog = None
    if reason == "non_product_code":
        options["non_product_codes"] = ["POST"]
    if reason == "unknown_item":
        options["strict_catalog"] = True
        catalog = write("products.csv", "item_id,title\nA,Apple\nB,Banana\nC,Cherry\n")
    if reason == "already_in_store":
        first = ingest(write("earlier.csv", "\n".join([HEADER, BAD_LINE[reason]]) + "\n"), cols=COLS)
        assert first.accepted == 1
    path = write("events.csv", "\n".join([HEADER, *GOOD, BAD_LINE[reason]]) + "\n")

    res = ingest(path, cols=COLS, catalog=catalog, **options)

    assert res.rows_read == 4
    assert res.accepted == 3
    assert res.rejected == {reason: 1}
    stored = query("SELECT source, source_row, reason, raw FROM rejects WHERE run_id = ?", [res.run_id])
    assert [(s, r, why) for s, r, why, _ in stored] == [(str(path), 4, reason)]
    raw = stored[0][3]
    if reason == "malformed_line":
        assert raw == BAD_LINE[reason]
    else:
        # The rejected row is kept whole, as the source's columns.
        assert (json.loads(raw)["sku"] or "") == BAD_LINE[reason].split(",")[1]
    (run_rejected,) = query("SELECT rejected FROM runs WHERE run_id = ?", [res.run_id])[0]
    assert json.loads(run_rejected) == {reason: 1}
    assert query("SELECT count(*) FROM events WHERE run_id = ?", [res.run_id]) == [(3,)]


def test_first_applicable_reason_wins(write, ingest, query):
    # No item, no basket/user, bad date, bad quantity: only the first reason in REASONS is kept.
    path = write("e.csv", "\n".join([HEADER, ",,,someday,many,x,y,teleport", *GOOD]) + "\n")
    res = ingest(path, cols=COLS)
    assert res.rejected == {"missing_item_id": 1}
    path = write("f.csv", "\n".join([HEADER, "o7,D,c7,someday,many,x,y,teleport"]) + "\n")
    res = ingest(path, cols=COLS)
    assert res.rejected == {"bad_timestamp": 1}


def test_fatal_errors_name_file_and_column(write, ingest):
    path = write("e.csv", "\n".join([HEADER, *GOOD]) + "\n")
    with pytest.raises(InputError) as info:
        ingest(path, cols=["item_id=sku", "basket_id=invoice"])
    msg = str(info.value)
    assert "'invoice'" in msg and str(path) in msg and "order, sku, customer" in msg


def test_value_is_price_times_quantity_unless_given(write, ingest, query):
    path = write("e.csv", "\n".join([HEADER, "o1,A,c1,2024-01-01,3,2.50,,buy", "o1,B,c1,2024-01-01,2,1.00,7.5,buy"]) + "\n")
    ingest(path, cols=COLS)
    assert query("SELECT item_id, quantity, price, value FROM events ORDER BY 1") == [
        ("A", 3.0, 2.5, 7.5), ("B", 2.0, 1.0, 7.5)]


ONLINE_RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"


def _online_retail_like(write):
    return write("or.csv", "\n".join([
        ONLINE_RETAIL_HEADER,
        "536365,85123A,WHITE HANGING HEART,6,12/1/2010 8:26,2.55,17850,United Kingdom",
        "536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom",
        "536366,85123A,WHITE HANGING HEART,2,12/1/2010 9:00,2.55,13047,United Kingdom",
        "536367,85123A,WHITE HANGING HEART,1,12/2/2010 9:00,2.55,13047,United Kingdom",
        "C536379,85123A,WHITE HANGING HEART,-6,12/3/2010 9:41,2.55,17850,United Kingdom",
        "C536380,85123A,WHITE HANGING HEART,-1,12/3/2010 9:45,2.55,13047,United Kingdom",
        "C536381,D,Discount,-1,12/3/2010 9:50,27.50,14527,United Kingdom",
        "536400,22633,HAND WARMER UNION JACK,6,12/4/2010 10:00,1.85,,United Kingdom",
        "536400,71053,WHITE METAL LANTERN,2,12/4/2010 10:00,3.39,,United Kingdom",
    ]) + "\n")


def test_online_retail_c_invoices_become_returns_that_net_out(write, ingest, query, tmp_path):
    res = ingest(_online_retail_like(write), preset="online-retail")
    assert (res.rows_read, res.accepted, res.rejected) == (9, 8, {"non_product_code": 1})
    assert query("SELECT basket_id, event, quantity, value FROM events WHERE basket_id LIKE 'C%' ORDER BY 1") == [
        ("C536379", "return", 6.0, pytest.approx(15.3)), ("C536380", "return", 1.0, 2.55)]

    data = InteractionData.from_store(tmp_path / "store.duckdb")
    heart = data.items.index("85123A")
    # 17850 bought the heart once and returned it: it cancels. 13047 bought it twice, returned once.
    assert data.user_items[data.users.index("17850"), heart] == 0
    assert data.user_items[data.users.index("13047"), heart] == pytest.approx(4.0)
    assert data.user_items[data.users.index("17850"), data.items.index("71053")] == pytest.approx(4.0)
    # Returns form no basket; they are counted per item.
    assert sorted(data.baskets.ids.tolist()) == ["536365", "536366", "536367", "536400"]
    assert data.item_returns[heart] == 2
    assert data.item_baskets[heart] == 3
    # Date format 12/1/2010 8:26 was detected (month first).
    assert query("SELECT min(ts)::VARCHAR, max(ts)::VARCHAR FROM events") == [
        ("2010-12-01 08:26:00", "2010-12-04 10:00:00")]


def test_anonymous_rows_with_a_basket_are_kept(write, ingest, query, tmp_path):
    ingest(_online_retail_like(write), preset="online-retail")
    assert query("SELECT basket_id, item_id FROM events WHERE user_id IS NULL ORDER BY 2") == [
        ("536400", "22633"), ("536400", "71053")]
    data = InteractionData.from_store(tmp_path / "store.duckdb")
    b = data.baskets.index("536400")
    assert data.basket_user[b] == -1
    assert sorted(data.items.ids_of(data.basket_items[b].indices)) == ["22633", "71053"]
    assert data.n_users == 2  # anonymous rows add no user


def test_lines_take_the_customer_and_time_of_their_order(write, ingest, query):
    """An export that gives the customer and time on an order's first line only (Shopify's does): the other lines
    take them from the order; not a second customer's, and not over a time that could not be read."""
    path = write("orders.csv", "order,customer,when,sku\n"
                 "o1,c1,2024-01-02 10:00:00,A\no1,,,B\n"
                 "o2,c2,2024-01-03 10:00:00,A\no2,c3,,B\no2,,,C\n"
                 "o3,c4,2024-01-04 10:00:00,A\no3,,someday,B\n")
    res = ingest(path, cols=["basket_id=order", "user_id=customer", "ts=when", "item_id=sku"])
    assert (res.accepted, res.rejected) == (6, {"bad_timestamp": 1})
    assert res.filled_from_order == {"user_id": 1, "ts": 3}
    assert query("SELECT basket_id, item_id, user_id, strftime(ts, '%d %H') FROM events ORDER BY 1, 2") == [
        ("o1", "A", "c1", "02 10"), ("o1", "B", "c1", "02 10"),
        ("o2", "A", "c2", "03 10"), ("o2", "B", "c3", "03 10"), ("o2", "C", None, "03 10"),
        ("o3", "A", "c4", "04 10")]
    assert ingest(path, cols=["basket_id=order", "user_id=customer", "ts=when", "item_id=sku"]).skipped


def test_user_only_rows_are_kept_without_basket(write, ingest, query):
    res = ingest(write("u.csv", "who,what\nu1,a\nu2,b\n,c\n"), cols=["user_id=who", "item_id=what"])
    assert (res.accepted, res.rejected) == (2, {"missing_basket_and_user": 1})
    assert query("SELECT user_id, basket_id FROM events ORDER BY 1") == [("u1", None), ("u2", None)]


def test_without_timestamp_sequences_follow_file_order(write, ingest, tmp_path):
    # Item ids deliberately out of alphabetical order, interleaved users.
    path = write("s.csv", "who,what\nu1,zebra\nu2,k\nu1,apple\nu1,mango\nu2,b\nu1,kiwi\n")
    ingest(path, cols=["user_id=who", "item_id=what"])
    data = InteractionData.from_store(tmp_path / "store.duckdb")
    assert data.items.ids_of(data.sequence(data.users.index("u1"))) == ["zebra", "apple", "mango", "kiwi"]
    assert data.items.ids_of(data.sequence(data.users.index("u2"))) == ["k", "b"]


def test_missing_times_and_prices_are_nat_and_nan(write, ingest, tmp_path):
    ingest(write("s.csv", "order,who,what,title\no1,u1,a,Apple\no1,u1,b,Banana\n"),
           cols=["basket_id=order", "user_id=who", "item_id=what"])
    data = InteractionData.from_store(tmp_path / "store.duckdb")
    assert np.isnat(data.seq_ts).all() and np.isnat(data.basket_ts).all()
    assert np.isnat(data.item_first_seen).all()
    assert np.isnan(data.prices).all()


def test_order_column_sorts_sequences_when_there_is_no_time(write, ingest, tmp_path):
    path = write("s.csv", "who,what,pos\nu1,c,2\nu1,a,0\nu1,b,1\nu1,d,10\n")
    ingest(path, cols=["user_id=who", "item_id=what", "order=pos"])
    data = InteractionData.from_store(tmp_path / "store.duckdb")
    assert data.items.ids_of(data.sequence(0)) == ["a", "b", "c", "d"]


def test_catalog_file_rows_are_validated(write, ingest, query):
    events = write("e.csv", "order,sku\no1,A\no1,B\n")
    catalog = write("products.csv", "item_id,title,price\nA,Apple,1.5\n,Nameless,2\nB,Banana,0.5\nA,Apple again,9\n"
                                    "C,Cherry,1,a stray field\nD,Date,cheap\nD,Date,2\n")
    res = ingest(events, cols=["basket_id=order", "item_id=sku"], catalog=catalog)
    assert res.catalog_rows == 3  # every catalog line is stored or rejected with its reason: 3 + 4 = 7
    assert res.catalog_rejected == {"malformed_line": 1, "missing_item_id": 1, "bad_price": 1, "duplicate_item": 1}
    assert query("SELECT item_id, title, price FROM catalog ORDER BY 1") == [
        ("A", "Apple", 1.5), ("B", "Banana", 0.5), ("D", "Date", 2.0)]  # D's second row: not a duplicate of a reject
    assert query("SELECT source_row, reason, left(detail, 9), raw FROM rejects ORDER BY 1") == [
        (2, "missing_item_id", "catalog", '{"_row":2,"item_id":null,"title":"Nameless","price":"2"}'),
        (4, "duplicate_item", "catalog", '{"_row":4,"item_id":"A","title":"Apple again","price":"9"}'),
        (5, "malformed_line", "catalog: ", "C,Cherry,1,a stray field"),
        (6, "bad_price", "catalog", '{"_row":6,"item_id":"D","title":"Date","price":"cheap"}')]


def test_catalog_from_event_rows_takes_the_most_common_title_ties_to_the_latest(write, ingest, query):
    path = write("t.csv", "order,sku,title,price\n"
                          "o1,A,Old name,1.0\no2,A,New name,3.0\n"
                          "o1,B,Usual,2.0\no2,B,Typo,2.0\no3,B,Usual,4.0\no4,B,,0\n")
    res = ingest(path, cols=["basket_id=order", "item_id=sku"])
    assert res.rejected == {"non_positive_price": 1}
    # Same-named columns (title, price) fill the catalog; the price is the median of positive prices.
    assert query("SELECT item_id, title, price FROM catalog ORDER BY 1") == [("A", "New name", 2.0), ("B", "Usual", 2.0)]


def test_prices_with_currency_signs(write, ingest, query):
    """Shop exports write prices with their currency ("¥1,299", "199元", "12.50 USD"): the number is read, and a
    word that is no price is still a counted bad_price."""
    lines = ['o1,A,c1,2024-01-01 10:00:00,1,"¥1,299.00",,buy', "o1,B,c1,2024-01-01 10:00:00,1,199元,,buy",
             "o2,A,c2,2024-01-02 10:00:00,1,12.50 USD,,buy", "o2,B,c2,2024-01-02 10:00:00,1,RMB 88,,buy",
             "o3,C,c3,2024-01-03 10:00:00,1,¥ cheap,,buy"]
    path = write("prices.csv", "\n".join([HEADER, *lines]) + "\n")
    res = ingest(path, cols=COLS)
    assert res.accepted == 4 and res.rejected == {"bad_price": 1}
    assert [p for (p,) in query("SELECT price FROM events ORDER BY source_row")] == [1299.0, 199.0, 12.5, 88.0]


def test_prices_with_decimal_commas(write, ingest, query):
    """A European export writes "12,50" and "1.299,00" (often with ';' between fields): the comma is the decimal
    separator, not a thousands separator, so 12,50 is 12.5 and not 1250, in the events and in the catalog."""
    lines = ["o1;A;c1;2024-01-01 10:00:00;1;12,50", "o1;B;c1;2024-01-01 10:00:00;2;1.299,00",
             "o2;A;c2;2024-01-02 10:00:00;1;€ 0,99", "o2;C;c2;2024-01-02 10:00:00;1;7"]
    path = write("prices.csv", "\n".join(["order;sku;customer;when;qty;price", *lines]) + "\n")
    catalog = write("products.csv", 'item_id;title;price\nA;Apple;"2,5"\nB;Banana;"1.000,25"\n')
    res = ingest(path, cols=COLS[:6], catalog=catalog)
    assert res.accepted == 4 and not res.rejected
    assert [p for (p,) in query("SELECT price FROM events ORDER BY source_row")] == [12.5, 1299.0, 0.99, 7.0]
    assert query("SELECT item_id, price FROM catalog WHERE item_id IN ('A', 'B') ORDER BY 1") == [
        ("A", 2.5), ("B", 1000.25)]


def test_a_value_written_unmistakably_is_read_so_whatever_the_column_mostly_holds(write, ingest, query):
    """A column mostly of decimal points with one "2,5" (a spreadsheet's text cell among number cells), and one
    mostly of decimal commas with one "1.5": each is read as written, not as 25 and 15. An ambiguous "1.299"
    follows the column: 1.299 among decimal points, 1299 among decimal commas."""
    path = write("points.csv", "order,sku,price\no1,A,1.5\no1,B,3.25\no2,A,\"2,5\"\no2,C,1.299\n")
    assert ingest(path, cols=["basket_id=order", "item_id=sku"]).accepted == 4
    assert [p for (p,) in query("SELECT price FROM events ORDER BY source_row")] == [1.5, 3.25, 2.5, 1.299]
    path = write("commas.csv", "order;sku;price\no3;A;1,5\no3;B;3,25\no4;A;1.5\no4;C;1.299\n")
    assert ingest(path, cols=["basket_id=order", "item_id=sku"]).accepted == 4
    assert [p for (p,) in query("SELECT price FROM events WHERE basket_id IN ('o3', 'o4') ORDER BY source_row")] == [
        1.5, 3.25, 1.5, 1299.0]


def test_an_ambiguous_price_follows_every_row_of_its_column(write, ingest, query):
    """A German export whose first 2,500 lines cost whole euros ("5"), then "12,50" and "1.299": the decimal commas
    further down decide, so 1.299 is 1299 euros, not 1.299."""
    whole = "".join(f"o{k};A;5\n" for k in range(2500))
    path = write("de.csv", "order;sku;price\n" + whole + "o9000;B;12,50\no9001;C;1.299\n")
    assert ingest(path, cols=["basket_id=order", "item_id=sku"]).accepted == 2502
    assert query("SELECT price FROM events WHERE basket_id IN ('o9000', 'o9001') ORDER BY source_row") == [
        (12.5,), (1299.0,)]


def test_a_time_left_out_on_some_rows_keeps_the_columns_date_order(write, ingest, query):
    """A German export writes 02.01.2024 10:00, and 03.01.2024 where the time is midnight: both are January, read
    in the column's day-first order (not rejected, not read month-first)."""
    path = write("de.csv", "order;sku;when\no1;A;02.01.2024 10:00\no1;B;02.01.2024 10:00\no2;A;03.01.2024\n"
                 "o3;C;13.01.2024 09:30\n")
    res = ingest(path, cols=["basket_id=order", "item_id=sku", "ts=when"])
    assert res.accepted == 4 and not res.rejected
    assert query("SELECT strftime(ts, '%Y-%m-%d %H:%M') FROM events ORDER BY source_row") == [
        ("2024-01-02 10:00",), ("2024-01-02 10:00",), ("2024-01-03 00:00",), ("2024-01-13 09:30",)]


def test_a_variant_takes_its_products_text_from_the_products_first_row(write, ingest, query):
    """Shopify's product export writes the title, description, type and vendor on a product's first row only; its
    other variants' rows share the Handle. With variant_of each variant gets its product's text (a row's own text
    stays), a product without a Handle keeps its empty title, and a row of another product never lends its own."""
    catalog = write("products_export.csv",
                    'Handle,Title,Body (HTML),Vendor,Type,Variant SKU,Variant Price\n'
                    'teapot,Teapot,"<p>Holds 1 l.</p>",Acme,Kitchen > Tea,TEA-S,24.00\n'
                    'blue-mug,Blue Mug,"<p>A sturdy\nmug.</p>",Acme,Kitchen > Mugs,MUG-1,9.50\n'
                    'teapot,,,,,TEA-L,29.00\n'
                    'teapot,Teapot XL,,,,TEA-XL,35.00\n'
                    ',,,,,LOOSE-1,1.00\n')
    orders = write("o.csv", "order,sku\no1,MUG-1\no1,TEA-L\n")
    roles = ["item_id=Variant SKU", "title=Title", "description=Body (HTML)", "brand=Vendor", "category=Type",
             "price=Variant Price", "variant_of=Handle"]
    res = ingest(orders, cols=["basket_id=order", "item_id=sku"], catalog=catalog, catalog_cols=roles)
    assert res.catalog_rows == 5 and not res.catalog_rejected
    assert query("SELECT item_id, title, description, brand, category, price FROM catalog ORDER BY item_id") == [
        ("LOOSE-1", None, None, None, None, 1.0),
        ("MUG-1", "Blue Mug", "<p>A sturdy\nmug.</p>", "Acme", "Kitchen > Mugs", 9.5),
        ("TEA-L", "Teapot", "<p>Holds 1 l.</p>", "Acme", "Kitchen > Tea", 29.0),
        ("TEA-S", "Teapot", "<p>Holds 1 l.</p>", "Acme", "Kitchen > Tea", 24.0),
        ("TEA-XL", "Teapot XL", "<p>Holds 1 l.</p>", "Acme", "Kitchen > Tea", 35.0)]


def test_the_day_month_order_is_judged_on_every_row_and_named_when_none_tells(write, ingest, query):
    """A British export sorted by date: its first 2,500 lines fall on 1–12 March, where either order reads, and the
    rest on later days. All is read day first (not 3 January, with the 13th onwards rejected as bad times); a file
    whose every date fits both orders is read month first, with a note naming the other format."""
    early = "".join(f"o{k},A,{1 + k % 12:02d}/03/2024\n" for k in range(2500))
    path = write("uk.csv", "order,sku,when\n" + early + "o9000,B,13/03/2024\no9001,C,28/03/2024\n")
    res = ingest(path, cols=["basket_id=order", "item_id=sku", "ts=when"])
    assert res.accepted == 2502 and not res.rejected and not res.notes
    months = query("SELECT DISTINCT strftime(ts, '%Y-%m') FROM events")
    assert months == [("2024-03",)]
    ambiguous = write("us.csv", "order,sku,when\no1,A,01/03/2024\no2,B,02/03/2024\n")
    res = ingest(ambiguous, cols=["basket_id=order", "item_id=sku", "ts=when"])
    assert res.notes == ["every date in column 'when' fits both day and month orders: read as month/day "
                         "(01/03/2024 = 3 January); give --timestamp-format '%d/%m/%Y' if they are the other way"]


@pytest.mark.parametrize("written, expected", [
    ("1700000000", "2023-11-14 22:13:20"),           # epoch seconds in a CSV (text, not a number column)
    ("1700000000123", "2023-11-14 22:13:20.123000"),  # epoch milliseconds
    ("2026年3月1日 10:05", "2026-03-01 10:05:00"),     # a Chinese shop export
    ("2026/3/1 10:05", "2026-03-01 10:05:00"),
    ("2024-01-02 10:00:00 +0100", "2024-01-02 09:00:00"),  # Shopify's "Created at": its offset read, as UTC
    ("2024-01-05T09:00:00-05:00", "2024-01-05 14:00:00"),
    ("2024-01-03T11:30:00Z", "2024-01-03 11:30:00"),
    ("20240102", "2024-01-02 00:00:00"),              # digits, as ERP and Chinese shop exports write dates
    ("20240102103000", "2024-01-02 10:30:00"),
    ("45293.5", "2024-01-02 12:00:00"),               # Excel's serial day, a date column exported as General
])
def test_timestamps_as_shops_write_them(written, expected, write, ingest, query):
    path = write("times.csv", "user,sku,when\n" + "".join(f"u{k},A,{written}\n" for k in range(3)))
    res = ingest(path, cols=["user_id=user", "item_id=sku", "ts=when"])
    assert res.accepted == 3 and not res.rejected
    assert {str(t) for (t,) in query("SELECT ts FROM events")} == {expected}


def test_a_number_column_of_dates_as_digits_is_read_as_dates_not_epoch(tmp_path, ingest, query):
    """20240102 in a Parquet integer column is 2 January 2024, not epoch seconds in August 1970, and 45293 (Excel's
    serial day) 2 January 2024, not 1 January 1970; epoch seconds and a float column of such digits (pandas writes
    ints with a gap as floats) are each read as they are."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "nums.parquet"
    pq.write_table(pa.table({"order": ["o1", "o2"], "sku": ["A", "B"], "day": [20240102, 20240315],
                             "epoch": [1700000000, 1700003600], "gappy": [20240102.0, None],
                             "excel": [45293.0, 45366.75]}), path)
    expected = {"day": ["2024-01-02 00:00:00", "2024-03-15 00:00:00"],
                "excel": ["2024-01-02 00:00:00", "2024-03-15 18:00:00"],
                "epoch": ["2023-11-14 22:13:20", "2023-11-14 23:13:20"], "gappy": ["2024-01-02 00:00:00", "None"]}
    for column, times in expected.items():
        store = tmp_path / f"{column}.duckdb"
        assert ingest(path, cols=["basket_id=order", "item_id=sku", f"ts={column}"], store=store).accepted == 2
        assert [str(t) for (t,) in query("SELECT ts FROM events ORDER BY source_row", store=store)] == times
