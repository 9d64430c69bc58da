"""Shared fixtures: the shared datasets, a session-wide Online Retail store, CLI and store helpers."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import duckdb
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
STORE_TABLES = ("meta", "runs", "events", "catalog", "rejects")


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data; the test is skipped when the datasets are not beside the repo."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"shared dataset not available: {path}")
    return path


@pytest.fixture(name="shared_file", scope="session")
def shared_file_fixture() -> Callable[..., Path]:
    """shared_file("online_retail", "online_retail.parquet"): the path, or skip when absent."""
    return shared_file


@pytest.fixture(scope="session")
def or_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """Online Retail ingested once per session with the `online-retail` preset: (store path, result)."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    src = shared_file("online_retail", "online_retail.parquet")
    store = tmp_path_factory.mktemp("or_store") / "or.duckdb"
    result = ingest_file(str(src), resolve_mapping("online-retail"), store)
    return store, result


def _cli_command() -> list[str]:
    exe = Path(sys.executable).with_name("itemaffinity")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "itemaffinity.cli"]


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """Run the real `itemaffinity` executable in a subprocess: cli("ingest", file, "--store", s)."""

    def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        full_env = {**os.environ, **(env or {})}
        full_env.pop("ITEMAFFINITY_DEBUG", None)
        return subprocess.run([*_cli_command(), *map(str, args)], capture_output=True, text=True,
                              cwd=cwd, env=full_env, timeout=timeout)

    return run


@pytest.fixture(scope="session")
def cli_command() -> list[str]:
    """The argv prefix that starts the real CLI (for tests that manage the process themselves)."""
    return _cli_command()


def store_snapshot(path: Path) -> dict[str, list[tuple]] | None:
    """Every table of a store as sorted rows (None when there is no store file).

    Run timestamps are included, so two snapshots are equal only if nothing was rewritten.
    """
    if not Path(path).exists():
        return None
    with duckdb.connect(str(path), read_only=True) as con:
        present = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                for t in STORE_TABLES if t in present}


def file_digest(path: Path) -> str | None:
    """sha256 of a file's bytes, None when it does not exist."""
    p = Path(path)
    return hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None


def store_counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("events", "rejects", "runs", "catalog")}


@pytest.fixture(scope="session")
def snapshot() -> Callable[[Path], dict[str, list[tuple]] | None]:
    return store_snapshot


@pytest.fixture(scope="session")
def counts() -> Callable[[Path], dict[str, int]]:
    return store_counts


@pytest.fixture(scope="session")
def digest() -> Callable[[Path], str | None]:
    return file_digest


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., Path]:
    """Write a file into tmp_path: write("a.csv", "text") or write("a.csv", b"bytes")."""

    def _write(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode(encoding))
        return path

    return _write


@pytest.fixture
def ingest(tmp_path: Path) -> Callable[..., Any]:
    """Ingest a file through the Python API into tmp_path/store.duckdb (or `store=`).

    ingest(path, preset=None, map_file=None, cols=[...], catalog=None, store=None, **options)
    returns the IngestResult; `options` are mapping fields (delimiter, encoding, sheet, ...).
    """
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.mapping import resolve_mapping

    def _ingest(path: Path, *, preset: str | None = None, map_file: Path | None = None,
                cols: list[str] | None = None, catalog_cols: list[str] | None = None,
                catalog: Path | None = None, store: Path | None = None, **options: Any):
        mapping = resolve_mapping(preset, map_file, cols or [], catalog_cols or [], options)
        return ingest_file(str(path), mapping, store or tmp_path / "store.duckdb",
                           str(catalog) if catalog else None)

    return _ingest


@pytest.fixture
def query(tmp_path: Path) -> Callable[..., list[tuple]]:
    """Run SQL read-only against a store (default tmp_path/store.duckdb)."""

    def _query(sql: str, params: list | None = None, store: Path | None = None) -> list[tuple]:
        with duckdb.connect(str(store or tmp_path / "store.duckdb"), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    return _query
