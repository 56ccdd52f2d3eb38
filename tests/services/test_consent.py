"""Consent: awaited, granted (pushed at once), listed, revoked (no further delivery), and
the application's consentRequired turned off (pushed to the endpoints that waited)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer, pushed
from tests.support.operator import (
    APPS,
    counts,
    create_software,
    explain,
    ok,
    patch_software,
    pushes_done,
    put_settings,
    recorded,
    rollout_status,
    settled,
)
from tests.support.otao import RunningOtao

pytestmark = pytest.mark.timeout(30)


def consents_path(application: str, endpoint_id: str) -> str:
    return f"{APPS}/{application}/endpoints/{endpoint_id}/consents"


async def release_awaiting_consent(rest: httpx.AsyncClient, application: str) -> None:
    """Consent becomes required in the application, then 1.1.0 is released to 1.0.0 for all."""
    await put_settings(rest, application, consent_required=True)
    await create_software(rest, application, "1.1.0", ["1.0.0"])


async def test_consent_is_awaited_then_granting_pushes_at_once_and_revoking_stops_delivery(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await release_awaiting_consent(rest, application.name)
    for endpoint_id in ("ep-c", "ep-canary"):
        assert (await cmx.request(app_version, endpoint_id, "1.0.0")).config_id is None
        await recorded(otao, application.name, endpoint_id, "1.0.0")
    assert (await explain(rest, application.name, "ep-c")) == {"1.1.0": "awaiting_consent"}
    assert counts(await rollout_status(rest, application.name, "1.1.0"))["awaitingConsent"] == 2

    granted = ok(
        await rest.post(consents_path(application.name, "ep-c"), json={"version": "1.1.0"})
    )
    assert granted["version"] == "1.1.0" and granted["allVersions"] is False
    await cmx.wait_for(lambda: bool(pushed(cmx, app_version, "ep-c")), timeout=5)
    assert pushed(cmx, app_version, "ep-c") == ["1.1.0"]
    assert pushed(cmx, app_version, "ep-canary") == []
    listed = ok(await rest.get(consents_path(application.name, "ep-c")))["consents"]
    assert [(c["version"], c["allVersions"]) for c in listed] == [("1.1.0", False)]
    assert (await explain(rest, application.name, "ep-c")) == {"1.1.0": "selected"}
    assert (await cmx.request(app_version, "ep-c", "1.0.0")).config_id == "1.1.0"

    deleted = await rest.delete(f"{consents_path(application.name, 'ep-c')}/1.1.0")
    assert deleted.status_code == 200, deleted.text
    assert ok(await rest.get(consents_path(application.name, "ep-c")))["consents"] == []
    assert (await cmx.request(app_version, "ep-c", "1.0.0")).config_id is None
    assert (await explain(rest, application.name, "ep-c")) == {"1.1.0": "awaiting_consent"}

    # A change pushed to consenting endpoints no longer reaches the revoked one.
    ok(await rest.post(consents_path(application.name, "ep-canary"), json={"allVersions": True}))
    await cmx.wait_for(lambda: bool(pushed(cmx, app_version, "ep-canary")), timeout=5)
    await patch_software(rest, application.name, "1.1.0", specification={"image": "v2.bin"})
    await cmx.wait_for(lambda: len(pushed(cmx, app_version, "ep-canary")) == 2, timeout=5)
    await settled(otao, cmx)
    assert pushed(cmx, app_version, "ep-c") == ["1.1.0"]

    # Blanket consent is revoked as "all".
    deleted = await rest.delete(f"{consents_path(application.name, 'ep-canary')}/all")
    assert deleted.status_code == 200, deleted.text
    assert (await cmx.request(app_version, "ep-canary", "1.0.0")).config_id is None
    missing = await rest.delete(f"{consents_path(application.name, 'ep-canary')}/all")
    assert missing.status_code == 404


async def test_turning_consent_required_off_pushes_to_the_endpoints_that_waited(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    await release_awaiting_consent(rest, application.name)
    waiting = ["ep-w1", "ep-w2"]
    for endpoint_id in [*waiting, "ep-consented", "ep-elsewhere"]:
        version = "0.9.0" if endpoint_id == "ep-elsewhere" else "1.0.0"
        assert (await cmx.request(app_version, endpoint_id, version)).config_id is None
        await recorded(otao, application.name, endpoint_id, version)
    ok(await rest.post(consents_path(application.name, "ep-consented"), json={"version": "1.1.0"}))
    await cmx.wait_for(lambda: bool(pushed(cmx, app_version, "ep-consented")), timeout=5)

    await put_settings(rest, application.name, consent_required=False)
    await cmx.wait_for(lambda: all(pushed(cmx, app_version, e) for e in waiting), timeout=5)
    await settled(otao, cmx)
    assert {e: pushed(cmx, app_version, e) for e in waiting} == {e: ["1.1.0"] for e in waiting}
    assert pushed(cmx, app_version, "ep-consented") == ["1.1.0"]  # nothing changed for it
    assert pushed(cmx, app_version, "ep-elsewhere") == []


async def test_granting_consent_that_changes_nothing_pushes_nothing(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    """Consent not required, or already given for all versions: the update was deliverable."""
    app_version = application.app_versions[0]
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    for endpoint_id in ("ep-n1", "ep-n2"):
        assert (await cmx.request(app_version, endpoint_id, "1.0.0")).config_id == "1.1.0"
        await recorded(otao, application.name, endpoint_id, "1.0.0")
    await pushes_done(otao)

    ok(await rest.post(consents_path(application.name, "ep-n1"), json={"version": "1.1.0"}))
    await put_settings(rest, application.name, consent_required=True)
    ok(await rest.post(consents_path(application.name, "ep-n2"), json={"allVersions": True}))
    await cmx.wait_for(lambda: bool(pushed(cmx, app_version, "ep-n2")), timeout=5)
    ok(await rest.post(consents_path(application.name, "ep-n2"), json={"version": "1.1.0"}))
    await settled(otao, cmx)
    assert pushed(cmx, app_version, "ep-n1") == []
    assert pushed(cmx, app_version, "ep-n2") == ["1.1.0"]


def listed_endpoints(found: dict[str, Any]) -> list[str]:
    return sorted(e["endpointId"] for e in found.get("endpoints", []))


async def test_consent_pre_granted_for_an_endpoint_never_seen_applies_once_it_connects(
    otao: RunningOtao, cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    """An operator may grant consent before the device ever connects; until it polls, it is
    not a known endpoint: not listed, not counted in the rollout, never pushed to."""
    app_version = application.app_versions[0]
    name = application.name
    await release_awaiting_consent(rest, name)
    assert (await cmx.request(app_version, "ep-real", "1.0.0")).config_id is None
    await recorded(otao, name, "ep-real", "1.0.0")

    ok(await rest.post(consents_path(name, "ep-ghost"), json={"version": "1.1.0"}))

    listed = ok(await rest.get(consents_path(name, "ep-ghost")))["consents"]
    assert [(c["version"], c["allVersions"]) for c in listed] == [("1.1.0", False)]
    assert listed_endpoints(ok(await rest.get(f"{APPS}/{name}/endpoints"))) == ["ep-real"]
    distribution = ok(await rest.get(f"{APPS}/{name}/software-distribution"))
    assert int(distribution["totalEndpoints"]) == 1
    status = counts(await rollout_status(rest, name, "1.1.0"))
    assert (status["eligible"], status["awaitingConsent"]) == (0, 1)
    # A change pushed to every eligible endpoint reaches the real one, not the phantom.
    ok(await rest.post(consents_path(name, "ep-real"), json={"allVersions": True}))
    await patch_software(rest, name, "1.1.0", specification={"image": "v2.bin"})
    await cmx.wait_for(lambda: len(pushed(cmx, app_version, "ep-real")) == 2, timeout=5)
    await settled(otao, cmx)
    assert pushed(cmx, app_version, "ep-ghost") == []

    # Once it connects, the pre-granted consent applies and it is a known endpoint.
    assert (await cmx.request(app_version, "ep-ghost", "1.0.0")).config_id == "1.1.0"
    await recorded(otao, name, "ep-ghost", "1.0.0")
    found = ok(await rest.get(f"{APPS}/{name}/endpoints"))
    assert listed_endpoints(found) == ["ep-ghost", "ep-real"]
    assert counts(await rollout_status(rest, name, "1.1.0"))["eligible"] == 2
    await patch_software(rest, name, "1.1.0", specification={"image": "v3.bin"})
    await cmx.wait_for(lambda: bool(pushed(cmx, app_version, "ep-ghost")), timeout=5)
