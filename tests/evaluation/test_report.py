"""The HTML report's tables."""

from __future__ import annotations

import pyarrow as pa

from itemaffinity.data.interactions import InteractionData
from itemaffinity.evaluation.report import Report, mining_section
from itemaffinity.mining import PairStats
from itemaffinity.mining.export import pairs_table


def test_most_frequent_pairs_hold_only_pairs_bought_together() -> None:
    """The analysis stores text neighbours beside co-purchase partners; a store with few co-purchase pairs
    listed look-alikes bought together 0 times among its "most frequent pairs"."""
    events = pa.table({"basket_id": ["b1", "b1", "b2"], "item_id": ["A", "B", "C"]})
    catalog = pa.table({"item_id": ["A", "B", "C"], "title": ["Anvil", "Bellows", "Anvil stand"]})
    data = InteractionData.from_tables(events, catalog)
    a, b, c = (data.items.index(i) for i in "ABC")
    pairs = pairs_table(PairStats([a, a], [b, c], [1, 0], [1, 1], [1, 1], 2, directed=True), data.items)  # A–C: text
    no_rules = {side: pa.array([], pa.list_(pa.string())) for side in ("antecedent", "consequent")}
    no_rules.update({m: pa.array([], pa.float64()) for m in ("support", "confidence", "lift", "leverage", "conviction")})
    rules = pa.table(no_rules)
    report = Report("test")
    mining_section(report, data, rules, pairs)
    table = report.sections[0].html.split("<h3>Most frequent pairs</h3>")[1]
    assert "Bellows" in table and "Anvil stand" not in table


def test_the_dataset_section_lists_a_catalog_alone_as_its_own_kind_of_run(write, ingest, tmp_path) -> None:
    """A catalog ingested alone reads no event rows: its run says so (kind catalog) and counts its products, and
    its rejected rows are listed as a catalog's, not as a share of the event rows read."""
    import duckdb

    from itemaffinity.data.ingest import ingest_catalog
    from itemaffinity.data.mapping import Mapping
    from itemaffinity.evaluation.report import dataset_sections

    store = tmp_path / "store.duckdb"
    ingest(write("e.csv", "order,sku\no1,A\no1,B\n"), cols=["basket_id=order", "item_id=sku"])
    ingest_catalog(str(write("new.csv", "item_id,title\nN1,New lamp\nN2,New shade\n,No id\n")), Mapping(), store)
    report = Report("test")
    with duckdb.connect(str(store), read_only=True) as con:
        dataset_sections(report, con, InteractionData.from_store(store))
    runs = report.sections[0].html.split("<h3>Ingest runs</h3>")[1]
    rows = [r.split("</tr>")[0] for r in runs.split("<tr>")[2:]]
    assert "<td>ingest</td>" in rows[0] and ">2<" in rows[0]  # two event rows read
    assert "<td>catalog</td>" in rows[1] and "new.csv" in rows[1] and rows[1].count(">0<") == 2 and ">2<" in rows[1]
    quality = report.sections[1].html  # a catalog's bad row is not a share of the event rows read
    row = next(r for r in quality.split("<tr>") if "missing_item_id" in r)
    assert "<td>catalog</td>" in row and "<td>—</td>" in row and "%" not in row


def test_the_dataset_section_says_when_nothing_was_rejected_and_there_are_no_times(write, ingest, tmp_path) -> None:
    import duckdb

    from itemaffinity.evaluation.report import dataset_sections

    store = tmp_path / "store.duckdb"
    ingest(write("e.csv", "order,sku\no1,A\no1,B\n"), cols=["basket_id=order", "item_id=sku"])
    report = Report("test")
    with duckdb.connect(str(store), read_only=True) as con:
        dataset_sections(report, con, InteractionData.from_store(store))
    assert "none: the file order is the time order" in report.sections[0].html
    assert "first event" not in report.sections[0].html
    assert "No row was rejected." in report.sections[1].html and "<table" not in report.sections[1].html


