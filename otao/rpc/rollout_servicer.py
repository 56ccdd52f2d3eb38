"""kaa.otao.v1.RolloutService: parse, call the service, build the reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from kaa.otao.v1 import rollout_pb2, rollout_pb2_grpc

from otao.domain.models import Caller, Software
from otao.domain.rollout_progress import Outcome
from otao.rpc import convert
from otao.rpc.interception import Context
from otao.rpc.interceptors import current_caller
from otao.services.audit import AuditLog
from otao.services.rollout import RolloutService, RolloutStatus
from otao.services.wave_progress import Progress
from otao.services.waves import WaveService

WaveAction = Callable[[Caller, str, str], Awaitable[Software]]
# Seconds a wave action's reply waits for a recount before answering with the last counts.
ACTION_REPLY_WAIT = 1.0
_RolloutRequest = (
    rollout_pb2.AdvanceRolloutRequest
    | rollout_pb2.PauseRolloutRequest
    | rollout_pb2.ResumeRolloutRequest
)


def status_to_proto(status: RolloutStatus) -> rollout_pb2.RolloutStatus:
    """The one conversion of a rollout status (GetRolloutStatus and the watch streams)."""
    definition = status.definition
    reply = rollout_pb2.RolloutStatus(
        version=definition.version,
        rollout_strategy=definition.rollout_strategy.value,
        eligible=status.eligible,
        offered=status.offered,
        applied=status.applied,
        failed=status.failed,
        awaiting_consent=status.awaiting_consent,
        not_yet_eligible=status.not_yet_eligible,
    )
    if definition.halt is not None:
        reply.halt.reason = definition.halt.reason
        reply.halt.halted_at.FromDatetime(definition.halt.halted_at)
    if status.counted_at is not None:
        reply.counted_at.FromDatetime(status.counted_at)
    if status.progress is not None:
        _progress_to_proto(status.progress, reply)
    return reply


def _progress_to_proto(progress: Progress, reply: rollout_pb2.RolloutStatus) -> None:
    reply.current_wave = progress.rollout.current_wave
    reply.paused = progress.rollout.paused
    reply.gate.met = progress.gate.met
    reply.gate.reason = progress.gate.reason
    if progress.counted_at is not None:
        reply.outcomes_counted_at.FromDatetime(progress.counted_at)
    for wave in progress.waves:
        counts = wave.counts
        reply.waves.append(
            rollout_pb2.RolloutWaveStatus(
                percent=wave.percent,
                state=wave.state.value,
                opened_at=convert.timestamp(wave.opened_at),
                eligible=wave.eligible,
                # Every endpoint offered the version, whatever became of it.
                offered=counts.total,
                applied=counts[Outcome.APPLIED],
                committed=counts[Outcome.COMMITTED],
                failed=counts[Outcome.FAILED],
                rolled_back=counts[Outcome.ROLLED_BACK],
                timed_out=counts[Outcome.TIMED_OUT],
                unconfirmed=counts[Outcome.UNCONFIRMED],
            )
        )


@dataclass(eq=False)
class RolloutServicer(rollout_pb2_grpc.RolloutServiceServicer):
    service: RolloutService
    audit: AuditLog
    waves: WaveService

    async def GetRolloutStatus(
        self, request: rollout_pb2.GetRolloutStatusRequest, context: Context
    ) -> rollout_pb2.RolloutStatus:
        status = await self.service.status(
            current_caller(), request.application_name, request.version
        )
        return status_to_proto(status)

    async def AdvanceRollout(
        self, request: rollout_pb2.AdvanceRolloutRequest, context: Context
    ) -> rollout_pb2.RolloutStatus:
        return await self._acted(self.waves.advance, request)

    async def PauseRollout(
        self, request: rollout_pb2.PauseRolloutRequest, context: Context
    ) -> rollout_pb2.RolloutStatus:
        return await self._acted(self.waves.pause, request)

    async def ResumeRollout(
        self, request: rollout_pb2.ResumeRolloutRequest, context: Context
    ) -> rollout_pb2.RolloutStatus:
        return await self._acted(self.waves.resume, request)

    async def _acted(
        self, action: WaveAction, request: _RolloutRequest
    ) -> rollout_pb2.RolloutStatus:
        """An operator's wave action, answered with the rollout's status after it: with the
        last counts when recounting a large fleet would keep the answer waiting."""
        caller = current_caller()
        await action(caller, request.application_name, request.version)
        status = await self.service.status(
            caller, request.application_name, request.version, ACTION_REPLY_WAIT, recount=False
        )
        return status_to_proto(status)

    async def ListAuditEntries(
        self, request: rollout_pb2.ListAuditEntriesRequest, context: Context
    ) -> rollout_pb2.ListAuditEntriesResponse:
        entries, following = await self.audit.page(
            current_caller(), request.application_name, request.page_size, request.page_token
        )
        return rollout_pb2.ListAuditEntriesResponse(
            entries=[convert.audit_to_proto(e) for e in entries],
            next_page_token=following,
        )
