"""Request and ingest metrics in the Prometheus text format (no client library needed).

Counts are per process: with several workers each keeps its own, labelled with its pid.
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""Latency histogram bucket bounds, in seconds."""


def _labels(**kv: object) -> str:
    esc = {k: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for k, v in kv.items()}
    return "{" + ",".join(f'{k}="{v}"' for k, v in esc.items()) + "}"


class Metrics:
    """Counters and latency histograms, updated by the middleware and the event route."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[tuple[str, str], list[int]] = {}
        self.latency_sum: dict[tuple[str, str], float] = defaultdict(float)
        self.events_accepted = 0
        self.events_rejected = 0
        self.event_batches = 0
        self.pid = os.getpid()

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests[(route, method, status)] += 1
        key = (route, method)
        counts = self.latency.get(key)
        if counts is None:
            counts = self.latency[key] = [0] * (len(BUCKETS) + 1)
        counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.latency_sum[key] += seconds

    def render(self, gauges: dict[str, tuple[str, float]]) -> str:
        """The exposition text; `gauges` maps a metric name to (help text, value)."""
        pid = self.pid
        out = ["# HELP itemaffinity_http_requests_total HTTP requests by route template, method and status.",
               "# TYPE itemaffinity_http_requests_total counter"]
        for (route, method, status), n in sorted(self.requests.items()):
            out.append(f"itemaffinity_http_requests_total{_labels(route=route, method=method, status=status, pid=pid)} {n}")
        out += ["# HELP itemaffinity_http_request_duration_seconds Request latency by route template and method.",
                "# TYPE itemaffinity_http_request_duration_seconds histogram"]
        for (route, method), counts in sorted(self.latency.items()):
            cum = 0
            for bound, c in zip((*BUCKETS, float("inf")), counts):
                cum += c
                le = "+Inf" if bound == float("inf") else repr(bound)
                out.append("itemaffinity_http_request_duration_seconds_bucket"
                           f"{_labels(route=route, method=method, le=le, pid=pid)} {cum}")
            lab = _labels(route=route, method=method, pid=pid)
            out.append(f"itemaffinity_http_request_duration_seconds_sum{lab} {self.latency_sum[(route, method)]:.6f}")
            out.append(f"itemaffinity_http_request_duration_seconds_count{lab} {cum}")
        counters = {"itemaffinity_events_ingested_total": ("Posted events accepted and stored.", self.events_accepted),
                    "itemaffinity_events_rejected_total": ("Posted events rejected by validation.", self.events_rejected),
                    "itemaffinity_event_batches_total": ("Event batches written.", self.event_batches)}
        for name, (help_text, value) in counters.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} counter", f"{name}{_labels(pid=pid)} {value}"]
        for name, (help_text, value) in gauges.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{_labels(pid=pid)} {value}"]
        return "\n".join(out) + "\n"
