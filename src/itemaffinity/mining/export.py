"""Mining results as tables of external ids: into the store, and out to CSV/Parquet files.

Inside, mining works on item indices; these functions are the edge where indices become the
item ids (and titles) people read.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from itemaffinity.data.vocab import Vocabulary
from itemaffinity.errors import InputError
from itemaffinity.mining.itemsets import Itemsets
from itemaffinity.mining.pairs import PairStats
from itemaffinity.mining.rules import Rules

RULE_COLUMNS = ("antecedent", "consequent", "support", "confidence", "lift", "leverage", "conviction",
                "antecedent_support", "consequent_support")


def _id_lists(items: Vocabulary, lists: pa.ListArray) -> pa.ListArray:
    ids = pa.array(items.ids_of(np.asarray(lists.values.to_numpy(zero_copy_only=False), dtype=np.int64)), pa.string())
    return pa.ListArray.from_arrays(lists.offsets, ids)


def rules_table(rules: Rules, items: Vocabulary) -> pa.Table:
    """One row per rule: antecedent and consequent as lists of item ids, then the metrics."""
    t = rules.to_arrow()
    cols = {"antecedent": _id_lists(items, t["antecedent"].combine_chunks()),
            "consequent": _id_lists(items, t["consequent"].combine_chunks())}
    cols.update({c: t[c] for c in RULE_COLUMNS[2:]})
    return pa.table(cols)


def itemsets_table(itemsets: Itemsets, items: Vocabulary) -> pa.Table:
    """One row per frequent itemset: items (list of ids), support, count, length."""
    ids = np.arange(len(itemsets))
    members, lengths = itemsets.members(ids)
    offsets = np.zeros(len(ids) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    lists = pa.ListArray.from_arrays(pa.array(offsets), pa.array(items.ids_of(members), pa.string()))
    return pa.table({"items": lists, "support": itemsets.support, "count": itemsets.counts,
                     "length": lengths.astype(np.int32)})


def pairs_table(pairs: PairStats, items: Vocabulary) -> pa.Table:
    """Pair statistics with item ids in place of indices (every measure as a column)."""
    t = pairs.to_arrow()
    return t.set_column(0, "item_a", pa.array(items.ids_of(pairs.item_a), pa.string())) \
            .set_column(1, "item_b", pa.array(items.ids_of(pairs.item_b), pa.string()))


def sort_rules(table: pa.Table, by: str = "lift") -> pa.Table:
    if by not in table.column_names:
        raise InputError(f"cannot sort by {by!r}; columns: {', '.join(table.column_names)}")
    return table.sort_by([(by, "descending"), ("support", "descending")])


def write_store_tables(store_path: str | Path, tables: dict[str, pa.Table]) -> None:
    """Replace the named tables in the store, all in one transaction."""
    with duckdb.connect(str(store_path)) as con:
        con.execute("BEGIN TRANSACTION")
        for name, table in tables.items():
            con.register("_t", table)
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _t")
            con.unregister("_t")
        con.execute("COMMIT")


def export_table(table: pa.Table, path: str | Path) -> Path:
    """Write to .parquet or .csv (lists become JSON arrays in CSV)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise InputError(f"--out must end in .parquet or .csv, got {path.name!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        pq.write_table(table, path)
    else:
        cols = {}
        for name in table.column_names:
            col = table[name]
            if pa.types.is_list(col.type):
                cols[name] = pa.array([json.dumps(v) for v in col.to_pylist()], pa.string())
            else:
                cols[name] = col
        pacsv.write_csv(pa.table(cols), path)
    return path


def mine(data, *, min_support: float, max_len: int | None, min_confidence: float = 0.0,
         min_lift: float | None = None, item_id: str | None = None, category: str | None = None,
         rules_wanted: bool = True) -> tuple[Itemsets, Rules | None, np.ndarray]:
    """Itemsets (and rules) of `data`'s baskets with the CLI's filters, in item indices.

    Args:
        data: InteractionData.
        min_support: in (0, 1].
        max_len: largest itemset, None for no limit (≥ 1).
        min_confidence, min_lift: rule filters.
        item_id: keep only itemsets/rules that hold this item (either side of a rule).
        category: keep only rules whose consequent items all lie in this category (path prefix).

    Returns:
        (itemsets, rules or None, kept itemset ids).

    Raises:
        InputError: a parameter out of range or an unknown item.
    """
    from itemaffinity.mining import association_rules, frequent_itemsets, transactions

    if not 0.0 < min_support <= 1.0:
        raise InputError(f"--min-support must be in (0, 1], got {min_support}")
    if max_len is not None and max_len < 1:
        raise InputError(f"--max-len must be at least 1, got {max_len}")
    if not 0.0 <= min_confidence <= 1.0:
        raise InputError(f"--min-confidence must be in [0, 1], got {min_confidence}")
    item_idx = None
    if item_id is not None:
        item_idx = data.items.index(item_id)
        if item_idx < 0:
            raise InputError(f"unknown item {item_id!r}: not in the store")
    x = transactions(data)
    sets = frequent_itemsets(x, min_support, max_len=max_len)
    kept = np.arange(len(sets)) if item_idx is None else sets.containing(item_idx)
    if not rules_wanted:
        return sets, None, kept
    rules = association_rules(sets, min_support=min_support, min_confidence=min_confidence, min_lift=min_lift)
    keep = np.ones(len(rules), dtype=bool)
    if item_idx is not None:
        keep &= np.isin(rules.itemset, kept)
    if category:
        in_cat = np.array([c is not None and str(c).startswith(category) for c in data.categories])
        members, lengths = sets.members(rules.consequent)
        owner = np.repeat(np.arange(len(rules)), lengths)
        outside = np.bincount(owner, weights=~in_cat[members], minlength=len(rules))
        keep &= outside == 0
    return sets, rules.select(keep) if not keep.all() else rules, kept
