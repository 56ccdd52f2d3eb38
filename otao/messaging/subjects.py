"""NATS subjects of the Kaa protocols otao speaks (3/ISM conventions; see docs/kaa-protocols.md).

Pure string building: instance names come in as arguments (from settings), nothing is read from
the environment. ``Subjects`` bundles them for one otao process and validates them once, because
a dot or a space in an instance name would silently change which subjects match.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, overload

ANY: Final = "*"
"""Stands for any originator instance (or any filter id) in a subscription."""

_FORBIDDEN_IN_TOKEN: Final = frozenset(".*> ")  # plus anything not printable, see check_token


class EfeEventType(StrEnum):
    """The last token of an 18/EFE subject."""

    ACTIVATED = "activated"
    PENDING = "pending"
    DELETED = "deleted"
    EP_MATCHED = "ep-matched"
    EP_UNMATCHED = "ep-unmatched"


class ScmpAction(StrEnum):
    UPSERT = "upsert"
    DELETE = "delete"


class TleEventType(StrEnum):
    UPDATED = "updated"
    UNREGISTERED = "unregistered"


def check_token(value: str, what: str, *, wildcard: bool = False) -> str:
    """``value`` if it is a single NATS subject token (or ``*`` when ``wildcard``).

    Raises ``ValueError`` otherwise: an instance name with a dot would add subject levels.
    """
    if wildcard and value == ANY:
        return value
    if not value or not value.isprintable() or not _FORBIDDEN_IN_TOKEN.isdisjoint(value):
        raise ValueError(f"{what} must be a non-empty NATS subject token, got {value!r}")
    return value


# --- 6/CDTP --------------------------------------------------------------------------------------


def cdtp_request_subject(otao: str) -> str:
    """Where consumers send ConfigRequest; subscribe with queue group ``otao``."""
    return f"kaa.v1.service.{otao}.cdtp.request"


def config_updated_subject(otao: str) -> str:
    """Where otao broadcasts ConfigUpdated."""
    return f"kaa.v1.events.{otao}.endpoint.config.updated"


def config_applied_subject(consumer: str) -> str:
    """Where a CDTP consumer broadcasts ConfigApplied (``consumer`` may be ``*``)."""
    return f"kaa.v1.events.{consumer}.endpoint.config.applied"


# --- 9/ELCE, 18/EFE, 20/EFMP (endpoint register) -----------------------------------------------


def elce_unregistered_subject(epr: str) -> str:
    return f"kaa.v1.events.{epr}.endpoint.lifecycle.unregistered"


def efe_subject(epr: str, event_type: EfeEventType | str, filter_id: str = ANY) -> str:
    """An 18/EFE subject; by default for every filter (``*``). ``event_type`` may be ``*``."""
    return f"kaa.v1.events.{epr}.endpoint-filter.{filter_id}.{event_type}"


def efmp_request_subject(epr: str) -> str:
    return f"kaa.v1.service.{epr}.efmp.ep-filters-request"


def efmp_reply_subject(replica: str) -> str:
    """This replica's reply subject for EndpointFiltersRequest (set as the NATS reply-to)."""
    return f"kaa.v1.replica.{replica}.efmp.ep-filters-response"


# --- 17/SCMP (Tekton), 21/TLE --------------------------------------------------------------------


def scmp_broadcast_subject(tekton: str, action: ScmpAction | str) -> str:
    return f"kaa.v1.events.{tekton}.service.configuration.{action}"


def scmp_targeted_subject(otao: str, action: ScmpAction | str) -> str:
    return f"kaa.v1.service.{otao}.scmp.configuration.{action}"


def tle_subject(originator: str, event_type: TleEventType | str) -> str:
    return f"kaa.v1.events.{originator}.tenant.lifecycle.{event_type}"


class _Subject:
    """A subject of ``Subjects`` that ``build`` makes from the instance name ``name`` reads."""

    __slots__ = ("_build", "_name")

    def __init__(self, build: Callable[[str], str], name: Callable[[Subjects], str]) -> None:
        self._build = build
        self._name = name

    @overload
    def __get__(self, subjects: None, owner: type[Subjects]) -> _Subject: ...
    @overload
    def __get__(self, subjects: Subjects, owner: type[Subjects]) -> str: ...
    def __get__(self, subjects: Subjects | None, owner: type[Subjects]) -> str | _Subject:
        if subjects is None:  # read on the class (help(), introspection): the descriptor
            return self
        return self._build(self._name(subjects))


@dataclass(frozen=True, slots=True, kw_only=True)
class Subjects:
    """Every subject one otao replica uses, from validated instance names.

    ``otao``, ``replica`` and ``epr`` must be concrete (otao publishes and replies on them);
    ``consumer``, ``tekton`` and ``tenant_originator`` are only listened to and may be ``*``.
    """

    otao: str
    replica: str
    consumer: str
    epr: str
    tekton: str
    tenant_originator: str = ANY

    def __post_init__(self) -> None:
        check_token(self.otao, "otao instance name")
        check_token(self.replica, "replica id")
        check_token(self.epr, "epr instance name")
        check_token(self.consumer, "consumer instance name", wildcard=True)
        check_token(self.tekton, "tekton instance name", wildcard=True)
        check_token(self.tenant_originator, "tenant event originator", wildcard=True)

    @property
    def queue_group(self) -> str:
        """3/ISM: replicas of one instance share targeted messages in a group named after it."""
        return self.otao

    cdtp_request = _Subject(cdtp_request_subject, lambda s: s.otao)
    config_updated = _Subject(config_updated_subject, lambda s: s.otao)
    config_applied = _Subject(config_applied_subject, lambda s: s.consumer)
    elce_unregistered = _Subject(elce_unregistered_subject, lambda s: s.epr)
    efmp_request = _Subject(efmp_request_subject, lambda s: s.epr)
    efmp_reply = _Subject(efmp_reply_subject, lambda s: s.replica)

    def efe(self, event_type: EfeEventType) -> str:
        """Events of ``event_type`` for every filter."""
        return efe_subject(self.epr, event_type)

    def scmp_broadcast(self, action: ScmpAction) -> str:
        return scmp_broadcast_subject(self.tekton, action)

    def scmp_targeted(self, action: ScmpAction) -> str:
        return scmp_targeted_subject(self.otao, action)

    def tle(self, event_type: TleEventType) -> str:
        return tle_subject(self.tenant_originator, event_type)
