"""Concurrency: many clients write the same definition at once, all with the etag they read.

Per etag exactly one write wins (200 / OK) and every other one is refused with 409 ABORTED (a
delete that won makes the others 404); the stored definition is exactly the winner's: no
loser's field leaks in, no winner's field is lost, and the etag changes with every win.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format
from kaa.otao.v1 import software_pb2, software_pb2_grpc

from otao.domain.applications import ApplicationConfig
from tests.reliability.harness import software_message

pytestmark = pytest.mark.timeout(60)

WRITERS = 12
ROUNDS = 6
ABORTED = 10


def base(version: str) -> dict[str, Any]:
    return {
        "version": version,
        "upgradableFrom": ["1.0.0"],
        "specification": {"image": "fw.bin", "writer": -1},
        "metadata": {"notes": "original"},
        "rolloutStrategy": "general",
    }


def patch_of(writer: int) -> tuple[str, dict[str, Any]]:
    """Writers change different fields, so a wrong merge would show."""
    field = ("specification", "metadata", "upgradableFrom")[writer % 3]
    value: Any = {
        "specification": {"image": f"fw-{writer}.bin", "writer": writer},
        "metadata": {"notes": f"writer {writer}"},
        "upgradableFrom": ["1.0.0", f"0.{writer}.0"],
    }[field]
    return field, {field: value}


Request = tuple[str, str, dict[str, Any], str | None]  # method, url, body, PATCHed field


async def test_concurrent_patch_and_put_with_one_etag_one_winner_per_round(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    path = f"/api/v1/applications/{application.name}/software"
    created = await rest.post(path, json=base("2.0.0"))
    assert created.status_code == 200, created.text
    current = created.json()
    seen_etags = {current["etag"]}

    for round_ in range(ROUNDS):
        requests = _round_of_writers(path, current["etag"], round_)
        responses = await asyncio.gather(
            *(rest.request(method, url, json=payload) for method, url, payload, _ in requests)
        )
        index = _the_one_winner(responses)
        winner = responses[index].json()
        expected = _expected_after(current, requests[index])
        for key in ("version", "upgradableFrom", "specification", "metadata", "rolloutStrategy"):
            assert winner[key] == expected[key], (round_, requests[index][0], key)
        assert winner["etag"] not in seen_etags
        seen_etags.add(winner["etag"])

        stored = (await rest.get(f"{path}/2.0.0")).json()
        assert stored == winner
        current = stored

    # A stale etag (any earlier round's) never writes again.
    stale = await rest.patch(
        f"{path}/2.0.0?updateMask=metadata&etag={created.json()['etag']}",
        json={"metadata": {"notes": "late"}},
    )
    assert stale.status_code == 409
    assert (await rest.get(f"{path}/2.0.0")).json() == current


def _round_of_writers(path: str, etag: str, round_: int) -> list[Request]:
    """Every writer's request of one round, all with the same etag: PATCHes and PUTs."""
    requests: list[Request] = []
    for writer in range(WRITERS):
        marker = round_ * 100 + writer
        if writer % 2 == 0:
            field, fields = patch_of(marker)
            requests.append(
                ("PATCH", f"{path}/2.0.0?updateMask={field}&etag={etag}", fields, field)
            )
        else:
            whole = base("2.0.0")
            whole["specification"] = {"image": f"put-{marker}.bin", "writer": marker}
            whole["metadata"] = {"notes": f"put {marker}"}
            requests.append(("PUT", f"{path}/2.0.0?etag={etag}", whole, None))
    return requests


def _the_one_winner(responses: list[httpx.Response]) -> int:
    """Exactly one 200; every other writer got 409 ABORTED. The winner's index."""
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1, statuses
    assert statuses.count(409) == WRITERS - 1, statuses
    for response in responses:
        if response.status_code == 409:
            assert response.json()["code"] == ABORTED, response.text
    return statuses.index(200)


def _expected_after(current: dict[str, Any], request: Request) -> dict[str, Any]:
    method, _, payload, field = request
    expected = copy.deepcopy(current)
    if method == "PATCH":
        assert field is not None
        expected[field] = payload[field]
    else:
        # PUT replaces every writable field, the ones a PATCH changed before included.
        expected.update({k: payload[k] for k in ("upgradableFrom", "specification", "metadata")})
    return expected


async def _get_or_none(
    stub: software_pb2_grpc.SoftwareServiceAsyncStub, app: str, version: str
) -> software_pb2.Software | None:
    request = software_pb2.GetSoftwareRequest(application_name=app, version=version)
    try:
        found: software_pb2.Software = await stub.GetSoftware(request)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.NOT_FOUND:
            return None
        raise
    return found


async def test_concurrent_grpc_writers_and_a_delete_with_one_etag(
    grpc_channel: grpc.aio.Channel, application: ApplicationConfig
) -> None:
    stub = software_pb2_grpc.SoftwareServiceStub(grpc_channel)
    app = application.name
    for round_ in range(ROUNDS):
        version = f"3.{round_}.0"
        created = await stub.CreateSoftware(
            software_pb2.CreateSoftwareRequest(
                application_name=app, software=software_message(version, ["1.0.0"])
            )
        )
        calls: list[Any] = []
        for writer in range(WRITERS):
            if writer == 0:
                calls.append(
                    stub.DeleteSoftware(
                        software_pb2.DeleteSoftwareRequest(
                            application_name=app, version=version, etag=created.etag
                        )
                    )
                )
                continue
            update = software_pb2.UpdateSoftwareRequest(
                application_name=app,
                version=version,
                software=software_message(version, ["1.0.0"], specification={"writer": writer}),
                etag=created.etag,
            )
            update.update_mask.paths.append("specification")
            calls.append(stub.UpdateSoftware(update))
        outcomes: list[Any] = []
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, grpc.aio.AioRpcError):
                outcomes.append(result.code())
            else:
                assert not isinstance(result, BaseException), result
                outcomes.append(result)
        winners = [o for o in outcomes if not isinstance(o, grpc.StatusCode)]
        assert len(winners) == 1, outcomes
        losers = {o for o in outcomes if isinstance(o, grpc.StatusCode)}
        stored = await _get_or_none(stub, app, version)
        if isinstance(winners[0], software_pb2.DeleteSoftwareResponse):
            assert stored is None
            assert losers <= {grpc.StatusCode.ABORTED, grpc.StatusCode.NOT_FOUND}, losers
        else:
            assert stored == winners[0]
            assert losers == {grpc.StatusCode.ABORTED}, losers
            spec = json_format.MessageToDict(stored.specification)
            assert set(spec) == {"writer"}
