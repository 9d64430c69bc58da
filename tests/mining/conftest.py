"""Fixtures for the mining tests: real Online Retail baskets and mlxtend references, built once."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
ONLINE_RETAIL = SHARED_DATA / "online_retail" / "online_retail.parquet"


@pytest.fixture(scope="session")
def retail(tmp_path_factory: pytest.TempPathFactory):
    """InteractionData of the Online Retail store (ingested once with the `online-retail` preset)."""
    if not ONLINE_RETAIL.is_file():
        pytest.skip(f"shared dataset not available: {ONLINE_RETAIL}")
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.data.mapping import resolve_mapping

    store = tmp_path_factory.mktemp("mining_store") / "or.duckdb"
    ingest_file(str(ONLINE_RETAIL), resolve_mapping("online-retail"), store)
    return InteractionData.from_store(store)


@pytest.fixture(scope="session")
def baskets(retail) -> sp.csr_matrix:
    """Online Retail purchase baskets × items, 0/1."""
    from itemaffinity.mining import transactions

    return transactions(retail)


@pytest.fixture(scope="session")
def mlxtend_itemsets(baskets) -> Callable[[float], pd.DataFrame]:
    """mlxtend fpgrowth on the baskets (a sparse bool DataFrame), memoised per min_support."""
    from mlxtend.frequent_patterns import fpgrowth

    frame = pd.DataFrame.sparse.from_spmatrix(baskets.astype(bool))
    cache: dict[float, pd.DataFrame] = {}

    def get(min_support: float) -> pd.DataFrame:
        if min_support not in cache:
            cache[min_support] = fpgrowth(frame, min_support=min_support)
        return cache[min_support]

    return get


def _csr_from_sets(transactions: list[set[int]] | list[list[int]], n_items: int) -> sp.csr_matrix:
    rows = [i for i, t in enumerate(transactions) for _ in t]
    cols = [j for t in transactions for j in t]
    return sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(len(transactions), n_items))


@pytest.fixture(scope="session")
def csr_from_sets() -> Callable[..., sp.csr_matrix]:
    """csr_from_sets([{0, 1}, {2}], n_items): a 0/1 transactions × items CSR from item index sets."""
    return _csr_from_sets