def test_top_rules_show_each_set_of_products_once_and_no_product_everywhere() -> None:
    """Five herb markers bought together make every top rule by lift; the report keeps one rule per set of products
    and each product in at most two rules, so other associations get their rows."""
    from itertools import permutations

    from itemaffinity.evaluation.report import diverse_rules

    herbs = ["thyme", "rosemary", "parsley", "basil", "mint"]
    ranked = [{"antecedent": [a], "consequent": [c], "lift": 70.0 - k * 0.1}
              for k, (a, c) in enumerate(permutations(herbs, 2))]
    ranked += [{"antecedent": ["teacup pink"], "consequent": ["teacup green"], "lift": 18.0},
               {"antecedent": ["teacup green"], "consequent": ["teacup pink"], "lift": 18.0},
               {"antecedent": ["lunch box"], "consequent": ["lunch bag"], "lift": 9.0}]
    kept = diverse_rules(ranked, 25)
    sets = [frozenset(r["antecedent"] + r["consequent"]) for r in kept]
    assert len(sets) == len(set(sets))  # thyme → rosemary and rosemary → thyme: one of them
    assert all(sum(h in s for s in sets) <= 2 for h in herbs)
    assert kept[0]["antecedent"] == ["thyme"] and kept[-2:] == [ranked[-3], ranked[-1]]
    assert len(kept) == 4 + 2  # four herb pairs (greedy, by lift) under the cap of two per herb; teacups, lunch box
    assert len(diverse_rules(ranked, 3)) == 3


def test_tables_write_missing_and_unbounded_figures_as_readers_expect() -> None:
    from itemaffinity.evaluation.report import table_html

    html = table_html(["diversity", "conviction", "spend"], [[float("nan"), float("inf"), 1234.5]], {0, 1, 2})
    assert [c.split("<")[0] for c in html.split('<td class="num">')[1:]] == ["—", "∞", "1,234"]


def test_a_log_without_orders_is_reported_by_customer(ingest, tmp_path, shared_file) -> None:
    """Amazon Beauty's reviews have no orders: the best sellers are those most customers bought (not every item at
    0 baskets in id order), the pairs and rules are of customers, and a title of hundreds of characters is cut."""
    import duckdb
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from itemaffinity.analysis import mine_tables
    from itemaffinity.evaluation.report import TITLE_CHARS, dataset_sections

    t = pq.read_table(shared_file("amazon_beauty", "interactions.parquet"))
    t = t.filter(pc.less(t["user_id"], 3001))
    pq.write_table(t, tmp_path / "reviews.parquet")
    store = tmp_path / "beauty.duckdb"
    ingest(tmp_path / "reviews.parquet", preset="amazon-beauty", store=store,
           catalog=shared_file("amazon_beauty", "items.parquet"))
    data = InteractionData.from_store(store)
    tables = mine_tables(str(store), data)
    report = Report("test")
    with duckdb.connect(str(store), read_only=True) as con:
        dataset_sections(report, con, data)
    customers = t.to_pandas().groupby("item_id").user_id.nunique().sort_values(ascending=False, kind="stable")
    best = report.sections[2].html.split("Most frequently bought items")[1]
    first = [r.split("</td>")[0].split(">")[-1] for r in best.split("<tr>")[2:5]]
    assert first == [str(i) for i in customers.index[:3]]
    mining_section(report, data, tables["rules"], tables["pairs"])
    pairs = report.sections[-1].html.split("<h3>Most frequent pairs</h3>")[1]
    assert "bought by the same customer" in pairs and "<th>customers</th>" in pairs and "baskets" not in pairs
    assert "if a customer bought" in report.sections[-1].html
    cells = [c.split("</td>")[0] for c in pairs.split("<td>")[1:]]
    assert max(map(len, cells)) <= TITLE_CHARS + 1 and any(c.endswith("…") for c in cells)
