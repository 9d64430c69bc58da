"""Fixtures for the REST service tests: one real Online Retail store, live servers on copies of it.

Servers are real `python -m itemaffinity.service` processes bound to 127.0.0.1 on free ports,
started together (they load in parallel) and stopped at the end of the session.
"""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from svc_support import API_KEY, ONLINE_RETAIL, Server, StoreInfo, build_store, running


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> StoreInfo:
    if not ONLINE_RETAIL.is_file():
        pytest.skip(f"bundled Online Retail data not found: {ONLINE_RETAIL}")
    return build_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def servers(store: StoreInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """main: read-write with a key (TF-IDF search); rebuild: its own copy, for rebuild tests (TF-IDF search too);
    nokeys: two read-only workers and no key configured."""
    base = tmp_path_factory.mktemp("servers")
    started = {
        "main": Server(store.copy(base / "main"), semantic="tfidf"),
        "rebuild": Server(store.copy(base / "rebuild"), semantic="tfidf"),
        "nokeys": Server(store.copy(base / "nokeys"), api_keys=None, workers=2),
    }
    with running(*started.values()):
        yield started


@pytest.fixture(scope="session")
def api(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=servers["main"].url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def writer(servers: dict[str, Server]) -> Iterator[httpx.Client]:
    """A client of the main server that sends the API key."""
    with httpx.Client(base_url=servers["main"].url, timeout=60, headers={"X-API-Key": API_KEY}) as client:
        yield client
