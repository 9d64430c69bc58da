"""`python -m itemaffinity.service`: the `serve` command (also mounted as `itemaffinity serve`)."""

from __future__ import annotations

import logging
import sys

import click

from itemaffinity.errors import InputError
from itemaffinity.service.settings import Settings


@click.command("serve")
@click.option("--store", "store_path", default=None, help="DuckDB store file  [default: $ITEMAFFINITY_STORE "
              "or itemaffinity.duckdb]")
@click.option("--host", default=None, help="Address to bind  [default: 127.0.0.1]")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Port  [default: 8000]")
@click.option("--workers", default=None, type=click.IntRange(1, 64),
              help="Worker processes; more than one makes read-only replicas (writes refused)  [default: 1]")
@click.option("--read-only", is_flag=True, default=None, help="Never write to the store (no event ingest, no rebuild).")
@click.option("--semantic", type=click.Choice(["auto", "sentence", "tfidf", "off"]), default=None,
              help="Text search layer: auto is the sentence model and TF-IDF together (meaning, and names typed "
              "with a slip)  [default: auto]")
@click.option("--text-model", default=None, help="Sentence model of semantic search, a name or local folder "
              "(e.g. a multilingual model for a Chinese catalog)  [default: all-MiniLM-L6-v2]")
@click.option("--models", "models_text", default=None, metavar="A,B", help="Models to load  [default: all saved]")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@click.option("--access-log", is_flag=True, help="Log every request (off: use /metrics).")
def serve_command(store_path: str | None, host: str | None, port: int | None, workers: int | None,
                  read_only: bool | None, semantic: str | None, text_model: str | None, models_text: str | None,
                  log_level: str,
                  access_log: bool) -> None:
    """Serve the REST API (OpenAPI at /docs) and the web UI (at /) for a store.

    API keys for writes come from $ITEMAFFINITY_API_KEYS (comma-separated), never from the command
    line. Binds 127.0.0.1 unless --host says otherwise.
    """
    from itemaffinity.service.server import run

    logging.basicConfig(level=getattr(logging, log_level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    models = tuple(m.strip() for m in models_text.split(",") if m.strip()) if models_text else None
    try:
        settings = Settings.from_env(store_path=store_path, host=host, port=port, workers=workers,
                                     read_only=read_only, semantic=semantic, text_model=text_model, models=models)
        run(settings, log_level=log_level, access_log=access_log)
    except InputError as exc:
        click.echo(f"itemaffinity: error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    serve_command()
