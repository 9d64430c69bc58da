"""Benchmark: itemaffinity's frequent itemsets and rules against pyfim, mlxtend and efficient-apriori.

Builds the Online Retail baskets once (ingest into a temporary store → InteractionData →
baskets × items), then times every tool in this one run at min_support 0.02, 0.01 and 0.005,
checks that they find the same number of itemsets (and rules), and prints a table with the
ratios ours / peer (below 1: ours is faster). Then, each in a fresh subprocess: peak RSS of ours
at min_support 0.002 with max_len 3, and the cold cost of the compiled kernel (numba import,
compiling with an empty cache, loading it from the cache).

    .venv/bin/python benchmarks/bench_mining.py [--data FILE] [--skip-mlxtend] [--skip-apriori]

Times are the best of --repeat runs (one run for mlxtend and efficient-apriori); ours are warm
(the kernel already loaded in this process), the cold costs are reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = "../shared/data/online_retail/online_retail.parquet"
SUPPORTS = (0.02, 0.01, 0.005)

# Runs in a fresh interpreter: loads the baskets, mines once, reports timings and peak RSS.
CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numba  # noqa: F401
t_import = time.perf_counter() - t0
import scipy.sparse as sp
from itemaffinity.mining import frequent_itemsets

def memory_mb(field):
    # VmHWM is the peak RSS of this address space (ru_maxrss would carry the parent's over exec).
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field)) / 1024

x = sp.load_npz(sys.argv[1])
min_support, max_len = float(sys.argv[2]), int(sys.argv[3])
before = memory_mb("VmRSS:")
t0 = time.perf_counter()
sets = frequent_itemsets(x, min_support, max_len=max_len)
first = time.perf_counter() - t0
t0 = time.perf_counter()
frequent_itemsets(x, min_support, max_len=max_len)
warm = time.perf_counter() - t0
print(json.dumps({"numba_import_s": t_import, "first_s": first, "warm_s": warm, "itemsets": len(sets),
                  "rss_before_mb": before, "rss_peak_mb": memory_mb("VmHWM:")}))
"""

