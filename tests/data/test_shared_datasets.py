"""Integration: the presets on the real datasets in ../shared/data, checked against the files.

Expected numbers come from the dataset READMEs or are recomputed here from the source files
with plain SQL that restates the validation rules, never from the code under test.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.mapping import NON_PRODUCT_ONLINE_RETAIL


def _sql(sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(sql, params or []).fetchall()


def _one(sql: str, params: list | None = None):
    return _sql(sql, params)[0][0]


# ---------------------------------------------------------------- Online Retail

@pytest.fixture(scope="module")
def or_file(shared_file):
    return str(shared_file("online_retail", "online_retail.parquet"))


@pytest.fixture(scope="module")
def or_expected(or_file) -> dict[str, int]:
    """Each reason's count, restated from the README's rules: first applicable reason wins."""
    codes = ", ".join("'" + c.replace("'", "''") + "'" for c in NON_PRODUCT_ONLINE_RETAIL)
    row = _sql(f"""
        WITH f AS (
          SELECT *, trim(InvoiceNo) LIKE 'C%' AS is_return,
                 trim(StockCode) IN ({codes}) OR regexp_full_match(trim(StockCode), '^gift_\\d+_\\d+$') AS np,
                 UnitPrice <= 0 AS npp,
                 row_number() OVER (PARTITION BY InvoiceNo, StockCode, Description, Quantity, InvoiceDate,
                                    UnitPrice, CustomerID, Country) > 1 AS dup
          FROM read_parquet(?)),
        g AS (SELECT *, NOT np AND NOT npp AND (CASE WHEN is_return THEN abs(Quantity) ELSE Quantity END) <= 0 AS npq
              FROM f),
        h AS (SELECT *, NOT (np OR npp OR npq OR dup) AS ok FROM g)
        SELECT count(*),
               count(*) FILTER (WHERE np), count(*) FILTER (WHERE NOT np AND npp),
               count(*) FILTER (WHERE npq), count(*) FILTER (WHERE NOT (np OR npp OR npq) AND dup),
               count(*) FILTER (WHERE ok), count(*) FILTER (WHERE ok AND is_return),
               count(*) FILTER (WHERE ok AND CustomerID IS NULL),
               count(DISTINCT InvoiceNo) FILTER (WHERE ok AND NOT is_return),
               count(DISTINCT InvoiceNo) FILTER (WHERE ok AND NOT is_return AND CustomerID IS NULL),
               count(DISTINCT StockCode) FILTER (WHERE ok AND NOT is_return),
               count(DISTINCT InvoiceNo), count(*) FILTER (WHERE is_return),
               count(DISTINCT CustomerID) FILTER (WHERE ok)
        FROM h""", [or_file])[0]
    keys = ["rows", "non_product_code", "non_positive_price", "non_positive_quantity", "duplicate_line",
            "accepted", "returns", "anonymous", "purchase_baskets", "anonymous_baskets", "catalog_items",
            "invoices", "c_rows", "customers"]
    return dict(zip(keys, row))


def test_online_retail_source_matches_its_readme(or_expected):
    assert or_expected["rows"] == 541_909
    assert or_expected["invoices"] == 25_900
    assert or_expected["c_rows"] == 9_288


def test_online_retail_counts(or_store, or_expected, counts):
    store, res = or_store
    assert res.rows_read == 541_909
    assert res.accepted + sum(res.rejected.values()) == 541_909
    expected = {k: or_expected[k] for k in ("non_product_code", "non_positive_price", "non_positive_quantity",
                                            "duplicate_line") if or_expected[k]}
    assert res.rejected == expected
    assert res.accepted == or_expected["accepted"]
    c = counts(store)
    assert c["events"] == res.accepted and c["rejects"] == sum(res.rejected.values()) and c["runs"] == 1
    assert c["catalog"] == res.catalog_rows == or_expected["catalog_items"]


def test_online_retail_returns_and_anonymous_baskets(or_store, or_expected):
    store, _ = or_store
    with duckdb.connect(str(store), read_only=True) as con:
        by_event = dict(con.execute("SELECT event, count(*) FROM events GROUP BY 1").fetchall())
        c_not_return = con.execute("SELECT count(*) FROM events WHERE basket_id LIKE 'C%' AND event <> 'return'").fetchone()[0]
        neg = con.execute("SELECT count(*) FROM events WHERE quantity <= 0").fetchone()[0]
        anonymous = con.execute("SELECT count(*) FROM events WHERE user_id IS NULL").fetchone()[0]
    assert by_event == {"purchase": or_expected["accepted"] - or_expected["returns"], "return": or_expected["returns"]}
    assert or_expected["returns"] > 8_000 and c_not_return == 0 and neg == 0
    assert anonymous == or_expected["anonymous"] > 100_000

    data = InteractionData.from_store(store)
    assert data.n_baskets == or_expected["purchase_baskets"]
    assert not any(b.startswith("C") for b in data.baskets.ids.tolist())
    assert int((data.basket_user == -1).sum()) == or_expected["anonymous_baskets"] > 1_000
    assert data.n_users == or_expected["customers"] > 4_300
    assert int(data.item_returns.sum()) == or_expected["returns"]
    heart = data.items.index("85123A")
    assert data.title(heart) == "WHITE HANGING HEART T-LIGHT HOLDER"


def test_online_retail_as_csv_reads_the_same_events(or_file, or_store, ingest, tmp_path):
    """The CSV reader on real data (quotes, doubled quotes, text dates) agrees with Parquet."""
    csv = tmp_path / "online_retail.csv"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_parquet('{or_file}')) TO '{csv}' (HEADER)")
    res = ingest(csv, preset="online-retail")
    store, parquet_res = or_store
    assert (res.rows_read, res.accepted, res.rejected) == (parquet_res.rows_read, parquet_res.accepted,
                                                           parquet_res.rejected)
    cols = "user_id, item_id, event, ts, basket_id, quantity, value, price, source_row"
    with duckdb.connect(str(tmp_path / "store.duckdb"), read_only=True) as con:
        con.execute(f"ATTACH '{store}' AS p (READ_ONLY)")
        diff = con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM events EXCEPT ALL SELECT {cols} FROM p.events)").fetchone()[0]
        titles = con.execute("SELECT count(*) FROM catalog c JOIN p.catalog d USING (item_id) "
                             "WHERE c.title IS DISTINCT FROM d.title").fetchone()[0]
    assert diff == 0 and titles == 0


def test_online_retail_ids_differing_only_in_case_are_counted_then_merged(or_file, or_store, ingest,
                                                                          tmp_path):
    """85123A and 85123a are one product sold under two spellings: the default keeps them apart and says
    so; item_id_case=upper makes them one item and rejects exactly the same rows."""
    store, kept = or_store
    with duckdb.connect(str(store), read_only=True) as con:
        twins = sorted(g for (g,) in con.execute(
            "SELECT list(DISTINCT item_id ORDER BY item_id) FROM events GROUP BY upper(item_id) "
            "HAVING count(DISTINCT item_id) > 1").fetchall())
    assert ["85123A", "85123a"] in kept.case_twins
    assert sorted(kept.case_twins) == twins and len(twins) > 100

    merged = ingest(or_file, preset="online-retail", item_id_case="upper", store=tmp_path / "upper.duckdb")
    assert (merged.accepted, merged.rejected, merged.case_twins) == (kept.accepted, kept.rejected, [])
    with duckdb.connect(str(tmp_path / "upper.duckdb"), read_only=True) as con:
        heart = con.execute("SELECT count(*) FROM events WHERE item_id = '85123A'").fetchone()[0]
        items = con.execute("SELECT count(DISTINCT item_id) FROM events").fetchone()[0]
        lower_ids = con.execute("SELECT count(*) FROM events WHERE item_id <> upper(item_id)").fetchone()[0]
    with duckdb.connect(str(store), read_only=True) as con:
        heart_kept = con.execute("SELECT count(*) FROM events WHERE upper(item_id) = '85123A'").fetchone()[0]
        items_kept = con.execute("SELECT count(DISTINCT item_id) FROM events").fetchone()[0]
    assert heart == heart_kept and lower_ids == 0
    assert items == items_kept - sum(len(g) - 1 for g in twins)


# ---------------------------------------------------------------- sequences

def _parquet_sequences(path: str) -> dict[str, list[str]]:
    rows = _sql("SELECT user_id::VARCHAR, list(item_id::VARCHAR ORDER BY position) FROM read_parquet(?) GROUP BY 1", [path])
    return dict(rows)


def _check_sequences(data: InteractionData, expected: dict[str, list[str]]) -> None:
    assert data.n_users == len(expected)
    ids = data.items.ids
    for u, user in enumerate(data.users.ids.tolist()):
        got = ids[data.sequence(u)].tolist()
        assert got == expected[user], user


def test_amazon_beauty(shared_file, ingest, tmp_path):
    events = str(shared_file("amazon_beauty", "interactions.parquet"))
    items = str(shared_file("amazon_beauty", "items.parquet"))
    res = ingest(events, preset="amazon-beauty")
    assert (res.rows_read, res.accepted, res.rejected) == (198_502, 198_502, {})
    assert res.catalog_rows == 12_101 and res.catalog_rejected == {}

    store = tmp_path / "store.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        # Titles are stored trimmed (4 source titles end in a space).
        mismatched = con.execute("SELECT count(*) FROM catalog c FULL JOIN read_parquet(?) i "
                                 "ON c.item_id = i.item_id::VARCHAR WHERE c.title IS DISTINCT FROM trim(i.title)",
                                 [items]).fetchone()[0]
        untitled = con.execute("SELECT count(*) FROM catalog WHERE title IS NULL").fetchone()[0]
    assert mismatched == 0 and untitled == 7

    data = InteractionData.from_store(store)
    assert (data.n_users, data.n_items, data.n_baskets) == (22_363, 12_101, 0)
    _check_sequences(data, _parquet_sequences(events))
    lengths = np.diff(data.seq_indptr)
    assert lengths.min() == 5 and lengths.max() == 204


def test_sasrec_games(shared_file, ingest, tmp_path):
    events = str(shared_file("sasrec_games", "interactions.parquet"))
    res = ingest(events, preset="sasrec-games")
    assert (res.rows_read, res.accepted, res.rejected, res.catalog_rows) == (287_107, 287_107, {}, 0)
    data = InteractionData.from_store(tmp_path / "store.duckdb")
    assert (data.n_users, data.n_items) == (31_013, 23_715)
    _check_sequences(data, _parquet_sequences(events))


def test_instacart(shared_file, ingest, tmp_path):
    lines = str(shared_file("instacart", "order_products_sample.parquet"))
    orders = str(shared_file("instacart", "orders_sample.parquet"))
    products = str(shared_file("instacart", "products.parquet"))
    aisles = str(shared_file("instacart", "aisles.parquet"))
    departments = str(shared_file("instacart", "departments.parquet"))
    res = ingest(lines, preset="instacart")
    assert (res.rows_read, res.accepted, res.rejected) == (9_994, 9_994, {})
    assert res.catalog_rows == 49_688

    store = tmp_path / "store.duckdb"
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT basket_id), count(DISTINCT user_id), count(user_id) FROM events").fetchone() == (976, 974, 9_994)
        wrong_user = con.execute("SELECT count(*) FROM events e JOIN read_parquet(?) o ON e.basket_id = o.order_id::VARCHAR "
                                 "WHERE e.user_id IS DISTINCT FROM o.user_id::VARCHAR", [orders]).fetchone()[0]
        wrong_category = con.execute(
            "SELECT count(*) FROM catalog c FULL JOIN (SELECT p.product_id::VARCHAR AS item_id, p.product_name, "
            "d.department || ' > ' || a.aisle AS category FROM read_parquet(?) p JOIN read_parquet(?) a USING (aisle_id) "
            "JOIN read_parquet(?) d USING (department_id)) x USING (item_id) "
            "WHERE c.category IS DISTINCT FROM x.category OR c.title IS DISTINCT FROM trim(x.product_name)",
            [products, aisles, departments]).fetchone()[0]
        example = con.execute("SELECT title, category FROM catalog WHERE item_id = '1'").fetchone()
    assert wrong_user == 0 and wrong_category == 0
    assert example == ("Chocolate Sandwich Cookies", "snacks > cookies cakes")

    data = InteractionData.from_store(store)
    assert (data.n_baskets, data.n_items, data.n_users) == (976, 49_688, 974)
    assert data.basket_items.nnz == 9_994
    # No timestamps: each user's sequence follows add_to_cart_order within the basket.
    user = data.users.index(_one("SELECT user_id::VARCHAR FROM read_parquet(?) WHERE order_id = 2", [orders]))
    expected = [r[0] for r in _sql("SELECT product_id::VARCHAR FROM read_parquet(?) WHERE order_id = 2 "
                                   "ORDER BY add_to_cart_order", [lines])]
    assert data.items.ids_of(data.sequence(user)) == expected
