"""The domain's error hierarchy.

Every layer raises these; exactly one gRPC interceptor maps them to status codes and one
function in messaging maps them to CDTP status codes. Adapters translate infrastructure
errors into them (``raise Unavailable(...) from exc``) so nothing above the adapters ever
sees a pymongo, nats or httpx exception.
"""

from __future__ import annotations

from otao.domain.values import frozen


@frozen
class FieldViolation:
    """One bad field of a request: ``field`` is the JSON path (lowerCamelCase)."""

    field: str
    description: str


class OtaoError(Exception):
    """Base of every error otao reports to a caller. ``message`` is safe to put on the wire."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(OtaoError):
    def __init__(self, message: str, violations: list[FieldViolation] | None = None) -> None:
        super().__init__(message)
        self.violations: list[FieldViolation] = list(violations or [])

    @classmethod
    def of(cls, field: str, description: str) -> InvalidArgument:
        return cls(f"invalid {field}: {description}", [FieldViolation(field, description)])


class NotFound(OtaoError):
    pass


class AlreadyExists(OtaoError):
    pass


class FailedPrecondition(OtaoError):
    pass


class Aborted(OtaoError):
    """A concurrency conflict, e.g. an etag that no longer matches."""


class PermissionDenied(OtaoError):
    pass


class Unauthenticated(OtaoError):
    pass


class Unavailable(OtaoError):
    """A dependency (database, broker, identity provider) cannot be reached right now."""
