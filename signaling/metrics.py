"""Hub metrics for GET /metrics: plain counters that hub features increment, read at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signaling.limits import LIMITS


@dataclass(slots=True)
class HubStats:
    # A client that lost its socket and joined again with its `resume` token.
    reconnects: int = 0
    # Reconnects that got their participant back (same peer id, media kept) instead of a new one.
    resumes: int = 0
    # Reconnects refused (`resume_failed`: token unknown, used or expired); a fresh join follows.
    failed_resumes: int = 0
    # Client frames dropped by the per-session rate limit (signaling.session).
    rate_limited: int = 0
    # Refusals by the limit that refused: a handshake, a message or a whole session (the
    # README's limits table names them).
    refusals: Counter[str] = field(default_factory=Counter)

    # Joins refused for their room token, by error code (signaling.auth).
    token_refusals: Counter[str] = field(default_factory=Counter)
    # Sessions the server ended, by error code: replaced, removed, room_closed.
    ended: Counter[str] = field(default_factory=Counter)

    def refused(self, limit: str) -> None:
        assert limit in LIMITS, f"unknown limit {limit!r}"
        self.refusals[limit] += 1


class HubCollector(Collector):
    def __init__(self, stats: HubStats, sessions: Callable[[], int]) -> None:
        self._stats = stats
        self._sessions = sessions

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        yield GaugeMetricFamily(
            "aiosfu_signaling_sessions", "Open WebSocket sessions", value=self._sessions()
        )
        yield CounterMetricFamily(
            "aiosfu_reconnects",
            "Joins with a resume token (a client back after losing its socket)",
            value=stats.reconnects,
        )
        yield CounterMetricFamily(
            "aiosfu_resumes", "Reconnects that got their participant back", value=stats.resumes
        )
        yield CounterMetricFamily(
            "aiosfu_failed_resumes",
            "Reconnects refused: the resume token was unknown, used or expired",
            value=stats.failed_resumes,
        )
        yield CounterMetricFamily(
            "aiosfu_rate_limit_rejections",
            "Requests refused by a rate limit",
            value=stats.rate_limited,
        )
        refusals = CounterMetricFamily(
            "aiosfu_limit_refusals",
            "Handshakes, messages and sessions refused by a limit, by limit",
            labels=["limit"],
        )
        for limit in LIMITS:
            refusals.add_metric([limit], stats.refusals[limit])
        yield refusals
        yield _by_code(
            "aiosfu_token_refusals", "Joins refused for their room token", stats.token_refusals
        )
        yield _by_code("aiosfu_sessions_ended", "Sessions the server ended", stats.ended)


def _by_code(name: str, documentation: str, counts: Counter[str]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation + ", by error code", labels=["code"])
    for code, count in sorted(counts.items()):
        family.add_metric([code], count)
    return family
