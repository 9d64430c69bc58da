"""Load test of the REST service on the Online Retail store: throughput and latency per endpoint.

    python benchmarks/bench_service.py --store out/demo.duckdb          # a store built by `analyze`
    python benchmarks/bench_service.py                                  # builds one first (minutes)

Starts the server on 127.0.0.1 twice, from copies of the store: `--workers N` read-only replicas
for the reads (`similar`, `bought-together`, `baskets/complete`), and one read-write worker for
`POST /v1/events`. Reads are driven by wrk (Debian package `wrk`) when it is installed, else by
an asyncio/httpx client; events by an asyncio/httpx client posting batches. Every run is bounded
in time (and the event run in events too) and stops by itself. Item ids are drawn at random from
the 1,000 best-selling products. The server precomputes the plain `similar` and
`bought-together` answers of every item after it starts (the time is printed); those runs are
"cached". `similar?explain=true` is not precomputed: its run starts with an empty cache and shows
the cost of computing answers ("computed", cached as they come). `baskets/complete` is computed
for every request.

The cached GETs run twice: "saturated" (every connection sends its next request as soon as the
last one is answered: the most the server can do, with queueing in every latency) and "paced"
(each connection waits PACE_MS between requests, with enough connections for about
`--paced-rate` requests/s: the latency a shop sees at that sustained rate).

Prints one row per run: requests (or events) per second, p50/p99 latency, errors, and the load
average of the machine before and after the run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"
PACE_MS = 5  # paced runs: each connection waits this long between requests

WRK_GET = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
math.randomseed(%(seed)d)
request = function()
  return wrk.format("GET", string.format("%(path)s", ids[math.random(#ids)]))
end
%(delay)s
"""

