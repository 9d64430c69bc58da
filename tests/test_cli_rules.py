"""The rules and itemsets commands end to end: real baskets, filters, exports, bad parameters."""

from __future__ import annotations

import json

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from itemaffinity.errors import InputError

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "leverage", "conviction",
                "antecedent_support", "consequent_support"]


@pytest.fixture(scope="module")
def two_column(tmp_path_factory, shared_file):
    """Real Online Retail purchase lines reduced to a plain two-column basket_id,item_id file."""
    t = pq.read_table(shared_file("online_retail", "online_retail.parquet"), columns=["InvoiceNo", "StockCode"])
    t = t.slice(0, 120_000).rename_columns(["order", "sku"])
    path = tmp_path_factory.mktemp("two") / "lines.csv"
    pacsv.write_csv(t, path)
    return path


def test_rules_from_a_two_column_file(two_column, cli, tmp_path) -> None:
    store = tmp_path / "s.duckdb"
    out = tmp_path / "rules.parquet"
    res = cli("rules", two_column, "--col", "basket_id=order", "--col", "item_id=sku", "--store", store,
              "--min-support", "0.02", "--min-confidence", "0.3", "--out", out, "--json")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    table = pq.read_table(out)
    assert table.column_names == RULE_COLUMNS
    assert table.num_rows == payload["count"] > 0
    rows = table.to_pylist()
    for r in rows:
        assert r["confidence"] >= 0.3 and r["support"] >= 0.02
        assert r["confidence"] == pytest.approx(r["support"] / r["antecedent_support"])
        assert r["lift"] == pytest.approx(r["confidence"] / r["consequent_support"])
        assert not set(r["antecedent"]) & set(r["consequent"])
    lifts = [r["lift"] for r in rows]
    assert lifts == sorted(lifts, reverse=True)
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM rules").fetchone()[0] == table.num_rows
        assert con.execute("SELECT count(*) FROM itemsets").fetchone()[0] > 0


def test_item_filter_and_csv_export(or_store, cli, tmp_path) -> None:
    store, _ = or_store
    out = tmp_path / "r.csv"
    res = cli("rules", "--store", store, "--min-support", "0.01", "--item", "85123A", "--out", out, "--json")
    assert res.returncode == 0, res.stderr
    rules = json.loads(res.stdout)["rules"]
    assert rules and all("85123A" in r["antecedent"] + r["consequent"] for r in rules)
    header = out.read_text().splitlines()[0]
    assert header.replace('"', "").split(",") == RULE_COLUMNS
    # the terminal preview names each product by its title beside its code
    res = cli("rules", "--store", store, "--min-support", "0.01", "--item", "85123A", "--limit", "1",
              env={"COLUMNS": "200"})
    assert res.returncode == 0 and "85123A WHITE HANGING HEART T-LIGHT HOLDER" in res.stdout, res.stdout
    res = cli("rules", "--store", store, "--min-support", "0.01", "--min-lift", "10", "--limit", "5", "--json")
    got = json.loads(res.stdout)["rules"]
    assert len(got) == 5 and all(r["lift"] >= 10 for r in got)


def test_a_query_leaves_the_stores_rules_alone_unless_saved(or_store, cli, tmp_path) -> None:
    """The first mining of a store saves its tables (what the service serves); a later query such as --item X shows
    its rules and leaves them, and --save replaces them."""
    import shutil

    import duckdb

    store = tmp_path / "copy.duckdb"
    shutil.copy(or_store[0], store)
    with duckdb.connect(str(store)) as con:  # as ingested: other tests may have mined the shared store
        con.execute("DROP TABLE IF EXISTS rules; DROP TABLE IF EXISTS itemsets")
    count = lambda: duckdb.connect(str(store), read_only=True).execute("SELECT count(*) FROM rules").fetchone()[0]  # noqa: E731
    first = json.loads(cli("rules", "--store", store, "--min-support", "0.01", "--json").stdout)
    assert first["saved"] and count() == first["count"] > 100
    query = cli("rules", "--store", store, "--min-support", "0.01", "--item", "85123A", "--limit", "1")
    assert query.returncode == 0 and "the store's own rules table is unchanged (--save replaces it" in query.stdout
    assert count() == first["count"]
    saved = json.loads(cli("rules", "--store", store, "--min-support", "0.01", "--item", "85123A", "--save",
                           "--json").stdout)
    assert saved["saved"] and count() == saved["count"] < first["count"]


def test_item_filter_folds_the_id_as_the_store_does(two_column, cli, tmp_path) -> None:
    """In a store ingested with --item-id-case upper, `--item 85123a` is the heart holder of the stored spelling."""
    store = tmp_path / "folded.duckdb"
    assert cli("ingest", two_column, "--col", "basket_id=order", "--col", "item_id=sku", "--item-id-case", "upper",
               "--store", store).returncode == 0
    for command in ("rules", "itemsets"):
        found = [json.loads(cli(command, "--store", store, "--min-support", "0.01", "--item", spelling, "--json",
                                "--no-save").stdout)[command] for spelling in ("85123A", "85123a")]
        assert found[0] and found[1] == found[0]


def test_itemsets_command(or_store, cli, tmp_path) -> None:
    store, _ = or_store
    res = cli("itemsets", "--store", store, "--min-support", "0.02", "--max-len", "2", "--json")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    sets = payload["itemsets"]
    assert all(len(s["items"]) <= 2 and s["support"] >= 0.02 for s in sets)
    assert max(len(s["items"]) for s in sets) == 2
    supports = [s["support"] for s in sets]
    assert supports == sorted(supports, reverse=True)


@pytest.mark.parametrize("args, message", [
    (["--min-support", "0"], "--min-support must be in (0, 1]"),
    (["--min-support", "1.5"], "--min-support must be in (0, 1]"),
    (["--min-support", "-0.1"], "--min-support must be in (0, 1]"),
    (["--max-len", "0"], "--max-len must be at least 1"),
    (["--item", "NO-SUCH-ITEM"], "unknown item"),
    (["--min-confidence", "2"], "--min-confidence must be in [0, 1]"),
    (["--out", "rules.xlsx"], "--out must end in .parquet or .csv"),
])
def test_bad_parameters_exit_2(args, message, or_store, cli, tmp_path) -> None:
    store, _ = or_store
    res = cli("rules", "--store", store, *[a if a != "rules.xlsx" else str(tmp_path / a) for a in args])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in res.stderr


def test_mine_rejects_bad_parameters_in_the_library(or_store) -> None:
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.mining.export import mine

    data = InteractionData.from_store(or_store[0])
    with pytest.raises(InputError):
        mine(data, min_support=0.0, max_len=None)
    sets, rules, kept = mine(data, min_support=0.02, max_len=3, item_id="85123A")
    assert len(kept) and all(data.items.index("85123A") in sets.itemset(int(k)) for k in kept)
