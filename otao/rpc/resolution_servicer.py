"""kaa.otao.v1.ResolutionService: parse, call the service, build the reply."""

from __future__ import annotations

from kaa.otao.v1 import resolution_pb2, resolution_pb2_grpc

from otao.rpc import convert
from otao.rpc.door import Door
from otao.rpc.interception import Context
from otao.rpc.interceptors import current_caller
from otao.services.resolution import ResolutionService


class ResolutionServicer(Door[ResolutionService], resolution_pb2_grpc.ResolutionServiceServicer):
    async def ResolveUpdate(
        self, request: resolution_pb2.ResolveUpdateRequest, context: Context
    ) -> resolution_pb2.ResolveUpdateResponse:
        decision = await self.service.resolve(
            current_caller(), request.application_name, request.endpoint_id, request.current_version
        )
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
        explanation = await self.service.explain(
            current_caller(), request.application_name, request.endpoint_id, request.current_version
        )
        return resolution_pb2.Explanation(
            endpoint_id=request.endpoint_id,
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
        hops = await self.service.upgrade_path(
            current_caller(), request.application_name, request.from_version, request.to_version
        )
        start = request.from_version
        return resolution_pb2.UpgradePath(
            from_version=start, to_version=hops[-1] if hops else start, hops=hops
        )

    async def GetUpgradeGraph(
        self, request: resolution_pb2.GetUpgradeGraphRequest, context: Context
    ) -> resolution_pb2.UpgradeGraph:
        found = await self.service.upgrade_graph(current_caller(), request.application_name)
        return resolution_pb2.UpgradeGraph(
            nodes=[
                resolution_pb2.GraphNode(
                    version=n.version, defined=n.defined, rollout_strategy=n.rollout_strategy
                )
                for n in found.nodes
            ],
            edges=[resolution_pb2.GraphEdge(from_version=a, to_version=b) for a, b in found.edges],
        )
