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
