"""Domain errors -> CDTP statusCode (HTTP semantics): the one place for this mapping."""

from __future__ import annotations

from otao.domain import errors

_CODES: dict[type[errors.OtaoError], int] = {
    errors.InvalidArgument: 400,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.Aborted: 409,
    errors.FailedPrecondition: 412,
    errors.Unavailable: 503,
}


def cdtp_status(error: errors.OtaoError) -> int:
    for kind in type(error).__mro__:
        if kind in _CODES:
            return _CODES[kind]
    return 500
