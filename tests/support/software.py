"""Definitions created over gRPC, for tests that talk to an otao of their own without Envoy
(REST through Envoy: tests/support/rest.py and tests/support/operator.py)."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import json_format
from kaa.otao.v1 import software_pb2, software_pb2_grpc


def software_message(
    version: str,
    upgradable_from: list[str],
    strategy: str = "general",
    specification: Any = None,
    **extra: Any,
) -> software_pb2.Software:
    return json_format.ParseDict(
        {
            "version": version,
            "upgradableFrom": upgradable_from,
            "specification": (
                specification if specification is not None else {"image": f"fw-{version}.bin"}
            ),
            "rolloutStrategy": strategy,
            **extra,
        },
        software_pb2.Software(),
    )


async def define(
    channel: grpc.aio.Channel,
    application: str,
    version: str,
    upgradable_from: list[str],
    strategy: str = "general",
    specification: Any = None,
    **extra: Any,
) -> software_pb2.Software:
    stub = software_pb2_grpc.SoftwareServiceStub(channel)
    created: software_pb2.Software = await stub.CreateSoftware(
        software_pb2.CreateSoftwareRequest(
            application_name=application,
            software=software_message(version, upgradable_from, strategy, specification, **extra),
        ),
        timeout=10,
    )
    return created


async def define_targeted(
    channel: grpc.aio.Channel,
    application: str,
    version: str,
    upgradable_from: list[str],
    *filter_ids: str,
    **extra: Any,
) -> software_pb2.Software:
    """``define`` with the targeted strategy, listing these filters (without rollout dates)."""
    filters = [{"filterId": filter_id} for filter_id in filter_ids]
    return await define(
        channel, application, version, upgradable_from, "targeted", filters=filters, **extra
    )


async def set_strategy(
    channel: grpc.aio.Channel, application: str, version: str, strategy: str
) -> software_pb2.Software:
    stub = software_pb2_grpc.SoftwareServiceStub(channel)
    request = software_pb2.UpdateSoftwareRequest(
        application_name=application,
        version=version,
        software=software_pb2.Software(rollout_strategy=strategy),
    )
    request.update_mask.paths.append("rollout_strategy")
    updated: software_pb2.Software = await stub.UpdateSoftware(request, timeout=10)
    return updated
