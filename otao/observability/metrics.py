"""Every Prometheus metric otao exports, defined once, on a registry handed in.

Two kinds of source. Doors and wiring hooks increment ``prometheus_client`` children bound
once per label set (a request costs a dict-free ``inc``/``observe``). Counts that objects on
the hot path already keep as plain integers (catalog cache, EFMP queries, the Avro codec, the
push worker) are read when Prometheus scrapes (``Sampled``), so the hot path pays nothing more
than the ``+= 1`` it already did. docs/observability.md lists every metric.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Protocol

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from otao.services.meters import MethodMeter, PollResult

# From 100 µs (a poll answered from the catalog) to 10 s (a call that waited out timeouts).
LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

# Every name appears in docs/observability.md.
ROLLOUT_ENDPOINTS = "otao_rollout_endpoints"
ROLLOUTS_LEFT_OUT = "otao_rollout_gauges_left_out"


class _MethodMeter:
    """One (door, method): the latency child bound at once, one counter child per code."""

    __slots__ = ("_codes", "_door", "_latency", "_method", "_requests")

    def __init__(self, requests: Counter, latency: Histogram, door: str, method: str) -> None:
        self._requests = requests
        self._door = door
        self._method = method
        self._latency = latency.labels(door, method)
        self._codes: dict[str, Counter] = {}

    def done(self, code: str, started: float) -> None:
        self._latency.observe(time.perf_counter() - started)
        child = self._codes.get(code)
        if child is None:
            child = self._codes[code] = self._requests.labels(self._door, self._method, code)
        child.inc()


class _DoorMeter:
    def __init__(self, metrics: Metrics, door: str) -> None:
        self._metrics = metrics
        self._door = door
        self._methods: dict[str, MethodMeter] = {}

    def method(self, name: str) -> MethodMeter:
        meter = self._methods.get(name)
        if meter is None:
            m = self._metrics
            meter = self._methods[name] = _MethodMeter(m.requests, m.latency, self._door, name)
        return meter


class _CdtpMeter(_DoorMeter):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__(metrics, "cdtp")
        self._polls = {result: metrics.cdtp_polls.labels(result.value) for result in PollResult}
        self._success = metrics.reports.labels("success")
        self._failure = metrics.reports.labels("failure")

    def poll(self, result: PollResult) -> None:
        self._polls[result].inc()

    def report(self, succeeded: bool) -> None:
        (self._success if succeeded else self._failure).inc()


class Metrics:
    """The metrics of one replica, on ``registry`` (its own, so tests and benches can hold
    several replicas in one process)."""

    def __init__(self, registry: CollectorRegistry, process_metrics: bool = True) -> None:
        self.registry = registry
        r = registry
        # Every metric on this registry, never on prometheus_client's global one.
        counter = partial(Counter, registry=r)
        self.requests = counter(
            "otao_requests",
            "Requests handled, by door (grpc, cdtp), method and outcome code",
            ["door", "method", "code"],
        )
        self.latency = Histogram(
            "otao_request_duration_seconds",
            "Time from receiving a request to its answer, by door and method",
            ["door", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.cdtp_polls = counter(
            "otao_cdtp_polls", "CDTP ConfigRequests answered, by result", ["result"]
        )
        self.reports = counter(
            "otao_config_applied_reports",
            "ConfigApplied reports handled, by outcome (success: 2xx status)",
            ["outcome"],
        )
        self.pushes_sent = counter("otao_pushes_sent", "ConfigUpdated notifications published")
        self.halts = counter("otao_rollout_halts", "Rollouts suspended by their rolloutPolicy")
        self.wave_advances = counter("otao_rollout_wave_advances", "Staged rollout waves opened")
        self.pending_push_jobs = Gauge(
            "otao_push_jobs_pending", "Push jobs waiting for a replica (all replicas)", registry=r
        )
        self.database_errors = counter(
            "otao_database_errors",
            "Failed database commands and heartbeats, by kind (command, heartbeat)",
            ["kind"],
        )
        self.database_reconnects = counter(
            "otao_database_reconnects",
            "Times the database became reachable again after being unreachable",
        )
        self.nats_errors = counter("otao_nats_errors", "Errors the NATS client reported")
        self.nats_reconnects = counter("otao_nats_reconnects", "Reconnections to NATS")
        self.rollouts = RolloutSnapshot()
        r.register(self.rollouts)
        if process_metrics:
            # The client's defaults (process_*, python_info, python_gc_*), on this registry.
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                r.register(collector)

    @classmethod
    def with_own_registry(cls) -> Metrics:
        return cls(CollectorRegistry())

    def grpc(self) -> _DoorMeter:
        return _DoorMeter(self, "grpc")

    def cdtp(self) -> _CdtpMeter:
        return _CdtpMeter(self)

    def database_error(self, kind: str) -> None:
        self.database_errors.labels(kind).inc()


# What ``Sampled`` reads: the plain integer attributes the objects keep anyway (the codec's
# are read-only properties).
class CatalogCounts(Protocol):
    hits: int
    misses: int
    loads: int


class MembershipCounts(Protocol):
    asked: int
    answered: int
    waited_out: int
    no_responders: int
    skipped_absent: int


class CodecCounts(Protocol):
    @property
    def undecodable(self) -> int: ...
    @property
    def trailing_ignored(self) -> int: ...


class PushCounts(Protocol):
    jobs_running: int
    endpoints_walked: int


@dataclass(eq=False)
class Sampled(Collector):
    """Counts read from the objects that keep them, when Prometheus scrapes."""

    catalogs: CatalogCounts
    membership: MembershipCounts
    codecs: Iterable[CodecCounts]
    push: PushCounts

    def __post_init__(self) -> None:
        # Read at every scrape: an iterator would be empty from the second one on.
        self.codecs = tuple(self.codecs)

    def collect(self) -> Iterator[Metric]:
        c, m, p = self.catalogs, self.membership, self.push
        yield _counter("otao_catalog_cache_hits", "Catalog reads served from memory", c.hits)
        yield _counter("otao_catalog_cache_misses", "Catalog reads that had to load", c.misses)
        yield _counter("otao_catalog_cache_loads", "Catalogs loaded from the database", c.loads)
        yield _counter("otao_efmp_questions", "EFMP membership queries sent to EPR", m.asked)
        yield _counter("otao_efmp_answers", "EFMP answers matched to a question", m.answered)
        yield _counter(
            "otao_efmp_timeouts", "EFMP queries that waited out the timeout", m.waited_out
        )
        yield _counter(
            "otao_efmp_no_responders", "EFMP queries NATS said nobody listens to", m.no_responders
        )
        yield _counter(
            "otao_efmp_skipped", "EFMP queries not sent while EPR is known absent", m.skipped_absent
        )
        dropped = CounterMetricFamily(
            "otao_messages_dropped", "NATS messages not handled, by reason", labels=["reason"]
        )
        dropped.add_metric(["undecodable"], sum(codec.undecodable for codec in self.codecs))
        yield dropped
        yield _counter(
            "otao_messages_trailing_ignored",
            "Avro payloads decoded with bytes after the last known field (newer writers)",
            sum(codec.trailing_ignored for codec in self.codecs),
        )
        yield GaugeMetricFamily(
            "otao_push_jobs_running", "Push jobs this replica works now", value=p.jobs_running
        )
        yield _counter(
            "otao_push_endpoints_walked", "Endpoints the push worker looked at", p.endpoints_walked
        )


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


@dataclass(frozen=True, slots=True)
class RolloutCounts:
    tenant_id: str
    application: str
    version: str
    offered: int
    applied: int
    failed: int


class RolloutSnapshot(Collector):
    """Per-rollout gauges, as last refreshed (``otao.observability.rollouts``)."""

    def __init__(self) -> None:
        self._rollouts: tuple[RolloutCounts, ...] = ()
        self._left_out = 0

    def replace(self, rollouts: Iterable[RolloutCounts], left_out: int) -> None:
        self._rollouts = tuple(rollouts)
        self._left_out = left_out

    def collect(self) -> Iterator[Metric]:
        endpoints = GaugeMetricFamily(
            ROLLOUT_ENDPOINTS,
            "Endpoints of a non-suspended definition, by status (offered, applied, failed)",
            labels=["tenant", "application", "version", "status"],
        )
        for r in self._rollouts:
            labels = [r.tenant_id, r.application, r.version]
            endpoints.add_metric([*labels, "offered"], r.offered)
            endpoints.add_metric([*labels, "applied"], r.applied)
            endpoints.add_metric([*labels, "failed"], r.failed)
        yield endpoints
        yield GaugeMetricFamily(
            ROLLOUTS_LEFT_OUT,
            "Non-suspended definitions without rollout gauges (beyond the bound)",
            value=self._left_out,
        )


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
}


def exported_names(registry: CollectorRegistry) -> frozenset[str]:
    """Every sample name a scrape of ``registry`` can hold (a counter ``x``: ``x_total``...)."""
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return frozenset(names)
