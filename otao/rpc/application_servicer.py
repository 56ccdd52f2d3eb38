"""kaa.otao.v1.ApplicationService: parse, call the service, build the reply."""

from __future__ import annotations

from dataclasses import dataclass

from kaa.otao.v1 import application_pb2, application_pb2_grpc

from otao.rpc import convert
from otao.rpc.interception import Context
from otao.rpc.interceptors import current_caller
from otao.services.application_list import ApplicationList


@dataclass(eq=False)
class ApplicationServicer(application_pb2_grpc.ApplicationServiceServicer):
    applications: ApplicationList

    async def ListApplications(
        self, request: application_pb2.ListApplicationsRequest, context: Context
    ) -> application_pb2.ListApplicationsResponse:
        found, following = await self.applications.page(
            current_caller(), request.page_size, request.page_token
        )
        return application_pb2.ListApplicationsResponse(
            applications=[convert.application_to_proto(a) for a in found],
            next_page_token=following,
        )
