"""Fixtures for the browser tests: a live server over the Online Retail test store and headless
Chromium (the system's /usr/bin/chromium; Playwright never downloads a browser here).

Screenshots go to $ITEMAFFINITY_E2E_SCREENSHOTS when set, else to a folder under pytest's tmp dir.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))

from svc_support import ONLINE_RETAIL, Server, StoreInfo, build_store, running  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def e2e_store(tmp_path_factory: pytest.TempPathFactory) -> StoreInfo:
    if not ONLINE_RETAIL.is_file():
        pytest.skip(f"bundled Online Retail data not found: {ONLINE_RETAIL}")
    return build_store(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def server(e2e_store: StoreInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(e2e_store.copy(tmp_path_factory.mktemp("e2e-server")), semantic="tfidf")
    with running(s):
        # Search ranks by the text layer once it has loaded (by sales before): the pages are tested with it.
        deadline = time.monotonic() + 120
        while httpx.get(s.url + "/health").json()["semantic"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.2)
        yield s


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ["ITEMAFFINITY_E2E_SCREENSHOTS"]) if os.environ.get("ITEMAFFINITY_E2E_SCREENSHOTS") \
        else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, server):
    """A fresh page; fails the test on script errors or on any request leaving 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1300, "height": 1000}, base_url=server.url)
    pg = context.new_page()
    errors: list[str] = []
    outside: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # A 404 the page handles (unknown product) is logged by the browser as "Failed to load resource".
    pg.on("console", lambda m: errors.append(m.text)
          if m.type == "error" and not m.text.startswith("Failed to load resource") else None)
    pg.on("request", lambda r: outside.append(r.url)
          if not r.url.startswith((server.url, "data:", "blob:", "about:")) else None)
    yield pg
    context.close()
    assert not errors, f"script errors: {errors}"
    assert not outside, f"requests left the server: {outside}"
