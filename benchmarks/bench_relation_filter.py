"""How long `similar?relation=...` takes in the service's query layer, against labelling the pairs one by one.

    python benchmarks/bench_relation_filter.py --store out/demo.duckdb            # the store's default model
    python benchmarks/bench_relation_filter.py --store out/demo.duckdb --model content-finetuned

A relation filter ("instead of" / "goes with") walks a model's ranking of up to RELATION_SCAN items until it has
n in that relation; a rare one (substitutes of a best seller) walks all of it. For the `--items` best sellers and
each relation, in one process on one snapshot, this times the service's `queries.similar` and, as the reference,
the same ranking labelled one pair at a time with `_pair_facts` (how the service did it before), stopping at n
as it did; both must keep the same items.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb
import numpy as np

from itemaffinity.models.explain import RELATION_SCAN
from itemaffinity.service import queries
from itemaffinity.service.online import OnlineState
from itemaffinity.service.queries import ItemFilter
from itemaffinity.service.snapshot import build_snapshot, load_models


def one_by_one(snap, online, model, item_id: str, relation: str, n: int) -> list[str]:
    """The reference: the model's ranking, each pair labelled alone, until n are kept."""
    a = snap.item_index(item_id)
    recs = snap.models[model].similar_items([item_id], n=RELATION_SCAN)[0]
    kept = []
    for p, b in enumerate(snap.data.items.indices(recs.item_ids)):
        ev = recs.evidence[p] if recs.evidence is not None else None
        if b >= 0 and queries._pair_facts(snap, online, a, int(b), ev)[3] == relation:
            kept.append(recs.item_ids[p])
            if len(kept) == n:
                break
    return kept


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="a store built by `itemaffinity analyze`")
    ap.add_argument("--model", default=None, help="a model the store holds (default: the store's default)")
    ap.add_argument("--items", type=int, default=100, help="best sellers asked about")
    ap.add_argument("--n", type=int, default=10)
    args = ap.parse_args()

    with duckdb.connect(str(args.store), read_only=True) as con:
        names = (args.model,) if args.model else None
        snap = build_snapshot(con, str(args.store), version=1, models=load_models(str(args.store), names, print))
    model = args.model or snap.default_model
    online = OnlineState(snap)
    best = np.argsort(-snap.item_transactions, kind="stable")[:args.items]
    ids = [snap.data.items.id(int(i)) for i in best]
    print(f"store {args.store}: {snap.n_items:,} items; model {model}; {len(ids)} best sellers, n {args.n}, "
          f"ranking depth {RELATION_SCAN:,}")
    print(f"{'relation':<12} {'items kept':>10} {'service ms':>11} {'one by one ms':>14} {'speed-up':>9}")
    for relation in ("substitute", "complement", "related"):
        t0 = time.perf_counter()
        service = [[i["item_id"] for i in queries.similar(snap, online, item_id, model=model, n=args.n,
                                                          filt=ItemFilter(), explain=False, relation=relation)["items"]]
                   for item_id in ids]
        t1 = time.perf_counter()
        reference = [one_by_one(snap, online, model, item_id, relation, args.n) for item_id in ids]
        t2 = time.perf_counter()
        assert service == reference, f"{relation}: the service keeps other items than the pairs labelled one by one"
        ms_service, ms_reference = (t1 - t0) / len(ids) * 1e3, (t2 - t1) / len(ids) * 1e3
        print(f"{relation:<12} {sum(map(len, service)):>10,} {ms_service:>11.1f} {ms_reference:>14.1f} "
              f"{ms_reference / ms_service:>8.1f}×")


if __name__ == "__main__":
    main()
