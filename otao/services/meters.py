"""What the doors report to (ports), without knowing whether metrics are on.

The doors hold these protocols; ``otao.observability.metrics`` implements them with
Prometheus children bound once per method, and the ``NO_*`` objects below do nothing (metrics
off: the steady-state poll pays one empty call, nothing more).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol


class PollResult(StrEnum):
    """What a CDTP ConfigRequest got."""

    UPDATE = "update"  # an update to install
    NOTHING_NEW = "nothing_new"  # 200 without an update
    NOT_FOUND = "not_found"  # 404: unknown application version or configuration
    ERROR = "error"  # any other failure (malformed, database down, internal)


class MethodMeter(Protocol):
    """One method of one door: count it by outcome code and time it."""

    def done(self, code: str, started: float) -> None:
        """``started`` is the request's ``time.perf_counter()``."""


class DoorMeter(Protocol):
    def method(self, name: str) -> MethodMeter:
        """The meter of ``name``, made once (callers keep it: no label lookup per request)."""


class CdtpMeter(DoorMeter, Protocol):
    def poll(self, result: PollResult) -> None: ...

    def report(self, succeeded: bool) -> None:
        """A ConfigApplied report handled (stored and judged)."""


class _NoMethodMeter:
    __slots__ = ()

    def done(self, code: str, started: float) -> None:
        return None


class _NoCdtpMeter:
    __slots__ = ()

    def method(self, name: str) -> MethodMeter:
        return _NO_METHOD

    def poll(self, result: PollResult) -> None:
        return None

    def report(self, succeeded: bool) -> None:
        return None


_NO_METHOD = _NoMethodMeter()
NO_CDTP_METER: CdtpMeter = _NoCdtpMeter()
