"""Command line: `itemaffinity ingest | analyze | ...`.

Exit codes: 0 ok, 2 bad input (one line on stderr, no traceback, store unchanged), 1 internal
error. `--json` prints machine-readable output on stdout; progress goes to stderr.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click
from rich.console import Console

from itemaffinity import __version__
from itemaffinity.errors import InputError

log = logging.getLogger("itemaffinity")
err_console = Console(stderr=True)

DEMO_DATA_ENV = "ITEMAFFINITY_DEMO_DATA"


def demo_data_path() -> Path:
    """The bundled Online Retail copy: $ITEMAFFINITY_DEMO_DATA, else the repository's data/ folder."""
    if os.environ.get(DEMO_DATA_ENV):
        return Path(os.environ[DEMO_DATA_ENV])
    here = Path(__file__).resolve()
    for parent in here.parents:
        cand = parent / "data" / "online_retail.parquet"
        if cand.is_file():
            return cand
    raise InputError(f"bundled demo data not found; pass a FILE or set {DEMO_DATA_ENV}")


class Progress:
    """Step messages with timings on stderr (only on a terminal, or with --verbose)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.t0 = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if self.enabled:
            err_console.print(f"[dim]{time.perf_counter() - self.t0:6.1f}s[/dim] {msg}")


def _run_guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn InputError into exit 2 with one line, and other errors into exit 1 with one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            click.echo(f"itemaffinity: error: {exc}", err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if os.environ.get("ITEMAFFINITY_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            click.echo(f"itemaffinity: internal error: {type(exc).__name__}: {first} "
                       f"(set ITEMAFFINITY_DEBUG=1 for the traceback)", err=True)
            sys.exit(1)

    return wrapper


def mapping_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads files: how to map them to canonical columns."""
    opts = [
        click.option("--preset", help="Mapping preset: online-retail, amazon-beauty, instacart, sasrec-games."),
        click.option("--map", "map_file", type=click.Path(dir_okay=False), help="TOML mapping file."),
        click.option("--col", "cols", multiple=True, metavar="ROLE=COLUMN",
                     help="Map a column, e.g. --col item_id=StockCode (repeatable)."),
        click.option("--catalog", "catalog_file", type=click.Path(dir_okay=False), help="Catalog file."),
        click.option("--catalog-col", "catalog_cols", multiple=True, metavar="ROLE=COLUMN",
                     help="Map a catalog column, e.g. --catalog-col title=name (repeatable)."),
        click.option("--delimiter", help="CSV delimiter (detected when omitted)."),
        click.option("--encoding", help="Text encoding (detected when omitted)."),
        click.option("--sheet", help="Excel sheet name (first sheet when omitted)."),
        click.option("--timestamp-format", help="strptime format of the timestamp column."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--store", "store_path", default="itemaffinity.duckdb", show_default=True,
                        type=click.Path(dir_okay=False), help="DuckDB store file.")(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(fn)


def build_mapping(preset, map_file, cols, catalog_cols, delimiter, encoding, sheet, timestamp_format):
    from itemaffinity.data.mapping import resolve_mapping

    return resolve_mapping(preset, map_file, list(cols), list(catalog_cols),
                           {"delimiter": delimiter, "encoding": encoding, "sheet": sheet,
                            "timestamp_format": timestamp_format})


def do_ingest(files: list[str], store_path: str, progress: Progress, **mapping_kw: Any) -> list:
    from itemaffinity.data.ingest import ingest_files

    catalog_file = mapping_kw.pop("catalog_file")
    mapping = build_mapping(**mapping_kw)
    return ingest_files(list(files), mapping, store_path, catalog_file, progress)


def ingest_payload(results: list, store_path: str) -> dict[str, Any]:
    rejected: dict[str, int] = {}
    for r in results:
        for k, v in r.rejected.items():
            rejected[k] = rejected.get(k, 0) + v
    return {"rows_read": sum(r.rows_read for r in results), "accepted": sum(r.accepted for r in results),
            "rejected": rejected, "store": str(store_path), "files": [r.to_dict() for r in results]}


def print_ingest(payload: dict[str, Any]) -> None:
    for f in payload["files"]:
        note = f"  ({f['skipped']})" if f["skipped"] else ""
        click.echo(f"{f['source']}: {f['rows_read']:,} rows read, {f['accepted']:,} accepted{note}")
    click.echo(f"rows read: {payload['rows_read']:,}   accepted: {payload['accepted']:,}   "
               f"rejected: {sum(payload['rejected'].values()):,}")
    for reason, n in payload["rejected"].items():
        click.echo(f"  {reason:<26} {n:>10,}")
    click.echo(f"store: {payload['store']}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="itemaffinity")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and timings to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Product association analysis: which products go together, and why."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    ctx.obj = {"progress": Progress(verbose or err_console.is_terminal)}


@main.command()
@click.argument("files", nargs=-1, required=True)
@mapping_options
@store_option
@json_option
@click.pass_context
@_run_guarded
def ingest(ctx: click.Context, files: tuple[str, ...], store_path: str, as_json: bool, **mapping_kw: Any) -> None:
    """Validate FILE(s) and append them to the store; bad rows are kept as counted rejects."""
    results = do_ingest(list(files), store_path, ctx.obj["progress"], **mapping_kw)
    payload = ingest_payload(results, store_path)
    if as_json:
        click.echo(json.dumps(payload, default=str))
    else:
        print_ingest(payload)


@main.command()
@click.argument("files", nargs=-1)
@mapping_options
@store_option
@click.option("--out", "out_dir", default="itemaffinity-report", show_default=True,
              type=click.Path(file_okay=False), help="Folder for the HTML report.")
@json_option
@click.pass_context
@_run_guarded
def analyze(ctx: click.Context, files: tuple[str, ...], store_path: str, out_dir: str, as_json: bool,
            **mapping_kw: Any) -> None:
    """Ingest FILE(s) (the bundled Online Retail demo data when none), analyse and write the report."""
    import duckdb

    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.evaluation.report import Report, dataset_sections

    progress = ctx.obj["progress"]
    if not files:
        files = (str(demo_data_path()),)
        if not (mapping_kw["preset"] or mapping_kw["map_file"] or mapping_kw["cols"]):
            mapping_kw["preset"] = "online-retail"
    Path(store_path).parent.mkdir(parents=True, exist_ok=True)
    results = do_ingest(list(files), store_path, progress, **mapping_kw)
    progress("building interaction data")
    data = InteractionData.from_store(store_path)
    progress("writing report")
    report = Report("itemaffinity report", f"store {store_path} · files {', '.join(files)}")
    with duckdb.connect(store_path, read_only=True) as con:
        dataset_sections(report, con, data)
    path = report.write(out_dir)
    payload = {**ingest_payload(results, store_path), "report": str(path),
               "items": data.n_items, "users": data.n_users, "baskets": data.n_baskets}
    if as_json:
        click.echo(json.dumps(payload, default=str))
    else:
        print_ingest(payload)
        click.echo(f"items: {data.n_items:,}  users: {data.n_users:,}  baskets: {data.n_baskets:,}")
        click.echo(f"report: {path}")


if __name__ == "__main__":
    main()
