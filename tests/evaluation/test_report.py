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
    """A catalog ingested alone reads no event rows: its run says so (kind catalog) and counts its products."""
    import duckdb

    from itemaffinity.data.ingest import ingest_catalog
    from itemaffinity.data.mapping import Mapping
    from itemaffinity.evaluation.report import dataset_sections

    store = tmp_path / "store.duckdb"
    ingest(write("e.csv", "order,sku\no1,A\no1,B\n"), cols=["basket_id=order", "item_id=sku"])
    ingest_catalog(str(write("new.csv", "item_id,title\nN1,New lamp\nN2,New shade\n")), Mapping(), store)
    report = Report("test")
    with duckdb.connect(str(store), read_only=True) as con:
        dataset_sections(report, con, InteractionData.from_store(store))
    runs = report.sections[0].html.split("<h3>Ingest runs</h3>")[1]
    rows = [r.split("</tr>")[0] for r in runs.split("<tr>")[2:]]
    assert "<td>ingest</td>" in rows[0] and ">2<" in rows[0]  # two event rows read
    assert "<td>catalog</td>" in rows[1] and "new.csv" in rows[1] and rows[1].count(">0<") == 2 and ">2<" in rows[1]
