"""Where a definition's staged rollout stands: which wave is open, since when, and whether an
operator paused it. Pure data, stored with the definition (so every replica's catalog holds it
and a change of it is a compare-and-set on the definition's etag). See docs/rollouts.md.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from otao.domain.values import frozen


@frozen
class RolloutState:
    current_wave: int
    # When each wave 0..current_wave opened (one entry per open or done wave).
    opened_at: tuple[datetime, ...]
    paused: bool = False
    # Who paused (or last resumed, advanced) and when: shown by explain and status.
    changed_by: str | None = None
    changed_at: datetime | None = None

    @classmethod
    def started(cls, now: datetime) -> RolloutState:
        """A plan's rollout begins with wave 0 open."""
        return cls(current_wave=0, opened_at=(now,))

    @property
    def current_opened_at(self) -> datetime:
        return self.opened_at[self.current_wave]

    def advanced(self, actor: str, now: datetime) -> RolloutState:
        return replace(
            self,
            current_wave=self.current_wave + 1,
            opened_at=(*self.opened_at, now),
            changed_by=actor,
            changed_at=now,
        )

    def with_pause(self, paused: bool, actor: str, now: datetime) -> RolloutState:
        return replace(self, paused=paused, changed_by=actor, changed_at=now)

    def fitted(self, waves: int) -> RolloutState:
        """The state under a replaced plan with ``waves`` waves: a wave beyond its end is
        the last one (a plan cut short cannot leave an open wave that does not exist)."""
        if self.current_wave < waves:
            return self
        last = waves - 1
        return replace(self, current_wave=last, opened_at=self.opened_at[: last + 1])


@frozen
class InstallRecord:
    """What an endpoint did with one version it reported on, as outcome() needs it: the
    report, the version it ran before, and its first poll naming either after a success
    (the confirming poll or the sign of an A/B fallback)."""

    version: str
    succeeded: bool
    reported_at: datetime
    previous_version: str | None = None
    poll_config_id: str | None = None
    poll_at: datetime | None = None

    @property
    def awaiting_poll(self) -> bool:
        return self.succeeded and self.poll_at is None

    def settles(self, config_id: str | None) -> bool:
        """Whether a poll naming ``config_id`` is the one this record waits for."""
        return (
            self.awaiting_poll
            and config_id is not None
            and (config_id == self.version or config_id == self.previous_version)
        )
