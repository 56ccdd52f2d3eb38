"""kaa.otao.v1.ResolutionService: parse, call the service, build the reply."""

from __future__ import annotations

from kaa.otao.v1 import resolution_pb2, resolution_pb2_grpc

from otao.domain import validation
from otao.domain.models import EndpointKey
from otao.rpc import convert
from otao.rpc.interceptors import Context, current_caller
from otao.services.applications import ApplicationDirectory
from otao.services.resolution import ResolutionService


class ResolutionServicer(resolution_pb2_grpc.ResolutionServiceServicer):
    def __init__(self, service: ResolutionService, applications: ApplicationDirectory) -> None:
        self._service = service
        self._applications = applications

    def _key(self, application: str, endpoint_id: str) -> EndpointKey:
        return self._applications.endpoint(current_caller().tenant_id, application, endpoint_id)

    def _application(self, application: str) -> str:
        return self._applications.require(current_caller().tenant_id, application).tenant_id

    async def ResolveUpdate(
        self, request: resolution_pb2.ResolveUpdateRequest, context: Context
    ) -> resolution_pb2.ResolveUpdateResponse:
        key = self._key(request.application_name, request.endpoint_id)
        reported = validation.optional_version(request.current_version, "currentVersion")
        decision = await self._service.decide(key, reported)
        reply = resolution_pb2.ResolveUpdateResponse(current_version=decision.current_version or "")
        if decision.selected is not None:
            reply.update_available = True
            reply.version = decision.selected.version
            reply.specification.CopyFrom(
                convert.specification_value(decision.selected.spec.specification_json)
            )
        return reply

    async def ExplainResolution(
        self, request: resolution_pb2.ExplainResolutionRequest, context: Context
    ) -> resolution_pb2.Explanation:
        key = self._key(request.application_name, request.endpoint_id)
        reported = validation.optional_version(request.current_version, "currentVersion")
        explanation = await self._service.explain(key, reported)
        return resolution_pb2.Explanation(
            endpoint_id=key.endpoint_id,
            current_version=explanation.current_version or "",
            selected_version=explanation.selected.version if explanation.selected else "",
            verdicts=[
                resolution_pb2.Verdict(version=v.version, verdict=v.kind.value, reason=v.reason)
                for v in explanation.verdicts
            ],
            filters=convert.filter_beliefs_to_proto(explanation.filters),
        )

    async def GetUpgradePath(
        self, request: resolution_pb2.GetUpgradePathRequest, context: Context
    ) -> resolution_pb2.UpgradePath:
        tenant_id = self._application(request.application_name)
        start = validation.version(request.from_version, "from")
        target = validation.optional_version(request.to_version, "to")
        hops = await self._service.upgrade_path(tenant_id, request.application_name, start, target)
        return resolution_pb2.UpgradePath(
            from_version=start, to_version=hops[-1] if hops else start, hops=hops
        )

    async def GetUpgradeGraph(
        self, request: resolution_pb2.GetUpgradeGraphRequest, context: Context
    ) -> resolution_pb2.UpgradeGraph:
        tenant_id = self._application(request.application_name)
        found = await self._service.upgrade_graph(tenant_id, request.application_name)
        return resolution_pb2.UpgradeGraph(
            nodes=[
                resolution_pb2.GraphNode(
                    version=n.version, defined=n.defined, rollout_strategy=n.rollout_strategy
                )
                for n in found.nodes
            ],
            edges=[resolution_pb2.GraphEdge(from_version=a, to_version=b) for a, b in found.edges],
        )
