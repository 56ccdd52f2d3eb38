"""kaa.otao.v1.SoftwareService: parse, call the service, build the reply."""

from __future__ import annotations

import json

from google.api import httpbody_pb2
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.rpc import convert
from otao.rpc.door import Door
from otao.rpc.interception import Context
from otao.rpc.interceptors import current_caller
from otao.services.software import SoftwareService


class SoftwareServicer(Door[SoftwareService], software_pb2_grpc.SoftwareServiceServicer):
    async def ListSoftware(
        self, request: software_pb2.ListSoftwareRequest, context: Context
    ) -> software_pb2.ListSoftwareResponse:
        found = await self.service.list_software(current_caller(), request.application_name)
        return software_pb2.ListSoftwareResponse(
            software=[convert.software_to_proto(s) for s in found]
        )

    async def ListSoftwareJson(
        self, request: software_pb2.ListSoftwareJsonRequest, context: Context
    ) -> httpbody_pb2.HttpBody:
        found = await self.service.list_software(current_caller(), request.application_name)
        # The same JSON Envoy prints for one definition, so list items equal GET bodies.
        items = [convert.software_to_json(s) for s in found]
        return httpbody_pb2.HttpBody(
            content_type="application/json",
            data=json.dumps(items, ensure_ascii=False, separators=(",", ":")).encode("utf-8"),
        )

    async def CreateSoftware(
        self, request: software_pb2.CreateSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        submitted = convert.software_input(request.software)
        created = await self.service.create(current_caller(), request.application_name, submitted)
        return convert.software_to_proto(created)

    async def GetSoftware(
        self, request: software_pb2.GetSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        found = await self.service.get(current_caller(), request.application_name, request.version)
        return convert.software_to_proto(found)

    async def ReplaceSoftware(
        self, request: software_pb2.ReplaceSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        submitted, etag = convert.software_write(request)
        replaced = await self.service.replace(
            current_caller(), request.application_name, request.version, submitted, etag
        )
        return convert.software_to_proto(replaced)

    async def UpdateSoftware(
        self, request: software_pb2.UpdateSoftwareRequest, context: Context
    ) -> software_pb2.Software:
        submitted, etag = convert.software_write(request)
        fields = convert.update_fields(request.update_mask.paths)
        updated = await self.service.update(
            current_caller(), request.application_name, request.version, submitted, fields, etag
        )
        return convert.software_to_proto(updated)

    async def DeleteSoftware(
        self, request: software_pb2.DeleteSoftwareRequest, context: Context
    ) -> software_pb2.DeleteSoftwareResponse:
        await self.service.delete(
            current_caller(), request.application_name, request.version, request.etag
        )
        return software_pb2.DeleteSoftwareResponse()

    async def GetApplicationSettings(
        self, request: software_pb2.GetApplicationSettingsRequest, context: Context
    ) -> software_pb2.ApplicationSettings:
        settings = await self.service.get_settings(current_caller(), request.application_name)
        return convert.settings_to_proto(settings)

    async def UpdateApplicationSettings(
        self, request: software_pb2.UpdateApplicationSettingsRequest, context: Context
    ) -> software_pb2.ApplicationSettings:
        settings = await self.service.put_settings(
            current_caller(), request.application_name, convert.settings_of(request.settings)
        )
        return convert.settings_to_proto(settings)
