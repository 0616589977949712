"""In-process counters and latency quantiles, served as JSON (``/api/metrics``) and Prometheus text
(``/metrics``). Plain integers in one object: the hot path pays an attribute increment, no lock
(one event loop thread writes them)."""

from __future__ import annotations

from collections import Counter, deque

import numpy as np

_QUANTILES = (0.5, 0.95, 0.99)


class GatewayMetrics:
    def __init__(self, window: int = 10_000) -> None:
        # (route, status) -> count; a plain dict: `d[k] = d.get(k, 0) + 1` is ~3x cheaper than a Counter's +=
        self.requests: dict[tuple[str, int], int] = {}
        self.events_accepted = 0
        self.events_duplicate = 0
        self.events_rejected: Counter[str] = Counter()  # reason -> count
        self.events_rate_limited = 0
        self.requests_rate_limited = 0
        self.requests_shed = 0
        self.produce_failures = 0
        # Shared state (Redis): failures, lease round trips, what was let through on local state.
        self.shared_state_errors = 0
        self.rate_limit_leases = 0
        self.rate_limit_fail_open_events = 0
        self.idempotency_fail_open = 0
        # Query API: answers from the cache (of them, from Redis), run on the warehouse, never cacheable.
        self.query_cache_hits = 0
        self.query_cache_shared_hits = 0
        self.query_cache_misses = 0
        self.query_cache_bypassed = 0
        self.queries_rate_limited = 0
        self._produce_latency_s: deque[float] = deque(maxlen=window)
        # observe_produce(seconds): called once per request, so the deque's own append (no Python frame).
        self.observe_produce = self._produce_latency_s.append
        self._query_hit_s: deque[float] = deque(maxlen=window)
        self._query_miss_s: deque[float] = deque(maxlen=window)
        self.observe_query_hit = self._query_hit_s.append
        self.observe_query_miss = self._query_miss_s.append

    def produce_quantiles_ms(self) -> dict[str, float | None]:
        return _quantiles_ms(self._produce_latency_s)

    def query_latency_ms(self) -> dict[str, dict[str, float | None]]:
        """Query API answer times (from the service's view: scoping, cache, warehouse), hits and misses."""
        return {"hit": _quantiles_ms(self._query_hit_s), "miss": _quantiles_ms(self._query_miss_s)}

    def query_cache_hit_ratio(self) -> float | None:
        looked_up = self.query_cache_hits + self.query_cache_misses
        return round(self.query_cache_hits / looked_up, 4) if looked_up else None

    def snapshot(self, **gauges: int) -> dict:
        return {
            "requests": [{"route": r, "status": s, "count": c} for (r, s), c in sorted(self.requests.items())],
            "requests_total": sum(self.requests.values()),
            "events_accepted": self.events_accepted,
            "events_duplicate": self.events_duplicate,
            "events_rejected": dict(self.events_rejected),
            "events_rejected_total": sum(self.events_rejected.values()),
            "events_rate_limited": self.events_rate_limited,
            "requests_rate_limited": self.requests_rate_limited,
            "requests_shed": self.requests_shed,
            "produce_failures": self.produce_failures,
            "shared_state_errors": self.shared_state_errors,
            "rate_limit_leases": self.rate_limit_leases,
            "rate_limit_fail_open_events": self.rate_limit_fail_open_events,
            "idempotency_fail_open": self.idempotency_fail_open,
            "produce_latency_ms": self.produce_quantiles_ms(),
            "query_cache_hits": self.query_cache_hits,
            "query_cache_shared_hits": self.query_cache_shared_hits,
            "query_cache_misses": self.query_cache_misses,
            "query_cache_bypassed": self.query_cache_bypassed,
            "query_cache_hit_ratio": self.query_cache_hit_ratio(),
            "queries_rate_limited": self.queries_rate_limited,
            "query_latency_ms": self.query_latency_ms(),
            **gauges,
        }

    def prometheus(self, **gauges: int) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float | None]]) -> None:
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            # no value yet (no request timed): Prometheus' NaN, not Python's "None"
            lines.extend(f"{name}{labels} {'NaN' if value is None else value}" for labels, value in samples)

        metric(
            "eventpulse_gateway_requests_total",
            "counter",
            "HTTP requests by route and status.",
            [(f'{{route="{r}",status="{s}"}}', c) for (r, s), c in sorted(self.requests.items())],
        )
        metric(
            "eventpulse_gateway_events_accepted_total",
            "counter",
            "Events acknowledged by the broker.",
            [("", self.events_accepted)],
        )
        metric(
            "eventpulse_gateway_events_duplicate_total",
            "counter",
            "Resent events answered from the recent-id cache.",
            [("", self.events_duplicate)],
        )
        metric(
            "eventpulse_gateway_events_rejected_total",
            "counter",
            "Invalid events by reason.",
            [(f'{{reason="{r}"}}', c) for r, c in sorted(self.events_rejected.items())],
        )
        metric(
            "eventpulse_gateway_events_rate_limited_total",
            "counter",
            "Events refused with 429.",
            [("", self.events_rate_limited)],
        )
        metric(
            "eventpulse_gateway_requests_shed_total",
            "counter",
            "Requests refused with 503 (queue full, broker down).",
            [("", self.requests_shed)],
        )
        metric(
            "eventpulse_gateway_produce_failures_total",
            "counter",
            "Requests whose events the broker did not ack.",
            [("", self.produce_failures)],
        )
        metric(
            "eventpulse_gateway_shared_state_errors_total",
            "counter",
            "Redis calls that failed (the gateway then used its local state).",
            [("", self.shared_state_errors)],
        )
        metric(
            "eventpulse_gateway_rate_limit_leases_total",
            "counter",
            "Round trips to Redis to lease rate-limit tokens.",
            [("", self.rate_limit_leases)],
        )
        metric(
            "eventpulse_gateway_rate_limit_fail_open_events_total",
            "counter",
            "Events admitted by the local rate limit while Redis was unreachable.",
            [("", self.rate_limit_fail_open_events)],
        )
        metric(
            "eventpulse_gateway_idempotency_fail_open_total",
            "counter",
            "Acknowledged ids remembered by this process only because Redis was unreachable.",
            [("", self.idempotency_fail_open)],
        )
        quantiles = self.produce_quantiles_ms()
        metric(
            "eventpulse_gateway_produce_latency_ms",
            "summary",
            "Time from produce to broker ack per request (recent window).",
            [
                (f'{{quantile="{q}"}}', quantiles[k])
                for q, k in zip(_QUANTILES, ("p50", "p95", "p99"), strict=True)
                if quantiles[k] is not None
            ],
        )
        metric(
            "eventpulse_gateway_query_cache_total",
            "counter",
            "Query API answers by cache outcome (hit includes shared: answered from Redis).",
            [
                ('{result="hit"}', self.query_cache_hits),
                ('{result="shared"}', self.query_cache_shared_hits),
                ('{result="miss"}', self.query_cache_misses),
                ('{result="bypassed"}', self.query_cache_bypassed),
            ],
        )
        metric(
            "eventpulse_gateway_queries_rate_limited_total",
            "counter",
            "Query API requests refused with 429 (the key's query bucket was empty).",
            [("", self.queries_rate_limited)],
        )
        latency = self.query_latency_ms()
        metric(
            "eventpulse_gateway_query_latency_ms",
            "summary",
            "Query API answer time by cache outcome (recent window).",
            [
                (f'{{cache="{outcome}",quantile="{q}"}}', values[k])
                for outcome, values in latency.items()
                for q, k in zip(_QUANTILES, ("p50", "p95", "p99"), strict=True)
                if values[k] is not None
            ],
        )
        for name, value in sorted(gauges.items()):
            metric(f"eventpulse_gateway_{name}", "gauge", name.replace("_", " ").capitalize() + ".", [("", value)])
        return "\n".join(lines) + "\n"


def _quantiles_ms(samples: deque[float]) -> dict[str, float | None]:
    if not samples:
        return {"p50": None, "p95": None, "p99": None}
    values = np.quantile(np.fromiter(samples, float), _QUANTILES) * 1000
    return {"p50": round(float(values[0]), 3), "p95": round(float(values[1]), 3), "p99": round(float(values[2]), 3)}
