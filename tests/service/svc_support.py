"""Helpers shared by the service and e2e tests: a real Online Retail store, copies, live servers.

The store is built once per test session (ingest of the bundled Online Retail file, then the
analysis pipeline's mining, clustering, small basket-completion and cold-start evaluations and three fast models), memoised on
disk under the session's base temp dir so that both test folders use the same build.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

REPO = Path(__file__).resolve().parents[2]
ONLINE_RETAIL = REPO / "data" / "online_retail.parquet"
API_KEY = "test-key-0123456789"
TEST_MODELS = ("popularity", "itemknn", "rules")


@dataclass(frozen=True)
class StoreInfo:
    """The built store and facts computed from the same data, for tests to compare against."""

    path: Path
    facts: dict

    def copy(self, dest_dir: Path) -> Path:
        """A private copy of the store file and its artifacts in `dest_dir`."""
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / self.path.name
        shutil.copy2(self.path, dest)
        shutil.copytree(self.path.with_name(self.path.name + ".artifacts"),
                        dest.with_name(dest.name + ".artifacts"), dirs_exist_ok=True)
        return dest


def _facts(store: Path, data) -> dict:
    """Expected values: item statistics, pair lists, a rare item pair never bought together."""
    import duckdb
    import numpy as np

    facts: dict = {"n_items": data.n_items, "n_baskets": data.n_baskets, "n_users": data.n_users}
    items = data.items
    top = int(np.argmax(data.item_baskets))
    facts["top_item"] = items.id(top)
    facts["top_item_baskets"] = int(data.item_baskets[top])
    facts["top_item_users"] = int(data.item_users[top])
    with duckdb.connect(str(store), read_only=True) as con:
        facts["pairs_top_item"] = [r[0] for r in con.execute(
            "SELECT item_b FROM pairs WHERE item_a = ? AND n_ab >= 2 ORDER BY shrunk_lift DESC, item_b LIMIT 10",
            [facts["top_item"]]).fetchall()]
        facts["pair_counts_top_item"] = dict(con.execute(
            "SELECT item_b, n_ab FROM pairs WHERE item_a = ?", [facts["top_item"]]).fetchall())
        # An item whose rows in the pairs table are all text neighbours bought with it in fewer than 2 baskets.
        facts["lone_item"] = con.execute("SELECT item_a FROM pairs GROUP BY 1 HAVING max(n_ab) < 2 "
                                         "ORDER BY count(*) DESC, 1 LIMIT 1").fetchone()[0]
        facts["rejects"] = dict(con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1").fetchall())
        facts["segments_users"] = con.execute("SELECT count(*) FROM segments").fetchone()[0]
        facts["rules"] = con.execute("SELECT count(*) FROM rules").fetchone()[0]
        facts["user_with_history"] = con.execute(
            "SELECT user_id FROM segments ORDER BY frequency DESC, user_id LIMIT 1").fetchone()[0]
    # Pairs of items with a few baskets each, never in the same basket (a posted basket makes a new
    # pair); no item appears in two pairs, so tests using different pairs do not disturb each other.
    x = data.basket_items.tocsc()
    counts = np.diff(x.indptr)
    rare = [int(i) for i in np.flatnonzero((counts >= 5) & (counts <= 12))[:300]]
    baskets = {i: set(x.indices[x.indptr[i]:x.indptr[i + 1]].tolist()) for i in rare}
    pairs, used = [], set()
    for k, a in enumerate(rare):
        for b in rare[k + 1:]:
            if a not in used and b not in used and not baskets[a] & baskets[b]:
                pairs.append((items.id(a), items.id(b)))
                used |= {a, b}
        if len(pairs) >= 8:
            break
    facts["fresh_pairs"] = pairs
    return facts


def build_store(base: Path) -> StoreInfo:
    """Build (or reuse within this session) the Online Retail test store under `base`."""
    folder = base / "svc-store"
    marker = folder / "facts.json"
    store = folder / "or.duckdb"
    if marker.is_file():
        return StoreInfo(store, json.loads(marker.read_text()))
    from itemaffinity.analysis import cold_start_rows, mine_tables
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.data.mapping import resolve_mapping
    from itemaffinity.evaluation.experiment import parse_models, run_evaluation
    from itemaffinity.models.cluster import customer_segments, product_groups, store_clusters
    from itemaffinity.models.registry import create_model
    from itemaffinity.store.artifacts import record_evaluations, save_model

    import duckdb

    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    ingest_file(str(ONLINE_RETAIL), resolve_mapping("online-retail"), store)
    data = InteractionData.from_store(store)
    mine_tables(str(store), data)
    groups = product_groups(data)
    with duckdb.connect(str(store), read_only=True) as con:
        segments = customer_segments(con, data, groups)
    store_clusters(str(store), data, groups, segments)
    rows, _ = run_evaluation(str(store), "basket-completion", parse_models(",".join(TEST_MODELS)),
                             split_date="2011-10-01", n_queries=300, seed=0)
    cold, _ = cold_start_rows(str(store), ("popularity", "tfidf"), split_date="2011-10-01", n_queries=300, seed=0,
                              progress=lambda _m: None)
    record_evaluations(store, rows + cold)
    for name in TEST_MODELS:
        save_model(store, create_model(name).fit(data))
    facts = _facts(store, data)
    facts["leaderboard_best"] = max(rows, key=lambda r: r["NDCG@10"])["model"]
    marker.write_text(json.dumps(facts))
    return StoreInfo(store, facts)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `python -m itemaffinity.service` subprocess on 127.0.0.1 and a free port."""

    def __init__(self, store: Path, *, api_keys: str | None = API_KEY, workers: int = 1,
                 semantic: str = "off", log: Path | None = None, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ITEMAFFINITY_API_KEYS": api_keys or ""}
        env.pop("ITEMAFFINITY_STORE", None)
        self.log_path = log or store.with_suffix(f".{self.port}.log")
        self._log = open(self.log_path, "wb")
        cmd = [sys.executable, "-m", "itemaffinity.service", "--store", str(store), "--port", str(self.port),
               "--workers", str(workers), "--semantic", semantic, "--log-level", "warning", *extra]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait(self, timeout: float = 180.0) -> "Server":
        """Block until /health answers (raises with the server log when it does not)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not start within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server's own process group (workers too)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()


@contextmanager
def running(*servers: Server, timeout: float = 180.0) -> Iterator[tuple[Server, ...]]:
    """Wait for servers started together; stop them all afterwards."""
    try:
        for s in servers:
            s.wait(timeout)
        yield servers
    finally:
        for s in servers:
            s.stop()
