"""Counters of one gateway process, and their Prometheus exposition (``/metrics``).

The hot path increments plain integers on :class:`Stats` (no locks, no label look-ups);
a custom collector turns them into Prometheus metrics at scrape time. Only the
append-to-send latency is a real ``Histogram``, observed once per event.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics", "Stats"]


@dataclass(slots=True)
class Stats:
    connections_opened: int = 0
    connections_closed: int = 0
    connections_refused: int = 0
    auth_failures: int = 0
    events_read: int = 0
    entries_skipped: int = 0
    events_matched: int = 0
    deliveries: int = 0
    slow_consumer_closes: int = 0
    rate_limit_closes: int = 0
    replayed: int = 0
    replay_reads: int = 0
    replay_served: int = 0
    mirror_published: int = 0
    mirror_claimed: int = 0
    reader_errors: int = 0
    #: restarts of supervised components (``gateway.supervisor``), by name
    component_restarts: Counter[str] = field(default_factory=Counter)
    pending_sockets_refused: int = 0
    request_head_timeouts: int = 0
    #: client messages answered PARSE_ERROR / INVALID_* (any protocol version)
    malformed_messages: int = 0
    #: frames of the other kind than the connection's format, closed with 1003
    unsupported_frames: int = 0
    #: ``refresh`` messages (protocol version 2), accepted or refused
    token_refreshes: int = 0
    presence_flushes: int = 0
    presence_reloads: int = 0
    presence_expired: int = 0
    presence_diffs: int = 0
    #: events a conflating subscription's connection replaced by a later one
    events_conflated: int = 0


class _Collector(Collector):
    def __init__(self, stats: Stats, gauges: Callable[[], dict[str, float]]) -> None:
        self.stats: Stats = stats
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        s = self.stats
        counters = {
            "connections_opened": (s.connections_opened, "WebSocket connections accepted"),
            "connections_closed": (s.connections_closed, "WebSocket connections closed"),
            "connections_refused": (
                s.connections_refused,
                "upgrades refused (auth, origin, limit)",
            ),
            "auth_failures": (s.auth_failures, "failed authentications"),
            "events_read": (s.events_read, "stream entries read"),
            "entries_skipped": (s.entries_skipped, "stream entries skipped as unusable"),
            "events_matched": (s.events_matched, "events matching at least one connection"),
            "deliveries": (s.deliveries, "events queued to connections"),
            "slow_consumer_closes": (s.slow_consumer_closes, "connections closed with 4008"),
            "rate_limit_closes": (s.rate_limit_closes, "connections closed with 4029"),
            "replayed": (s.replayed, "events delivered by resume replays"),
            "replay_reads": (s.replay_reads, "log reads by the shared replay"),
            "replay_served": (
                s.replay_served,
                "connections served by replay reads, from the log or memory (over replay_reads: "
                "how many connections share a read)",
            ),
            "mirror_published": (s.mirror_published, "legacy pub/sub messages published"),
            "mirror_claimed": (s.mirror_claimed, "mirror entries claimed from dead pods"),
            "reader_errors": (s.reader_errors, "stream read failures"),
            "pending_sockets_refused": (
                s.pending_sockets_refused,
                "sockets closed at once: MAX_PENDING_SOCKETS were waiting for their request",
            ),
            "malformed_messages": (
                s.malformed_messages,
                "client messages that could not be decoded (answered PARSE_ERROR, UNKNOWN_TYPE, INVALID_*)",
            ),
            "unsupported_frames": (
                s.unsupported_frames,
                "connections closed (1003): a frame of the other kind than their format",
            ),
            "token_refreshes": (s.token_refreshes, "refresh messages (protocol version 2)"),
            "events_conflated": (
                s.events_conflated,
                "queued events replaced by a later one of their execution (conflating subscriptions)",
            ),
            "request_head_timeouts": (
                s.request_head_timeouts,
                "sockets closed (408): no complete request head within SERVER_READ_TIMEOUT",
            ),
            "presence_flushes": (
                s.presence_flushes,
                "presence write batches (one pipeline and PUBLISH each)",
            ),
            "presence_reloads": (
                s.presence_reloads,
                "presence hashes of other instances read whole (HGETALL)",
            ),
            "presence_expired": (s.presence_expired, "instances found dead (no heartbeat) and purged"),
            "presence_diffs": (
                s.presence_diffs,
                "presence.diff frames built (one per changed, watched scope)",
            ),
        }
        for name, (value, doc) in counters.items():
            yield CounterMetricFamily(f"flowwire_{name}", doc, value=value)
        restarts = CounterMetricFamily(
            "flowwire_component_restarts",
            "supervised components restarted after an unexpected error",
            labels=["component"],
        )
        for component, count in sorted(s.component_restarts.items()):
            restarts.add_metric([component], count)
        yield restarts
        for gauge, level in self.gauges().items():
            yield GaugeMetricFamily(f"flowwire_{gauge}", gauge.replace("_", " "), value=level)


class Metrics:
    def __init__(self, stats: Stats, gauges: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_Collector(stats, gauges))
        self.latency = Histogram(
            "flowwire_append_to_send_seconds",
            "time from the event's append (its stream id) to its frames being queued",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )

    def observe_entry(self, entry_ms: int) -> None:
        self.latency.observe(max(0.0, time.time() - entry_ms / 1000))

    def render(self) -> bytes:
        return generate_latest(self.registry)
