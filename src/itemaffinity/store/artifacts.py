"""Where fitted models and evaluation results of a store live.

Models are saved next to the store file in `<store>.artifacts/models/<name>.{npz,json}` (no
pickle), a fine-tuned text encoder in `<store>.artifacts/encoders/<name>/`; evaluation rows go into
the store's `evaluations` table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb

from itemaffinity.evaluation.experiment import VS_BEST
from itemaffinity.models.base import Recommender
from itemaffinity.models.registry import load_model
from itemaffinity.store.duckdb_store import table_exists


def artifact_dir(store_path: str | Path) -> Path:
    p = Path(store_path)
    return p.with_name(p.name + ".artifacts")


def model_path(store_path: str | Path, name: str) -> Path:
    return artifact_dir(store_path) / "models" / name


def encoder_path(store_path: str | Path, name: str) -> Path:
    """Folder of a model's fine-tuned text encoder (sentence-transformers format)."""
    return artifact_dir(store_path) / "encoders" / name


def save_model(store_path: str | Path, model: Recommender, name: str | None = None) -> Path:
    return model.save(model_path(store_path, name or model.name))


def load_saved_model(store_path: str | Path, name: str) -> Recommender | None:
    path = model_path(store_path, name)
    return bind_to_store(load_model(path), store_path) if path.with_suffix(".json").is_file() else None


def bind_to_store(model: Recommender, store_path: str | Path) -> Recommender:
    """`model` with the store it is loaded from as its embedding cache (also when saved without one, as `analyze`
    saved models before the store cached their vectors) and, where its fit saved a fine-tuned encoder into a store's
    artifacts, with this store's encoder folder: a saved model names the paths of the store it was fitted for, and a
    store copied or moved elsewhere (built on one machine, served on another) brings its own."""
    store = Path(store_path).resolve()
    cfg, update = model.config, {}
    if "embedding_cache" in type(cfg).model_fields:
        update["embedding_cache"] = str(store)
    encoder = Path(getattr(cfg, "output_dir", None) or "")
    if encoder.parent.name == "encoders" and encoder.parent.parent.name.endswith(".artifacts"):
        update["output_dir"] = str(encoder_path(store, encoder.name))
    if update:
        model.config = cfg.model_copy(update=update)
    for component in getattr(model, "components_", []):  # a hybrid's, saved beside it
        bind_to_store(component, store)
    return model


def saved_models(store_path: str | Path) -> list[str]:
    folder = artifact_dir(store_path) / "models"
    # "name__component" files belong to a hybrid model, not models of their own.
    return sorted(p.stem for p in folder.glob("*.json") if "__" not in p.stem) if folder.is_dir() else []


def default_model(store_path: str | Path, fallback: str = "ease") -> str:
    """The model named in the store's meta as default (set by analyze), else `fallback`."""
    with duckdb.connect(str(store_path), read_only=True) as con:
        row = con.execute("SELECT value FROM meta WHERE key = 'default_model'").fetchone()
    return row[0] if row else fallback


def record_evaluations(store_path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Append leaderboard rows to the store's `evaluations` table (one JSON document per row)."""
    if not rows:
        return
    with duckdb.connect(str(store_path)) as con:
        con.execute("""CREATE TABLE IF NOT EXISTS evaluations (recorded_at TIMESTAMP DEFAULT now(),
                       task VARCHAR, model VARCHAR, ndcg10 DOUBLE, row VARCHAR)""")
        con.executemany("INSERT INTO evaluations (task, model, ndcg10, row) VALUES (?, ?, ?, ?)",
                        [(r["task"], r["model"], r.get("NDCG@10"), json.dumps(r, default=str)) for r in rows])


def latest_evaluations(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The most recent row per (task, model label), best first within each task. The rows can come from
    different runs, so a row keeps its NDCG@10 over the leader's only when its run's leader is this table's
    (the same label and NDCG@10); otherwise those fields are None."""
    if not table_exists(con, "evaluations"):
        return []
    rows = con.execute("""SELECT row FROM (SELECT row, row_number() OVER (PARTITION BY task, json_extract_string(row, '$.label')
                          ORDER BY recorded_at DESC) AS r FROM evaluations) WHERE r = 1""").fetchall()
    out = sorted((json.loads(r[0]) for r in rows), key=lambda r: (r["task"], -(r.get("NDCG@10") or 0)))
    leaders: dict[str, dict[str, Any]] = {}
    for r in out:
        leader = leaders.setdefault(r["task"], {"label": r.get("label", r["model"]), "NDCG@10": r.get("NDCG@10")})
        if r.get("NDCG@10_vs_best_of") != leader:  # compared, in an earlier run, with a model that is not this leader
            r.update(dict.fromkeys(VS_BEST))
    return out
