"""Store guarantees: idempotent, appending, and atomic even when the process is SIGKILLed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

FIRST = ("order,sku,customer,when,qty\n"
         "o1,A,c1,2024-01-01 10:00:00,1\n"
         "o1,B,c1,2024-01-01 10:00:00,2\n"
         "o2,A,c2,2024-01-02 11:00:00,1\n"
         "o2,,c2,2024-01-02 11:00:00,1\n")
SECOND = ("order,sku,customer,when,qty\n"
          "o2,A,c2,2024-01-02 11:00:00,1\n"      # also in FIRST: already_in_store
          "o3,C,c3,2024-01-03 09:00:00,4\n"
          "o3,A,c3,2024-01-03 09:00:00,1\n")
COLS = ["basket_id=order", "item_id=sku", "user_id=customer", "ts=when", "quantity=qty"]


def fingerprint(path: Path) -> dict[str, tuple]:
    """Count and order-free content hash of every table (run timestamps left out)."""
    tables = {"events": "events", "rejects": "rejects", "catalog": "catalog", "meta": "meta",
              "runs": "(SELECT run_id, kind, source, file_sha256, mapping_sha256, mapping, rows_read, "
                      "accepted, rejected, catalog_rows FROM runs)"}
    with duckdb.connect(str(path), read_only=True) as con:
        return {name: con.execute(f"SELECT count(*), sum(hash(t)::HUGEINT) FROM {sql} t").fetchone()
                for name, sql in tables.items()}


def test_same_file_twice_is_a_no_op(write, ingest, snapshot, tmp_path):
    src = write("first.csv", FIRST)
    one = ingest(src, cols=COLS)
    assert (one.rows_read, one.accepted, one.rejected, one.skipped) == (4, 3, {"missing_item_id": 1}, None)
    before = snapshot(tmp_path / "store.duckdb")

    two = ingest(src, cols=COLS)
    assert two.skipped == "identical file already ingested in run 1"
    assert (two.run_id, two.rows_read, two.accepted, two.rejected) == (1, 4, 3, {"missing_item_id": 1})
    # The same bytes under another name are the same file.
    three = ingest(write("copy/renamed.csv", FIRST), cols=COLS)
    assert three.skipped and three.run_id == 1
    assert snapshot(tmp_path / "store.duckdb") == before


def test_same_file_with_another_mapping_adds_nothing(write, ingest, query):
    src = write("first.csv", FIRST)
    ingest(src, cols=COLS)
    again = ingest(src, cols=["basket_id=order", "item_id=sku"])
    assert again.skipped is None and again.run_id == 2
    assert again.rejected == {"missing_item_id": 1, "already_in_store": 3}
    assert query("SELECT count(*) FROM events") == [(3,)]


def test_second_file_appends_and_overlap_is_already_in_store(write, ingest, query):
    ingest(write("first.csv", FIRST), cols=COLS)
    res = ingest(write("second.csv", SECOND), cols=COLS)
    assert (res.run_id, res.rows_read, res.accepted, res.rejected) == (2, 3, 2, {"already_in_store": 1})
    assert query("SELECT run_id, source_row, basket_id, item_id FROM events ORDER BY run_id, source_row") == [
        (1, 1, "o1", "A"), (1, 2, "o1", "B"), (1, 3, "o2", "A"), (2, 2, "o3", "C"), (2, 3, "o3", "A")]
    assert query("SELECT run_id, source_row, reason FROM rejects ORDER BY 1, 2") == [
        (1, 4, "missing_item_id"), (2, 1, "already_in_store")]
    assert query("SELECT run_id, rows_read, accepted FROM runs ORDER BY 1") == [(1, 4, 3), (2, 3, 2)]


def test_several_files_in_one_command_are_separate_runs(write, cli, query, tmp_path):
    store = tmp_path / "store.duckdb"
    a, b = write("first.csv", FIRST), write("second.csv", SECOND)
    flags = [x for c in COLS for x in ("--col", c)]
    proc = cli("ingest", a, b, *flags, "--store", store, "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert (payload["rows_read"], payload["accepted"]) == (7, 5)
    assert payload["rejected"] == {"missing_item_id": 1, "already_in_store": 1}
    assert query("SELECT run_id, source FROM runs ORDER BY 1") == [(1, str(a)), (2, str(b))]


# ---------------------------------------------------------------- crash safety

@pytest.fixture(scope="module")
def big_file(shared_file) -> Path:
    return shared_file("online_retail", "online_retail.parquet")


@pytest.fixture(scope="module")
def old_template(tmp_path_factory, cli) -> Path:
    """A store holding FIRST, made by the real CLI (copied for each test)."""
    tmp = tmp_path_factory.mktemp("old")
    store = tmp / "crash.duckdb"
    src = tmp / "first.csv"
    src.write_text(FIRST)
    proc = cli("ingest", src, *[x for c in COLS for x in ("--col", c)], "--store", store)
    assert proc.returncode == 0, proc.stderr
    assert not Path(f"{store}.wal").exists()
    return store


@pytest.fixture
def old_store(old_template, tmp_path) -> Path:
    return Path(shutil.copy(old_template, tmp_path / "crash.duckdb"))


@pytest.mark.parametrize("point", ["mid_ingest", "before_commit"])
def test_crash_inside_the_transaction_leaves_the_previous_store(point, old_store, big_file, cli, snapshot, counts):
    before = snapshot(old_store)

    proc = cli("ingest", big_file, "--preset", "online-retail", "--store", old_store,
               env={"ITEMAFFINITY_CRASH_AT": point})

    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)
    assert snapshot(old_store) == before
    assert counts(old_store) == {"events": 3, "rejects": 1, "runs": 1, "catalog": 0}
    if point == "mid_ingest":
        # Not only readable but writable: the interrupted file now goes in whole.
        proc = cli("ingest", big_file, "--preset", "online-retail", "--store", old_store, "--json")
        assert proc.returncode == 0, proc.stderr
        payload = json.loads(proc.stdout)
        assert payload["files"][0]["skipped"] is None
        assert payload["rows_read"] == 541_909
        assert counts(old_store)["events"] == 3 + payload["accepted"]


@pytest.fixture(scope="module")
def expected_after(old_template, big_file, cli, tmp_path_factory) -> tuple[dict, dict, float]:
    """Fingerprints of the old store and of old + the complete big file, and that ingest's time."""
    full = tmp_path_factory.mktemp("full") / "full.duckdb"
    shutil.copy(old_template, full)
    t0 = time.perf_counter()
    proc = cli("ingest", big_file, "--preset", "online-retail", "--store", full)
    assert proc.returncode == 0, proc.stderr
    return fingerprint(old_template), fingerprint(full), time.perf_counter() - t0


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_sigkill_from_outside_leaves_old_or_old_plus_whole_file(fraction, old_store, expected_after, big_file,
                                                              cli_command):
    old, new, seconds = expected_after
    proc = subprocess.Popen([*cli_command, "ingest", str(big_file), "--preset", "online-retail",
                             "--store", str(old_store)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while proc.poll() is None and not Path(f"/proc/{proc.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(seconds * fraction)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    rc = proc.wait(timeout=30)
    assert rc == (-signal.SIGKILL if killed else 0), proc.stderr.read()

    after = fingerprint(old_store)
    assert after in (old, new), "store holds a partial ingest"
    if not killed:
        assert after == new


def test_same_file_twice_in_one_call_is_written_once(write, query, tmp_path):
    from itemaffinity.data.ingest import ingest_files
    from itemaffinity.data.mapping import resolve_mapping

    src = str(write("first.csv", FIRST))
    first, second = ingest_files([src, src], resolve_mapping(cols=COLS), tmp_path / "store.duckdb")
    assert first.skipped is None and second.skipped == "identical file already ingested in run 1"
    assert query("SELECT count(*) FROM events") == [(3,)]
    assert query("SELECT count(*) FROM runs") == [(1,)]