def load_baskets(data: Path) -> sp.csr_matrix:
    """Ingest `data` with the online-retail preset into a temporary store; return baskets × items."""
    from itemaffinity.data.ingest import ingest_file
    from itemaffinity.data.interactions import InteractionData
    from itemaffinity.data.mapping import resolve_mapping
    from itemaffinity.mining import transactions

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "bench.duckdb"
        ingest_file(str(data), resolve_mapping("online-retail"), store)
        return transactions(InteractionData.from_store(store))


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def child(npz: Path, min_support: float, max_len: int, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(npz), str(min_support), str(max_len)],
                         capture_output=True, text=True, check=True, cwd=REPO, env={**os.environ, **(env or {})})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="Online Retail parquet (relative paths from the repository root)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per fast tool; the best is kept")
    parser.add_argument("--skip-mlxtend", action="store_true", help="leave out mlxtend (slow: ~30 s)")
    parser.add_argument("--skip-apriori", action="store_true", help="leave out efficient-apriori (slow)")
    args = parser.parse_args()
    data = Path(args.data) if Path(args.data).is_absolute() else (REPO / args.data).resolve()

    import fim
    from itemaffinity.mining import association_rules, frequent_itemsets, pair_stats, top_k_per_item

    t0 = time.perf_counter()
    x = load_baskets(data)
    print(f"Online Retail baskets: {x.shape[0]:,} × {x.shape[1]:,} items, {x.nnz:,} lines "
          f"(built in {time.perf_counter() - t0:.1f} s from {data.name})")
    as_lists = [x.indices[x.indptr[i]:x.indptr[i + 1]].tolist() for i in range(x.shape[0])]
    t0 = time.perf_counter()
    frequent_itemsets(x, 0.005)
    print(f"ours, first call in this process (numba kernel loaded from cache or compiled): "
          f"{time.perf_counter() - t0:.2f} s\n")

    rows: list[tuple] = []  # (support, tool, itemsets, rules, seconds, compare-with)
    for s in SUPPORTS:
        t_sets, sets = best_of(lambda: frequent_itemsets(x, s), args.repeat)
        t_all, rules = best_of(lambda: association_rules(frequent_itemsets(x, s)), args.repeat)
        rows += [(s, "ours: itemsets", len(sets), None, t_sets, None),
                 (s, "ours: itemsets + all rules", len(sets), len(rules), t_all, None)]
        for name, algo in (("pyfim fpgrowth", fim.fpgrowth), ("pyfim eclat", fim.eclat)):
            t, res = best_of(lambda: algo(as_lists, target="s", supp=100 * s, zmin=1, report="a"), args.repeat)
            rows.append((s, name, len(res), None, t, t_sets))
        if not args.skip_mlxtend:
            import pandas as pd
            from mlxtend.frequent_patterns import association_rules as mx_rules
            from mlxtend.frequent_patterns import fpgrowth

            frame = pd.DataFrame.sparse.from_spmatrix(x.astype(bool))
            t0 = time.perf_counter()
            found = fpgrowth(frame, min_support=s)
            t_fp = time.perf_counter() - t0
            mx = mx_rules(found, num_itemsets=x.shape[0], metric="support", min_threshold=0.0)
            t_mx = time.perf_counter() - t0
            rows += [(s, "mlxtend fpgrowth", len(found), None, t_fp, t_sets),
                     (s, "mlxtend fpgrowth + association_rules", len(found), len(mx), t_mx, t_all)]
        if not args.skip_apriori:
            from efficient_apriori import apriori

            as_tuples = [tuple(t) for t in as_lists]
            t0 = time.perf_counter()
            found, ea_rules = apriori(as_tuples, min_support=s, min_confidence=0.0, max_length=x.shape[1])
            rows.append((s, "efficient-apriori (itemsets + rules)", sum(map(len, found.values())),
                         len(ea_rules), time.perf_counter() - t0, t_all))

    print(f"{'min_support':>11}  {'tool':<38} {'itemsets':>9} {'rules':>8} {'time s':>9} {'ours/peer':>10} "
          f"{'speed-up':>9}")
    for s, tool, n_sets, n_rules, t, ours in rows:
        ratio = f"{ours / t:10.3f} {t / ours:8.1f}×" if ours else ""
        print(f"{s:>11}  {tool:<38} {n_sets:>9,} {'' if n_rules is None else f'{n_rules:,}':>8} {t:9.3f} {ratio}")
    for s in SUPPORTS:
        counts = {(tool, n_sets, n_rules) for ss, tool, n_sets, n_rules, *_ in rows if ss == s}
        same_sets = len({c[1] for c in counts}) == 1
        same_rules = len({c[2] for c in counts if c[2] is not None}) <= 1
        print(f"min_support {s}: same itemset counts for every tool: {same_sets}; same rule counts: {same_rules}")

    t_pairs, pairs = best_of(lambda: pair_stats(x, min_count=2), args.repeat)
    t_top, _ = best_of(lambda: top_k_per_item(pairs, 10, by="lift"), 1)
    t_table, table = best_of(lambda: pairs.to_arrow(), 1)
    print(f"\npair_stats, every pair with n_ab ≥ 2: {len(pairs):,} pairs in {t_pairs:.2f} s; top 10 per item by "
          f"lift {t_top:.2f} s; all {table.num_columns - 5} measures as an Arrow table {t_table:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "baskets.npz"
        sp.save_npz(npz, x)
        peak = child(npz, 0.002, 3)
        t_fim, res = best_of(lambda: fim.fpgrowth(as_lists, target="s", supp=0.2, zmin=1, zmax=3, report="a"), 1)
        print(f"min_support 0.002, max_len 3 (fresh process): {peak['itemsets']:,} itemsets in "
              f"{peak['warm_s']:.2f} s warm ({peak['first_s']:.2f} s first call); pyfim fpgrowth zmax=3: "
              f"{len(res):,} in {t_fim:.2f} s")
        print(f"  peak RSS {peak['rss_peak_mb']:.0f} MB (process with data loaded, before mining: "
              f"{peak['rss_before_mb']:.0f} MB)")
        cold = child(npz, 0.005, 10**6, env={"NUMBA_CACHE_DIR": str(Path(tmp) / "empty_cache")})
        cached = child(npz, 0.005, 10**6)
        print(f"cold costs at min_support 0.005 (fresh processes): import numba {cached['numba_import_s']:.2f} s; "
              f"first call compiling with an empty cache {cold['first_s']:.2f} s; first call loading the cache "
              f"{cached['first_s']:.2f} s; warm {cached['warm_s']:.3f} s")


if __name__ == "__main__":
    main()
