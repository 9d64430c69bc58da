"""Time ingest of Online Retail plus the InteractionData build (issue: ≤ 15 s on 2 cores).

Usage: python benchmarks/bench_ingest.py [--data PATH] [--repeat N] [--text-prices]
Each repeat ingests into a fresh store file, then builds InteractionData from it. --text-prices ingests a CSV copy
whose prices are text with a currency sign ("£2.55"), as shop exports write them: every price goes through the
text-to-number parsing instead of a numeric column's cast.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb

from itemaffinity.data.ingest import ingest_file
from itemaffinity.data.interactions import InteractionData
from itemaffinity.data.mapping import resolve_mapping

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=str(ROOT / "data" / "online_retail.parquet"))
    ap.add_argument("--preset", default="online-retail")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--text-prices", action="store_true", help="A CSV copy of --data with prices written as '£2.55'.")
    args = ap.parse_args()
    mapping = resolve_mapping(args.preset)
    rows = []
    text_copy = tempfile.TemporaryDirectory()
    source = args.data
    if args.text_prices:
        source = str(Path(text_copy.name) / "text_prices.csv")
        duckdb.sql(f"""COPY (SELECT * REPLACE ('£' || CAST(UnitPrice AS VARCHAR) AS UnitPrice)
                        FROM '{args.data}') TO '{source}' (HEADER)""")
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "bench.duckdb"
            t0 = time.perf_counter()
            res = ingest_file(source, mapping, store)
            t1 = time.perf_counter()
            data = InteractionData.from_store(store)
            t2 = time.perf_counter()
            rows.append((t1 - t0, t2 - t1, t2 - t0))
            print(f"run {i + 1}: ingest {t1 - t0:.2f}s ({res.rows_read:,} rows, {res.accepted:,} accepted)  "
                  f"InteractionData {t2 - t1:.2f}s ({data.n_baskets:,} baskets × {data.n_items:,} items)  "
                  f"total {t2 - t0:.2f}s")
    best = min(r[2] for r in rows)
    print(f"best total: {best:.2f}s  (goal ≤ 15 s: {'met' if best <= 15 else 'NOT met'})")
    text_copy.cleanup()


if __name__ == "__main__":
    main()
