"""A small Prometheus text-format registry: request counters and latency histograms.

Kept in-process and dependency-free; thread-safe (searches run on a thread pool).
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.errors: dict[tuple[str, int], int] = defaultdict(int)
        self._hist: dict[str, list[int]] = {}
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)

    def request(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self.requests[(method, route, status)] += 1
            if status >= 400:
                self.errors[(route, status)] += 1

    def observe_search(self, method: str, seconds: float) -> None:
        with self._lock:
            h = self._hist.setdefault(method, [0] * (len(BUCKETS) + 1))
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
                    break
            else:
                h[-1] += 1
            self._sum[method] += seconds
            self._count[method] += 1

    def render(self) -> str:
        with self._lock:
            out = [
                "# HELP lsr_http_requests_total HTTP requests by method, route and status.",
                "# TYPE lsr_http_requests_total counter",
            ]
            for (m, r, s), n in sorted(self.requests.items()):
                out.append(f'lsr_http_requests_total{{method="{m}",route="{r}",status="{s}"}} {n}')
            out += [
                "# HELP lsr_http_errors_total HTTP responses with status >= 400.",
                "# TYPE lsr_http_errors_total counter",
            ]
            for (r, s), n in sorted(self.errors.items()):
                out.append(f'lsr_http_errors_total{{route="{r}",status="{s}"}} {n}')
            out += [
                "# HELP lsr_search_seconds Time to encode and search one query, by search method.",
                "# TYPE lsr_search_seconds histogram",
            ]
            for method, h in sorted(self._hist.items()):
                cum = 0
                for b, n in zip(BUCKETS, h, strict=False):
                    cum += n
                    out.append(f'lsr_search_seconds_bucket{{method="{method}",le="{b}"}} {cum}')
                cum += h[-1]
                out.append(f'lsr_search_seconds_bucket{{method="{method}",le="+Inf"}} {cum}')
                out.append(f'lsr_search_seconds_sum{{method="{method}"}} {self._sum[method]}')
                out.append(f'lsr_search_seconds_count{{method="{method}"}} {self._count[method]}')
            return "\n".join(out) + "\n"