WRK_BASKET = """
local ids = {}
for line in io.lines("%(ids)s") do ids[#ids + 1] = line end
math.randomseed(%(seed)d)
request = function()
  local body = string.format('{"items": ["%%s", "%%s", "%%s"], "n": 10}',
    ids[math.random(#ids)], ids[math.random(#ids)], ids[math.random(#ids)])
  return wrk.format("POST", "/v1/baskets/complete", {["Content-Type"] = "application/json"}, body)
end
%(delay)s
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_store(store: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    out = dest / store.name
    shutil.copy2(store, out)
    shutil.copytree(store.with_name(store.name + ".artifacts"), out.with_name(out.name + ".artifacts"))
    return out


class Server:
    """`python -m itemaffinity.service` on 127.0.0.1 in its own process group."""

    def __init__(self, store: Path, workers: int, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ITEMAFFINITY_API_KEYS": API_KEY}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "itemaffinity.service", "--store", str(store), "--port", str(self.port),
             "--workers", str(workers), "--semantic", "off", "--log-level", "warning"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait(self, timeout: float = 300) -> "Server":
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise SystemExit(f"server did not start within {timeout}s; see {self.log.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(url: str, script: Path, seconds: float, connections: int, threads: int) -> dict:
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
    if "50" not in pct or "99" not in pct:
        raise SystemExit(f"could not read wrk's output:\n{out}")
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"requests": total, "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": _ms(pct["50"]), "p99_ms": _ms(pct["99"]),
            "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)}


async def _drive(url: str, make_request, seconds: float, max_requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal sent, errors
            while time.monotonic() < deadline and sent < max_requests:
                sent += 1
                method, path, body = make_request()
                t0 = time.perf_counter()
                r = await client.request(method, path, json=body, headers={"X-API-Key": API_KEY})
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code >= 300
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    latencies.sort()
    q = lambda p: 1e3 * latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")  # noqa: E731
    return {"requests": len(latencies), "rate": len(latencies) / wall, "p50_ms": q(0.5), "p99_ms": q(0.99),
            "errors": errors, "wall": wall}


def run_python(url: str, kind: str, ids: list[str], seconds: float, connections: int) -> dict:
    rng = random.Random(0)
    if kind == "basket":
        make = lambda: ("POST", "/v1/baskets/complete", {"items": rng.sample(ids, 3), "n": 10})  # noqa: E731
    else:
        make = lambda: ("GET", kind % rng.choice(ids), None)  # noqa: E731
    return asyncio.run(_drive(url, make, seconds, 10**9, connections))


def run_events(url: str, ids: list[str], seconds: float, max_events: int, batch: int, concurrency: int) -> dict:
    rng = random.Random(1)
    counter = iter(range(10**9))
    tag = f"{os.getpid()}-{int(time.time())}"

    def make():
        k = next(counter)
        events = []
        for b in range(batch // 5):  # baskets of 5 purchases by one of 2,000 shoppers
            user = f"bench-user-{rng.randrange(2000)}"
            for item in rng.sample(ids, 5):
                events.append({"item_id": item, "basket_id": f"bench-{tag}-{k}-{b}", "user_id": user,
                               "event": "purchase", "quantity": 1})
        return "POST", "/v1/events", {"events": events}

    res = asyncio.run(_drive(url, make, seconds, max(1, max_events // batch), concurrency))
    res["events"] = res["requests"] * batch
    res["events_per_s"] = res["events"] / res["wall"]
    return res


def build_store(folder: Path) -> Path:
    store = folder / "bench.duckdb"
    print(f"building the Online Retail store with `itemaffinity analyze` into {store} (minutes) …", flush=True)
    subprocess.run([sys.executable, "-m", "itemaffinity.cli", "analyze", "--store", str(store), "--out",
                    str(folder / "report")], check=True, stdout=subprocess.DEVNULL)
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, help="store built by `itemaffinity analyze` (default: build one)")
    ap.add_argument("--workers", type=int, default=2, help="read-only worker processes for the read runs")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each measured run")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--events", type=int, default=300_000, help="most events posted in the event run")
    ap.add_argument("--batch", type=int, default=1000, help="events per POST")
    ap.add_argument("--paced-rate", type=float, default=3300.0,
                    help="requests/s the paced runs aim at (wrk only)")
    ap.add_argument("--tool", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    tool = "wrk" if args.tool == "wrk" or (args.tool == "auto" and shutil.which("wrk")) else "python"
    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    servers: list[Server] = []
    rows: list[dict] = []
    try:
        store = args.store.resolve() if args.store else build_store(work)
        reads = Server(copy_store(store, work / "reads"), args.workers, work / "reads.log")
        writes = Server(copy_store(store, work / "writes"), 1, work / "writes.log")
        servers += [reads, writes]
        reads.wait()
        writes.wait()
        t0 = time.monotonic()
        while not httpx.get(reads.url + "/health").json()["precomputed"]:
            if time.monotonic() - t0 > 900:
                raise SystemExit("precomputation did not finish within 15 minutes")
            time.sleep(1)
        print(f"precomputed answers ready {time.monotonic() - t0:.0f}s after the server came up", flush=True)
        health = httpx.get(reads.url + "/health").json()
        ids = [i["item_id"] for i in httpx.get(reads.url + "/v1/items", params={"limit": 1000}).json()["items"]]
        ids_file = work / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        print(f"store {store}: {health['items']:,} items, {health['baskets']:,} baskets, default model "
              f"{health['default_model']}; {os.cpu_count()} CPUs; tool {tool}; read server {args.workers} workers; "
              f"{args.connections} connections", flush=True)

        def record(name: str, phase: str, res: dict, load0: tuple) -> None:
            row = {"endpoint": name, "phase": phase, **res, "load_before": load0[0], "load_after": os.getloadavg()[0]}
            rows.append(row)
            rate = f"{res['events_per_s']:>9,.0f} events/s" if "events_per_s" in res else f"{res['rate']:>9,.0f} req/s   "
            print(f"{name:<24} {phase:<11} {rate}  p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  "
                  f"n {res['requests']:>8,}  errors {res['errors']}  load {row['load_before']:.2f}→{row['load_after']:.2f}",
                  flush=True)

        paced = max(1, round(args.paced_rate * (PACE_MS + 0.8) / 1000))  # 0.8 ms: about one answer
        runs = [("GET similar", "cached", "/v1/items/%s/similar?n=10", WRK_GET, None),
                ("GET bought-together", "cached", "/v1/items/%s/bought-together?n=10", WRK_GET, None),
                ("GET similar", "paced", "/v1/items/%s/similar?n=10", WRK_GET, PACE_MS),
                ("GET bought-together", "paced", "/v1/items/%s/bought-together?n=10", WRK_GET, PACE_MS),
                ("GET similar explain", "computed", "/v1/items/%s/similar?n=10&explain=true", WRK_GET, None),
                ("POST baskets/complete", "computed", "basket", WRK_BASKET, None)]
        for name, phase, path, lua, delay in runs:
            if delay is not None and tool != "wrk":
                continue
            script = work / (re.sub(r"\W+", "_", f"{name} {phase}") + ".lua")
            script.write_text(lua % {"ids": ids_file, "seed": 7, "path": path,
                                     "delay": f"delay = function() return {delay} end" if delay else ""})
            load0 = os.getloadavg()
            conns = paced if delay else args.connections
            res = run_wrk(reads.url, script, args.seconds, conns, args.threads) if tool == "wrk" else \
                run_python(reads.url, path, ids, args.seconds, conns)
            record(name, phase if delay is None else f"paced {conns}c", res, load0)
        load0 = os.getloadavg()
        res = run_events(writes.url, ids, args.seconds * 2, args.events, args.batch, concurrency=4)
        record(f"POST events ({args.batch}/req)", "stored", res, load0)
        after = httpx.get(writes.url + "/health").json()
        print(f"events folded into the live statistics: {after['events_since_snapshot']:,}")
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
