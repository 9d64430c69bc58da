"""Command line: `itemaffinity ingest | analyze | ...`.

Exit codes: 0 ok, 2 bad input (one line on stderr, no traceback, store unchanged), 1 internal
error. `--json` prints machine-readable output on stdout; progress goes to stderr.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click
from rich.console import Console

from itemaffinity import __version__
from itemaffinity.errors import InputError

if TYPE_CHECKING:
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.data.mapping import Mapping
    from itemaffinity.evaluation.experiment import ModelSpec
    from itemaffinity.models.base import Recommender

log = logging.getLogger("itemaffinity")
err_console = Console(stderr=True)


def _stdout_console() -> Console:
    """A console for tables on stdout: a terminal's (or $COLUMNS') width; a file or pipe is not squeezed to 80
    columns, which truncated model names and figures in saved logs."""
    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=240 if wide else None)


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


def _exit_if_store_locked(message: str) -> None:
    """DuckDB lets one process write a file, most often a running `itemaffinity serve`: say so and what to do."""
    locked = re.search(r'Could not set lock on file "(.+?)".*?\(PID (\d+)\)', message)
    if locked:
        click.echo(f"itemaffinity: error: the store {locked[1]} is open in another process (PID {locked[2]}), "
                   "such as a running 'itemaffinity serve': stop it first, or send the service events "
                   "(POST /v1/events) or products (POST /v1/catalog), then POST /v1/admin/rebuild", err=True)
        sys.exit(2)


def _run_guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn InputError into exit 2 with one line, and other errors into exit 1 with one line."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:  # one line, even quoting a header whose column name holds a line break
            message = str(exc).replace("\r", "\\r").replace("\n", "\\n")
            _exit_if_store_locked(message)
            click.echo(f"itemaffinity: error: {message}", err=True)
            sys.exit(2)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
            if os.environ.get("ITEMAFFINITY_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            _exit_if_store_locked(first)
            click.echo(f"itemaffinity: internal error: {type(exc).__name__}: {first} "
                       f"(set ITEMAFFINITY_DEBUG=1 for the traceback)", err=True)
            sys.exit(1)

    return wrapper


def mapping_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by every command that reads files: how to map them to canonical columns."""
    opts = [
        click.option("--preset", help="Mapping preset: online-retail, amazon-beauty, instacart, sasrec-games."),
        click.option("--map", "map_file", help="TOML mapping file."),
        click.option("--col", "cols", multiple=True, metavar="ROLE=COLUMN",
                     help="Map a column, e.g. --col item_id=StockCode (repeatable)."),
        click.option("--catalog", "catalog_file", help="Catalog file."),
        click.option("--catalog-col", "catalog_cols", multiple=True, metavar="ROLE=COLUMN",
                     help="Map a catalog column, e.g. --catalog-col title=name (repeatable)."),
        click.option("--delimiter", help="CSV delimiter (detected when omitted)."),
        click.option("--encoding", help="Text encoding (detected when omitted)."),
        click.option("--sheet", help="Excel sheet name (first sheet when omitted)."),
        click.option("--catalog-sheet", help="The catalog's Excel sheet (first sheet when omitted), e.g. the "
                     "products beside the orders in one workbook."),
        click.option("--header-row", type=click.IntRange(min=0), default=None,
                     help="The events file's CSV/Excel row holding the column names, when a title comes first "
                          "(default 1); 0: the file has none (Taobao's UserBehavior.csv), its columns are column1, "
                          "column2, … (--col item_id=column2)."),
        click.option("--catalog-header-row", type=click.IntRange(min=0), default=None,
                     help="The same for the catalog file."),
        click.option("--timestamp-format", help="strptime format of the timestamp column."),
        click.option("--explode", metavar="COLUMN",
                     help="A column holding a list, e.g. an order's line_items: one row per element, its fields "
                          "as columns COLUMN.field (--col item_id=line_items.sku)."),
        click.option("--item-id-case", type=click.Choice(["keep", "upper", "lower"]), default=None,
                     help="upper / lower: item ids that differ only in letter case become one item "
                          "(default: the preset's, else keep)."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def store_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--store", "store_path", default="itemaffinity.duckdb", show_default=True,
                        help="DuckDB store file.")(fn)


def json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(fn)


def build_mapping(preset, map_file, cols, catalog_cols, delimiter, encoding, sheet, timestamp_format, item_id_case,
                  explode, header_row, catalog_sheet, catalog_header_row):
    from itemaffinity.data.mapping import resolve_mapping

    return resolve_mapping(preset, map_file, list(cols), list(catalog_cols),
                           {"delimiter": delimiter, "encoding": encoding, "sheet": sheet,
                            "timestamp_format": timestamp_format, "item_id_case": item_id_case,
                            "explode": explode, "header_row": header_row},
                           {"sheet": catalog_sheet, "header_row": catalog_header_row})


def do_ingest(files: list[str], store_path: str, progress: Progress, **mapping_kw: Any) -> list:
    """Ingest event files (with their catalog), or with no files a catalog alone."""
    from itemaffinity.data.ingest import ingest_catalog, ingest_files

    if Path(store_path).is_dir():
        raise InputError("store path is a directory, not a DuckDB file", file=store_path)

    catalog_file = mapping_kw.pop("catalog_file")
    if not files and catalog_file and Path(store_path).is_file() and not any(
            mapping_kw[k] for k in ("preset", "map_file", "item_id_case")):
        mapping_kw["item_id_case"] = _store_mapping(store_path).item_id_case  # ids as the store folds them
    mapping = build_mapping(**mapping_kw)
    if not files:
        return [ingest_catalog(catalog_file, mapping, store_path, progress)]
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
        what = "a catalog alone" if f["kind"] == "catalog" else \
            f"{f['rows_read']:,} rows read, {f['accepted']:,} accepted"
        click.echo(f"{f['source']}: {what}{note}")
    if any(f["kind"] == "ingest" for f in payload["files"]):
        click.echo(f"rows read: {payload['rows_read']:,}   accepted: {payload['accepted']:,}   "
                   f"rejected: {sum(payload['rejected'].values()):,}")
        for reason, n in payload["rejected"].items():
            click.echo(f"  {reason:<26} {n:>10,}")
    for f in payload["files"]:  # the catalog's own counts: products stored, bad catalog rows and why
        if f["catalog_rows"] or f["catalog_rejected"]:
            click.echo(f"catalog: {f['catalog_rows']:,} products stored   rejected: "
                       f"{sum(f['catalog_rejected'].values()):,}")
            for reason, n in f["catalog_rejected"].items():
                click.echo(f"  {reason:<26} {n:>10,}")
    for f in payload["files"]:
        if f.get("filled_from_order"):
            took = ", ".join(f"{n:,} {'customers' if k == 'user_id' else 'times'}"
                             for k, n in f["filled_from_order"].items())
            click.echo(f"note: {f['source']}: lines without a customer or time took them from the other lines of "
                       f"their order: {took}")
    for f in payload["files"]:
        for note in f.get("notes", []):
            click.echo(f"note: {f['source']}: {note}")
    twins = payload["files"][-1]["case_twins"] if payload["files"] else []
    if twins:
        click.echo(f"note: item ids that differ only in letter case: {len(twins):,} groups "
                   f"(e.g. {' / '.join(twins[0])}), kept as separate items; --item-id-case upper merges them")
    click.echo(f"store: {payload['store']}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="itemaffinity")
@click.option("-v", "--verbose", is_flag=True, help="Log progress and timings to stderr.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """Product association analysis: which products go together, and why."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    shown = verbose or err_console.is_terminal
    if not shown:  # Hugging Face progress bars (model loading) follow the CLI's own: none in logs and pipes
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    ctx.obj = {"progress": Progress(shown)}


@main.command()
@click.argument("files", nargs=-1)
@mapping_options
@store_option
@json_option
@click.pass_context
@_run_guarded
def ingest(ctx: click.Context, files: tuple[str, ...], store_path: str, as_json: bool, **mapping_kw: Any) -> None:
    """Validate FILE(s) and append them to the store; bad rows are kept as counted rejects.

    With --catalog and no FILE, the catalog alone: new products before their first sale (their answers come
    from their text once the models are fitted again), new titles or prices for known ones."""
    if not files and not mapping_kw["catalog_file"]:
        raise InputError("no FILE given: itemaffinity ingest FILE... or ingest --catalog FILE (see --help)")
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
@click.option("--split-date", help="Time split for the evaluation (default: 2011-10-01 for the demo data, "
              "else the day 80% of baskets lie before).")
@click.option("--refresh-hybrid", is_flag=True, help="Serve the evaluated hybrid with its components refitted on "
              "all the data instead of fitting it again: minutes faster, its rankers a test period staler "
              "(benchmarks/bench_refresh.py: 1.7% lower NDCG@10 at 75 days).")
@click.option("--text-model", help="Sentence model (name or local folder) of the text models and the hybrid's text "
              "features, e.g. a multilingual model for a Chinese catalog  [default: $ITEMAFFINITY_TEXT_MODEL, else "
              "all-MiniLM-L6-v2]")
@json_option
@click.pass_context
@_run_guarded
def analyze(ctx: click.Context, files: tuple[str, ...], store_path: str, out_dir: str, split_date: str | None,
            refresh_hybrid: bool, text_model: str | None, as_json: bool, **mapping_kw: Any) -> None:
    """Ingest FILE(s), analyse the store and write the report. Without FILE: the store as it is, or, for a new
    store (or the demo's), the bundled Online Retail demo data."""
    from itemaffinity.analysis import run_analysis

    progress = ctx.obj["progress"]
    if text_model:  # read by every text model's and the hybrid's defaults, here and in the fold workers
        from itemaffinity.text.encoders import TEXT_MODEL_ENV

        os.environ[TEXT_MODEL_ENV] = str(Path(text_model).resolve()) if Path(text_model).is_dir() else text_model
    if not files:
        own = _sources_besides(store_path, demo_data_path())
        if own:  # said always: whoever expected the demo data learns why the report shows their own
            click.echo(f"no FILE given: analysing the store's own data ({', '.join(own[:3])}"
                       f"{', …' if len(own) > 3 else ''}), without the demo data", err=True)
        else:
            files = (str(demo_data_path()),)
            if not (mapping_kw["preset"] or mapping_kw["map_file"] or mapping_kw["cols"]):
                mapping_kw["preset"] = "online-retail"
            split_date = split_date or "2011-10-01"
    Path(store_path).parent.mkdir(parents=True, exist_ok=True)
    results = do_ingest(list(files), store_path, progress, **mapping_kw) if files else []
    summary = run_analysis(store_path, out_dir, split_date=split_date, refresh_hybrid=refresh_hybrid,
                           progress=progress)
    payload = {**ingest_payload(results, store_path), **summary}
    if as_json:
        click.echo(json.dumps(payload, default=str))
    else:
        if results:
            print_ingest(payload)
        click.echo(f"items: {summary['items']:,}  users: {summary['users']:,}  baskets: {summary['baskets']:,}"
                   + ("" if summary["baskets"] else "  (no orders: what goes together is what the same customer bought)"))
        if "no_evaluation" in summary:
            click.echo(f"no evaluation: {summary['no_evaluation']}")
        headings = {"basket-completion": "basket completion (a product held out of each test basket, ranked from "
                                         "the rest of it):",
                    "next-item": "next item (each test customer's last product, ranked from the earlier ones):",
                    "cold-start": "cold start (products first sold after the split, ranked from their text):"}
        for task, rows in ((summary["task"], summary["leaderboard"]), ("cold-start", summary["cold_start"])):
            if rows:
                click.echo(headings[task])
            for row in rows:
                click.echo(f"  {row['model']:<22} NDCG@10 {row['NDCG@10']:.4f}  HR@10 {row['HR@10']:.4f}")
        if "no_cold_start" in summary:
            click.echo(f"no cold-start evaluation: {summary['no_cold_start']}")
        if "finetuned_encoder" in summary:
            click.echo(f"fine-tuned encoder: {summary['finetuned_encoder']}  (itemaffinity search --text-model)")
        click.echo(f"report: {summary['report']}")


def _sources_besides(store_path: str, demo: Path) -> list[str]:
    """The files ingested into the store other than the demo data: a store with its own data is analysed as it
    is, never mixed with the demo's 500,000 rows."""
    import duckdb

    from itemaffinity.data.ingest import file_sha256
    from itemaffinity.store.duckdb_store import runs_table, table_exists

    if not Path(store_path).is_file():
        return []
    with duckdb.connect(str(store_path), read_only=True) as con:
        runs = [r for r in runs_table(con) if r["kind"] == "ingest"] if table_exists(con, "runs") else []
    demo_sha = file_sha256(str(demo)) if runs and demo.is_file() else None
    return list(dict.fromkeys(r["source"] for r in runs if r["file_sha256"] != demo_sha))


def _require_store(store_path: str) -> None:
    if not Path(store_path).is_file():
        raise InputError("store not found: ingest data first (itemaffinity ingest FILE) or pass FILE",
                         file=store_path)


def _print_leaderboard(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from itemaffinity.evaluation.report import vs_best_text

    table = Table(title=f"{rows[0]['task']} · {rows[0].get('split', '')} · {rows[0]['queries']:,} queries")
    for col in ("model", "HR@10", "NDCG@10", "× best (95% interval)", "MRR@10", "Recall@20", "coverage@10",
                "fit s", "eval s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["label"], f"{r['HR@10']:.4f}", f"{r['NDCG@10']:.4f}", vs_best_text(r), f"{r['MRR@10']:.4f}",
                      f"{r['Recall@20']:.4f}", f"{r['coverage@10']:.3f}", f"{r['fit_s']:.1f}", f"{r['eval_s']:.1f}")
    _stdout_console().print(table)


@main.command()
@click.argument("files", nargs=-1)
@mapping_options
@store_option
@click.option("--task", default="basket-completion", show_default=True,
              type=click.Choice(["basket-completion", "next-item", "next-basket", "cold-start"]), help="Evaluation protocol.")
@click.option("--split-date", help="Time split (YYYY-MM-DD); default: the day 80% of baskets lie before.")
@click.option("--models", "models_text", metavar="A,B:key=value,...",
              help="Models to compare (default: every classic model); parameters as name:key=value.")
@click.option("--queries", "n_queries", default=5000, show_default=True, type=click.IntRange(min=1),
              help="Number of seeded test queries.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--tune", is_flag=True, help="Grid-search each model on a validation split cut from the training period.")
@click.option("--sampled-negatives", type=click.IntRange(min=1),
              help="Also report the papers' sampled protocol (target vs N random negatives), labelled as such.")
@click.option("--out", "out_dir", default="itemaffinity-eval", show_default=True, type=click.Path(file_okay=False))
@json_option
@click.pass_context
@_run_guarded
def evaluate(ctx: click.Context, files: tuple[str, ...], store_path: str, task: str, split_date: str | None,
             models_text: str | None, n_queries: int, seed: int, tune: bool, sampled_negatives: int | None,
             out_dir: str, as_json: bool, **mapping_kw: Any) -> None:
    """Compare models on one honest offline protocol (full ranking) and write a leaderboard."""
    from itemaffinity.evaluation.experiment import parse_models, run_evaluation
    from itemaffinity.evaluation.report import Report, leaderboard_section
    from itemaffinity.store.artifacts import record_evaluations

    progress = ctx.obj["progress"]
    specs = parse_models(models_text)
    if files:
        do_ingest(list(files), store_path, progress, **mapping_kw)
    _require_store(store_path)
    rows, _ = run_evaluation(store_path, task, specs, split_date=split_date, n_queries=n_queries, seed=seed,
                             do_tune=tune, sampled_negatives=sampled_negatives, progress=progress)
    record_evaluations(store_path, rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "leaderboard.json").write_text(json.dumps(rows, indent=1, default=str))
    _write_csv(out / "leaderboard.csv", rows)
    report = Report("itemaffinity evaluation", f"store {store_path} · task {task}")
    leaderboard_section(report, rows)
    path = report.write(out)
    if as_json:
        click.echo(json.dumps({"task": task, "leaderboard": rows, "report": str(path)}, default=str))
    else:
        _print_leaderboard(rows)
        click.echo(f"leaderboard: {out / 'leaderboard.csv'}   report: {path}")


THIRDS_COLUMNS = ("NDCG@10_rare", "NDCG@10_middle", "NDCG@10_best_sellers")
"""The leaderboard CSV's columns for a row's `popularity_thirds` (a dict, which a CSV cell cannot hold)."""


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import csv

    keys = [k for k in rows[0] if not isinstance(rows[0][k], dict)]
    thirds = list(THIRDS_COLUMNS) if any(r.get("popularity_thirds") for r in rows) else []
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=keys + thirds + ["config"], extrasaction="ignore")
        w.writeheader()
        for r in rows:
            by_third = dict(zip(thirds, (r.get("popularity_thirds") or {}).get("NDCG@10", [])))
            w.writerow({**{k: r.get(k) for k in keys}, **by_third, "config": json.dumps(r.get("config"))})


def _store_mapping(store_path: str) -> Mapping:
    """The store's newest ingest mapping: how it folds item ids (item_id_case), as the service does."""
    from itemaffinity.store.duckdb_store import ingest_mapping, open_store

    with open_store(store_path, read_only=True) as con:
        return ingest_mapping(con)


def _read_query_csv(path: str, key: str, with_items: bool) -> list[tuple[str, str | None]]:
    import duckdb

    from itemaffinity.data.readers import read_source

    con = duckdb.connect()
    src = read_source(con, path, "q")
    need = [key, "item_id"] if with_items else [key]
    for col in need:
        if col not in src.columns:
            raise InputError(f"required column {col!r} not found; columns are: {', '.join(src.columns)}",
                             file=path, column=col)
    cols = ", ".join(f'trim(CAST("{c}" AS VARCHAR))' for c in need)
    rows = con.execute(f"SELECT {cols} FROM q ORDER BY _row").fetchall()
    con.close()
    return [(r[0], r[1] if with_items else None) for r in rows if r[0] not in (None, "")]


@main.command()
@store_option
@click.option("--model", "model_text", required=True, help="Model name (optionally name:key=value).")
@click.option("--baskets", "baskets_file", type=click.Path(dir_okay=False),
              help="CSV with query_id,item_id (one row per item of each query basket).")
@click.option("--users", "users_file", type=click.Path(dir_okay=False), help="CSV with a user_id column.")
@click.option("--n", "n", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False), help="Output CSV.")
@click.option("--fit", "fit_files", multiple=True, type=click.Path(dir_okay=False),
              help="Ingest this file and (re)fit the model on the store first.")
@mapping_options
@json_option
@click.pass_context
@_run_guarded
def recommend(ctx: click.Context, store_path: str, model_text: str, baskets_file: str | None,
              users_file: str | None, n: int, out_file: str, fit_files: tuple[str, ...], as_json: bool,
              **mapping_kw: Any) -> None:
    """Batch recommendations for query baskets or users, from a stored (or freshly fitted) model."""
    import csv

    from itemaffinity.evaluation.experiment import parse_models

    if bool(baskets_file) == bool(users_file):
        raise InputError("give exactly one of --baskets or --users")
    spec = parse_models(model_text)[0]
    progress = ctx.obj["progress"]
    if fit_files:
        do_ingest(list(fit_files), store_path, progress, **mapping_kw)
    _require_store(store_path)
    queries = _read_query_csv(baskets_file or users_file, "query_id" if baskets_file else "user_id",
                              with_items=bool(baskets_file))
    if baskets_file:  # item ids as the store holds them (item_id_case), as `similar` and the service fold them
        fold = _store_mapping(store_path).fold_item_id
        queries = [(qid, fold(item)) for qid, item in queries]
    model = _saved_or_fitted(store_path, spec, progress, fit=bool(fit_files))
    stats = {"queries": 0, "unknown_items": 0, "unknown_users": 0, "fallback_queries": 0, "rows": 0}
    with open(out_file, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if baskets_file:
            w.writerow(["query_id", "rank", "item_id", "score", "fallback"])
            grouped: dict[str, list[str]] = {}
            for qid, item in queries:
                grouped.setdefault(qid, []).append(item)
            stats["unknown_items"] = sum(1 for _, i in queries if i not in model.items_)
            ids = list(grouped)
            for s in range(0, len(ids), 1000):
                chunk = ids[s:s + 1000]
                _write_recs(w, stats, chunk, model.recommend_batch(histories=[grouped[q] for q in chunk], n=n))
            stats["queries"] = len(ids)
        else:
            w.writerow(["user_id", "rank", "item_id", "score", "fallback"])
            users = list(dict.fromkeys(u for u, _ in queries))
            stats["unknown_users"] = sum(1 for u in users if u not in model.users_)
            for s in range(0, len(users), 1000):
                chunk = users[s:s + 1000]
                _write_recs(w, stats, chunk, model.recommend_batch(chunk, n=n))
            stats["queries"] = len(users)
    payload = {"model": spec.label, "out": out_file, **stats}
    if as_json:
        click.echo(json.dumps(payload))
    else:
        click.echo(f"{stats['queries']:,} queries → {stats['rows']:,} recommendations in {out_file}")
        if stats["unknown_items"]:
            click.echo(f"ignored {stats['unknown_items']:,} unknown item(s) in the queries", err=True)
        if stats["unknown_users"]:
            click.echo(f"{stats['unknown_users']:,} unknown user(s) got popular items", err=True)
        if stats["fallback_queries"] > stats["unknown_users"]:
            who = "user(s)" if users_file else "basket(s)"
            why = "unknown, never bought, or no rule starts from it" if model.name == "rules" else \
                "unknown, or never bought"
            click.echo(f"{stats['fallback_queries'] - stats['unknown_users']:,} {who} with no item the model can "
                       f"score ({why}) got popular items", err=True)


def _write_recs(writer: Any, stats: dict[str, int], query_ids: Sequence[str], answers: Sequence[Any]) -> None:
    """CSV rows of each query's recommendations; `fallback` marks popular items for a query the model knows nothing
    of (`Recs.fallback`: an unknown user, a basket of unknown items or of products never bought, or, for rules, of
    items no rule starts from), so that a shop can tell them from its own answers."""
    for qid, recs in zip(query_ids, answers):
        marker = "popular" if recs.fallback else ""
        writer.writerows([qid, r + 1, i, f"{sc:.6g}", marker] for r, (i, sc) in enumerate(zip(recs.item_ids, recs.scores)))
        stats["rows"] += len(recs)
        stats["fallback_queries"] += recs.fallback


def mining_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `rules` and `itemsets`."""
    opts = [
        click.option("--min-support", default=0.01, show_default=True, type=float,
                     help="Minimum share of baskets, in (0, 1]."),
        click.option("--max-len", type=int, help="Largest itemset size (default: no limit)."),
        click.option("--item", "item_id", help="Only itemsets/rules holding this item id."),
        click.option("--limit", type=click.IntRange(min=1), help="Rows to output (terminal default 20)."),
        click.option("--out", "out_file", help="Write all selected rows to FILE.parquet or FILE.csv."),
        click.option("--save/--no-save", default=None,
                     help="Replace the store's mined tables (what the service and the rules explorer serve) with "
                          "these results. Default: only when the store has none yet, so that a query such as "
                          "--item X does not replace analyze's rules."),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _save_mined(store_path: str, tables: dict[str, Any], save: bool | None) -> bool:
    """Write the mined `tables` into the store when asked (`save`), or by default when it holds none of them yet;
    whether they were written."""
    from itemaffinity.mining.export import write_store_tables
    from itemaffinity.store.duckdb_store import open_store, table_exists

    if save is None:
        with open_store(store_path, read_only=True) as con:
            save = not any(table_exists(con, name) for name in tables)
    if save:
        write_store_tables(store_path, tables)
    return save


def _mine_from(ctx: click.Context, files: tuple[str, ...], store_path: str, mapping_kw: dict[str, Any],
               item_id: str | None) -> tuple[InteractionData, str | None]:
    """The store's data (after ingesting `files`) and `item_id` as the store holds it (item_id_case)."""
    from itemaffinity.data.interactions import InteractionData

    if files:
        do_ingest(list(files), store_path, ctx.obj["progress"], **mapping_kw)
    _require_store(store_path)
    ctx.obj["progress"]("building interaction data")
    data = InteractionData.from_store(store_path)
    return data, None if item_id is None else _stored_item_id(store_path, data, item_id)


def _stored_item_id(store_path: str, data: InteractionData, item_id: str) -> str:
    """`item_id` as the store holds it (item_id_case), or an input error naming the id as given."""
    stored_id = _store_mapping(store_path).fold_item_id(item_id)
    if stored_id not in data.items:
        raise InputError(f"unknown item {item_id!r}: not in the store")
    return stored_id


def _emit_table(table, limit: int | None, out_file: str | None, as_json: bool, what: str,
                store_path: str, data: InteractionData, saved: bool) -> None:
    """The mined table to a file, as JSON, or as a terminal preview whose items carry their titles."""
    from itemaffinity.mining.export import export_table

    shown = table.slice(0, limit) if limit else table
    if out_file:
        export_table(shown, out_file)
    if as_json:
        click.echo(json.dumps({what: shown.to_pylist(), "count": table.num_rows, "store": store_path,
                               "out": out_file, "saved": saved}, default=float))
        return
    from rich.table import Table

    terse = [c for c in table.column_names if c not in ("antecedent_support", "consequent_support")]
    preview = shown.select(terse).slice(0, limit or 20).to_pylist()
    t = Table(title=f"{table.num_rows:,} {what}" + (f" (first {len(preview)})" if len(preview) < table.num_rows else ""))
    for col in terse:
        t.add_column(col, justify="left" if col in ("antecedent", "consequent", "items") else "right")

    def named(item_id: str) -> str:  # "22697 ROSES REGENCY TEACUP AND SAUCER": an id alone says little to a person
        title = data.titles[data.items.index(item_id)]
        return f"{item_id} {_column(title, 36).rstrip()}" if title else item_id

    for row in preview:
        t.add_row(*["\n".join(map(named, v)) if isinstance(v, list) else (f"{v:.4g}" if isinstance(v, float) else str(v))
                    for v in row.values()])
    _stdout_console().print(t)
    if out_file:
        click.echo(f"wrote {shown.num_rows:,} {what} to {out_file}")
    click.echo(f"saved in the store as its {what} table" if saved else
               f"the store's own {what} table is unchanged (--save replaces it with these)")


@main.command()
@click.argument("files", nargs=-1)
@mapping_options
@store_option
@mining_options
@click.option("--min-confidence", default=0.0, show_default=True, type=float, help="Minimum confidence, in [0, 1].")
@click.option("--min-lift", type=float, help="Minimum lift.")
@click.option("--category", help="Only rules whose consequent lies in this category (path prefix).")
@click.option("--sort", "sort_by", default="lift", show_default=True,
              type=click.Choice(["lift", "confidence", "support", "leverage", "conviction"]))
@json_option
@click.pass_context
@_run_guarded
def rules(ctx: click.Context, files: tuple[str, ...], store_path: str, min_support: float, max_len: int | None,
          item_id: str | None, limit: int | None, out_file: str | None, save: bool | None, min_confidence: float,
          min_lift: float | None, category: str | None, sort_by: str, as_json: bool, **mapping_kw: Any) -> None:
    """Association rules A → C with support, confidence, lift, leverage and conviction."""
    from itemaffinity.mining.export import itemsets_table, mine, rules_table, sort_rules

    data, item_id = _mine_from(ctx, files, store_path, mapping_kw, item_id)
    ctx.obj["progress"]("mining itemsets and rules")
    sets, found, _ = mine(data, min_support=min_support, max_len=max_len, min_confidence=min_confidence,
                          min_lift=min_lift, item_id=item_id, category=category)
    table = sort_rules(rules_table(found, data.items), sort_by)
    saved = _save_mined(store_path, {"rules": table, "itemsets": itemsets_table(sets, data.items)}, save)
    _emit_table(table, limit, out_file, as_json, "rules", store_path, data, saved)


@main.command()
@click.argument("files", nargs=-1)
@mapping_options
@store_option
@mining_options
@json_option
@click.pass_context
@_run_guarded
def itemsets(ctx: click.Context, files: tuple[str, ...], store_path: str, min_support: float, max_len: int | None,
             item_id: str | None, limit: int | None, out_file: str | None, save: bool | None, as_json: bool,
             **mapping_kw: Any) -> None:
    """Frequent itemsets (FP-Growth class speed, exact supports)."""
    from itemaffinity.mining.export import itemsets_table, mine

    data, item_id = _mine_from(ctx, files, store_path, mapping_kw, item_id)
    ctx.obj["progress"]("mining itemsets")
    sets, _, kept = mine(data, min_support=min_support, max_len=max_len, item_id=item_id, rules_wanted=False)
    table = itemsets_table(sets, data.items)
    saved = _save_mined(store_path, {"itemsets": table}, save)
    table = table.take(kept).sort_by([("support", "descending")]).select(["items", "support"])
    _emit_table(table, limit, out_file, as_json, "itemsets", store_path, data, saved)


def _saved_or_fitted(store_path: str, spec: ModelSpec, progress: Progress, data: InteractionData | None = None,
                     fit: bool = False) -> Recommender:
    """The model the store saved under the spec's label; else (or with `fit`) one fitted on the store's data (with
    the store as its embedding cache) and saved there."""
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.models.registry import create_store_model
    from itemaffinity.store.artifacts import load_saved_model, save_model

    model = None if fit else load_saved_model(store_path, spec.label)
    if model is None:
        progress(f"fitting {spec.label}")
        data = data if data is not None else InteractionData.from_store(store_path)
        model = create_store_model(spec.name, store_path, **spec.params).fit(data)
        save_model(store_path, model, spec.label)
    return model


def _model_for(store_path: str, model_text: str, progress: Progress):
    """A stored model (fitted on the store and saved when it is not there yet) and the data."""
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.evaluation.experiment import parse_models
    from itemaffinity.store.artifacts import default_model

    _require_store(store_path)
    spec = parse_models(model_text or default_model(store_path))[0]
    data = InteractionData.from_store(store_path)
    return _saved_or_fitted(store_path, spec, progress, data), data


def _column(text: str | None, width: int) -> str:
    """`text` cut or padded to `width` terminal cells: a Chinese character takes two, so padding by
    characters would break the columns of a Chinese catalog."""
    from rich.cells import cell_len, set_cell_size

    text = str(text or "")
    return set_cell_size(text, width) if cell_len(text) != width else text


@main.command()
@click.argument("item_id")
@store_option
@click.option("--model", "model_text", help="Model name (name:key=value); default: the store's default model "
              "(hybrid after analyze), else ease.")
@click.option("--n", "n", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--explain", is_flag=True, help="Show the evidence: co-purchases, lift, text similarity, relation.")
@click.option("--relation", type=click.Choice(["complement", "substitute", "related"]),
              help="Only items in this relation to ITEM_ID: complement (goes with it: bought together far more than "
              "chance), substitute (instead of it: alike, not bought together more than chance) or related.")
@json_option
@click.pass_context
@_run_guarded
def similar(ctx: click.Context, item_id: str, store_path: str, model_text: str, n: int, explain: bool,
            relation: str | None, as_json: bool) -> None:
    """Items most associated with ITEM_ID according to a model, optionally with why."""
    from dataclasses import replace

    import numpy as np

    from itemaffinity.mining.transactions import transaction_counts, transaction_unit
    from itemaffinity.models.base import Recs
    from itemaffinity.models.explain import (FALLBACK_SOURCES, RELATION_SCAN, Explainer, cold_start_chain,
                                             fallback_note, text_vectors)

    model, data = _model_for(store_path, model_text, ctx.obj["progress"])
    item_id = _stored_item_id(store_path, data, item_id)
    a = data.items.index(item_id)
    vectors = text_vectors(data) if explain or relation else None
    explainer = Explainer(data, vectors) if explain or relation else None
    recs = model.similar_items([item_id], n=RELATION_SCAN if relation else n)[0]
    fallback = note = None
    if not len(recs):  # the model has nothing on it: the cold-start chain answers, as the service's does
        vectors = vectors if vectors is not None else text_vectors(data)
        counts = transaction_counts(data)
        sims = (vectors @ vectors[a].T).toarray().ravel()
        idx, scores, fallback = cold_start_chain(np.arange(data.n_items), sims, data.categories, counts,
                                                 [data.categories[a]], RELATION_SCAN if relation else n, items=[a])
        recs = Recs(tuple(data.items.ids_of(idx)), scores)
        note = fallback_note(model.name, fallback, known=model.items_.index(item_id) >= 0, bought=bool(counts[a]))
    if relation:  # the model's ranking, kept where the pair's evidence names the relation
        found = explainer.pair_stats(a, data.items.indices(recs.item_ids))["relation"]
        keep = np.flatnonzero(found == relation)[:n]
        recs = replace(recs, item_ids=tuple(recs.item_ids[k] for k in keep), scores=recs.scores[keep].copy())
    if explain:
        recs = explainer.explain(model, [item_id], recs)
    rows = recs.to_list()
    for r in rows:
        r["title"] = data.titles[data.items.index(r["item_id"])]
    if relation and not rows:
        note = (f"no {relation} among {FALLBACK_SOURCES[fallback]} (the first {RELATION_SCAN:,})" if fallback else
                f"no {relation} among the model's first {RELATION_SCAN:,} similar items")
    if as_json:
        click.echo(json.dumps({"item_id": item_id, "title": data.titles[a], "model": model.name, "items": rows,
                               **({"fallback": fallback} if fallback else {}), **({"note": note} if note else {})},
                              default=str))
        return
    click.echo(f"{item_id}  {data.titles[a] or ''}   (model {model.name}"
               + (f"; shown instead: {FALLBACK_SOURCES[fallback]})" if fallback else ")"))
    together = "bought together" if transaction_unit(data) == "basket" else "same customer"
    for rank, r in enumerate(rows, 1):
        line = f"{rank:>3}. {_column(r['item_id'], 12)} {_column(r['title'], 40)} {r['score']:.4f}"
        ev = r.get("evidence")
        if ev:
            sim = f"  text sim {ev['text_similarity']:.2f}" if "text_similarity" in ev else ""
            sales = (f"{together} {ev['co_count']}×, lift {ev['lift']:.1f}" if ev["lift"] is not None else
                     "not bought yet" if ev["popularity"] == 0 else f"{ev['anchor']} not bought yet")
            shared = "".join(f", same {f}" for f in ("category", "brand") if ev.get(f"same_{f}"))
            line += f"  [{ev['relation']}: {sales}{sim}{shared}]"
        click.echo(line)
    if note:
        click.echo("  " + note)


@main.command()
@click.argument("query")
@store_option
@click.option("--n", "n", default=10, show_default=True, type=click.IntRange(min=1))
@click.option("--encoder", default="both", show_default=True, type=click.Choice(["both", "sentence", "tfidf"]),
              help="The pretrained sentence-transformer (what the words mean), TF-IDF (the words and their letters: "
              "names typed with a slip), or both, by the mean of their cosines.")
@click.option("--text-model", help="Sentence-transformers model name or local folder (default: $ITEMAFFINITY_TEXT_MODEL, "
              "else all-MiniLM-L6-v2).")
@json_option
@click.pass_context
@_run_guarded
def search(ctx: click.Context, query: str, store_path: str, n: int, encoder: str, text_model: str | None,
           as_json: bool) -> None:
    """Semantic product search: free text → products."""
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.text.ann import ProductSearch, TextFusion
    from itemaffinity.text.encoders import EmbeddingCache, SentenceEncoder, TfidfEncoder, item_texts

    _require_store(store_path)
    if not query.strip():
        raise InputError("empty search query")
    data = InteractionData.from_store(store_path)
    ctx.obj["progress"]("encoding the catalog")

    def by(kind: str) -> ProductSearch:  # one query: exact search takes milliseconds where an HNSW graph over
        # 49,688 products takes 16 s to build
        enc = TfidfEncoder() if kind == "tfidf" else SentenceEncoder(text_model, cache=EmbeddingCache(store_path))
        return ProductSearch.from_data(data, enc, exact_max=data.n_items)

    recs = (TextFusion(by("sentence"), by("tfidf")) if encoder == "both" else by(encoder)).search(query, n)
    rows = [{"item_id": i, "title": data.titles[data.items.index(i)], "score": float(sc)}
            for i, sc in zip(recs.item_ids, recs.scores)]
    if as_json:
        click.echo(json.dumps({"query": query, "items": rows}))
        return
    for rank, r in enumerate(rows, 1):
        click.echo(f"{rank:>3}. {_column(r['item_id'], 12)} {_column(r['title'], 50)} {r['score']:.3f}")
    if not rows:  # say why rather than print nothing
        has_text = any(t.strip() for t in item_texts(data))
        click.echo("  no product matches" if has_text else
                   "  no product in the store has a title, description, category or brand to search")


def _add_serve() -> None:
    """`itemaffinity serve`: the REST API and web UI (defined with the service)."""
    from itemaffinity.service.__main__ import serve_command

    main.add_command(serve_command, "serve")


_add_serve()

if __name__ == "__main__":
    main()
