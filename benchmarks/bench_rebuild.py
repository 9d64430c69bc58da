"""How long the service's `POST /v1/admin/rebuild` takes on a store built by `analyze`, step by step.

    python benchmarks/bench_rebuild.py --store out/demo.duckdb                   # every loaded model, clustering
    python benchmarks/bench_rebuild.py --store out/demo.duckdb --models hybrid --no-cluster
    python benchmarks/bench_rebuild.py --store out/demo.duckdb --relearn         # learn everything again

Starts the server on 127.0.0.1 from a copy of the store (the store itself is not changed: a loaded model's embedding
cache and fine-tuned encoder folder are the copy's), asks for a rebuild, follows the job to its end and prints how
long each step took, and whether the default model answers a known customer as before (on unchanged events a
refresh should).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

import httpx

from bench_service import API_KEY, Server, copy_store

CUSTOMER = "17850"  # Online Retail's first customer; any known user id works (--user)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="a store built by `itemaffinity analyze`")
    ap.add_argument("--models", default=None, help="comma-separated models to rebuild (default: the loaded ones)")
    ap.add_argument("--no-cluster", action="store_true", help="keep the product groups and customer segments")
    ap.add_argument("--relearn", action="store_true", help="learn the hybrid's rankers and fine-tune again")
    ap.add_argument("--user", default=CUSTOMER, help="customer whose recommendations are compared")
    args = ap.parse_args()
    body = {"cluster": not args.no_cluster, "relearn": args.relearn}
    if args.models:
        body["models"] = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        store = copy_store(args.store.resolve(), Path(tmp) / "store")
        server = Server(store, 1, Path(tmp) / "server.log").wait()
        try:
            recs = f"{server.url}/v1/users/{args.user}/recommendations?n=10"
            before = httpx.get(recs, timeout=60).json()
            headers = {"X-API-Key": API_KEY}
            job = httpx.post(f"{server.url}/v1/admin/rebuild", json=body, headers=headers, timeout=60).json()
            while job["status"] in ("queued", "running"):
                time.sleep(1)
                job = httpx.get(f"{server.url}/v1/admin/jobs/{job['id']}", headers=headers, timeout=60).json()
            after = httpx.get(recs, timeout=60).json()
        finally:
            server.stop()
    print(f"rebuild {body}: {job['status']}" + (f" ({job['error']})" if job["error"] else ""))
    steps = job["steps"] + [{"at": job["finished_at"], "message": "(end)"}]
    for step, nxt in zip(steps, steps[1:]):
        took = dt.datetime.fromisoformat(nxt["at"]) - dt.datetime.fromisoformat(step["at"])
        print(f"  {took.total_seconds():6.0f} s  {step['message']}")
    if job["result"]:
        print(f"total {job['result']['seconds']} s (the job's own clock; steps are timed to the second)")
    same = [(i["item_id"], round(i["score"], 4)) for i in before["items"]] == \
        [(i["item_id"], round(i["score"], 4)) for i in after["items"]]
    print(f"{before['model']} for customer {args.user}: {'the same' if same else 'other'} items and scores after")


if __name__ == "__main__":
    main()
