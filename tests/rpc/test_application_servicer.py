"""kaa.otao.v1.ApplicationService over real gRPC (local development mode: the default
tenant's applications, every one readable)."""

from __future__ import annotations

import grpc
import pytest
from kaa.otao.v1 import application_pb2, application_pb2_grpc

from tests.support.otao import RunningOtao

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def stub(grpc_channel: grpc.aio.Channel) -> application_pb2_grpc.ApplicationServiceAsyncStub:
    return application_pb2_grpc.ApplicationServiceStub(grpc_channel)


async def listed(
    stub: application_pb2_grpc.ApplicationServiceAsyncStub, page_size: int, token: str = ""
) -> application_pb2.ListApplicationsResponse:
    return await stub.ListApplications(
        application_pb2.ListApplicationsRequest(page_size=page_size, page_token=token)
    )


async def test_list_applications_pages_the_tenants_applications_by_name(
    stub: application_pb2_grpc.ApplicationServiceAsyncStub, otao: RunningOtao, unique_name: str
) -> None:
    kettle = otao.add_application(f"{unique_name}-kettle", consent_required=True)
    otao.add_application(f"{unique_name}-oven", tenant_id="another-tenant")
    names: list[str] = []
    found: list[application_pb2.Application] = []
    token = ""
    while True:
        page = await listed(stub, 3, token)
        assert len(page.applications) <= 3
        names += [a.name for a in page.applications]
        found += [a for a in page.applications if a.name == kettle.name]
        token = page.next_page_token
        if not token:
            break

    assert names == sorted(set(names))
    assert f"{unique_name}-oven" not in names
    assert found == [
        application_pb2.Application(
            name=kettle.name, app_versions=list(kettle.app_versions), consent_required=True
        )
    ]


async def test_a_negative_page_size_is_invalid_argument(
    stub: application_pb2_grpc.ApplicationServiceAsyncStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await listed(stub, -1)

    assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
