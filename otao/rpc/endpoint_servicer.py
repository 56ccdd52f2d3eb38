"""kaa.otao.v1.EndpointService: parse, call the service, build the reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from kaa.otao.v1 import endpoint_pb2, endpoint_pb2_grpc

from otao.domain import versions
from otao.domain.models import Caller
from otao.rpc import convert
from otao.rpc.door import Door
from otao.rpc.interception import Context
from otao.rpc.interceptors import current_caller
from otao.services.endpoints import EndpointsService

# (caller, application, endpoint id, version)
VersionAction = Callable[[Caller, str, str, str], Awaitable[object]]
_VersionRequest = endpoint_pb2.DeleteEndpointFailureRequest | endpoint_pb2.DeleteConsentRequest


class EndpointServicer(Door[EndpointsService], endpoint_pb2_grpc.EndpointServiceServicer):
    async def GetEndpointSoftware(
        self, request: endpoint_pb2.GetEndpointSoftwareRequest, context: Context
    ) -> endpoint_pb2.EndpointSoftware:
        found = await self.service.software(
            current_caller(), request.application_name, request.endpoint_id
        )
        state = found.state
        return endpoint_pb2.EndpointSoftware(
            endpoint_id=found.endpoint_id,
            current_version=found.current_version or "",
            last_report=convert.report_to_proto(state.last_report if state else None),
            next_update=(
                convert.software_to_proto(found.next_update) if found.next_update else None
            ),
            failed_versions=(versions.newest_first(list(state.failed_versions)) if state else []),
        )

    async def ListEndpoints(
        self, request: endpoint_pb2.ListEndpointsRequest, context: Context
    ) -> endpoint_pb2.ListEndpointsResponse:
        found, following = await self.service.page(
            current_caller(),
            request.application_name,
            request.version,
            request.page_size,
            request.page_token,
        )
        return endpoint_pb2.ListEndpointsResponse(
            endpoints=[
                endpoint_pb2.Endpoint(
                    endpoint_id=s.endpoint_id,
                    current_version=s.current_version or "",
                    last_report=convert.report_to_proto(s.last_report),
                    updated_at=convert.timestamp(s.updated_at),
                )
                for s in found
            ],
            next_page_token=following,
        )

    async def GetSoftwareDistribution(
        self, request: endpoint_pb2.GetSoftwareDistributionRequest, context: Context
    ) -> endpoint_pb2.SoftwareDistribution:
        counts = await self.service.distribution(current_caller(), request.application_name)
        known = versions.newest_first([v for v in counts if v])
        ordered = known + ([""] if "" in counts else [])
        return endpoint_pb2.SoftwareDistribution(
            versions=[
                endpoint_pb2.VersionCount(version=v, endpoint_count=counts[v]) for v in ordered
            ],
            total_endpoints=sum(counts.values()),
        )

    async def DeleteEndpointFailure(
        self, request: endpoint_pb2.DeleteEndpointFailureRequest, context: Context
    ) -> endpoint_pb2.DeleteEndpointFailureResponse:
        await self._on_version(self.service.clear_failure, request)
        return endpoint_pb2.DeleteEndpointFailureResponse()

    async def _on_version(self, action: VersionAction, request: _VersionRequest) -> None:
        """A deletion about one version of one endpoint (its failure, its consent)."""
        await action(
            current_caller(), request.application_name, request.endpoint_id, request.version
        )

    async def CreateConsent(
        self, request: endpoint_pb2.CreateConsentRequest, context: Context
    ) -> endpoint_pb2.Consent:
        consent = await self.service.grant_consent(
            current_caller(),
            request.application_name,
            request.endpoint_id,
            request.consent.version,
            request.consent.all_versions,
        )
        return convert.consent_to_proto(consent)

    async def ListConsents(
        self, request: endpoint_pb2.ListConsentsRequest, context: Context
    ) -> endpoint_pb2.ListConsentsResponse:
        found = await self.service.consents(
            current_caller(), request.application_name, request.endpoint_id
        )
        return endpoint_pb2.ListConsentsResponse(
            consents=[convert.consent_to_proto(c) for c in found]
        )

    async def DeleteConsent(
        self, request: endpoint_pb2.DeleteConsentRequest, context: Context
    ) -> endpoint_pb2.DeleteConsentResponse:
        await self._on_version(self.service.revoke_consent, request)
        return endpoint_pb2.DeleteConsentResponse()
