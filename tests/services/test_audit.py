"""The audit log: every change to a definition, a setting or a consent, and otao's own halts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from otao.domain.applications import ApplicationConfig
from tests.support.cmx import CmxPeer
from tests.support.operator import (
    APPS,
    audit,
    create_software,
    get_software,
    ok,
    patch_software,
    put_settings,
    until,
)

pytestmark = pytest.mark.timeout(30)

OPERATOR = "local-development"  # the subject of every call with security off


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def summary(entries: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["action"], e["resource"], e["actor"]) for e in entries]


async def test_every_operator_change_is_audited_newest_first_with_who_what_and_when(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    name = application.name
    started = datetime.now(UTC) - timedelta(seconds=1)
    await create_software(rest, name, "1.1.0", ["1.0.0"], "suspended")
    await patch_software(rest, name, "1.1.0", rolloutStrategy="general")
    replacement = {
        "version": "1.1.0",
        "upgradableFrom": ["1.0.0"],
        "specification": {"image": "b.bin"},
        "rolloutStrategy": "general",
    }
    ok(await rest.put(f"{APPS}/{name}/software/1.1.0", json=replacement))
    await put_settings(rest, name, consent_required=True)
    consents = f"{APPS}/{name}/endpoints/ep-a/consents"
    ok(await rest.post(consents, json={"version": "1.1.0"}))
    ok(await rest.post(consents, json={"allVersions": True}))
    assert (await rest.delete(f"{consents}/1.1.0")).status_code == 200
    assert (await rest.delete(f"{consents}/all")).status_code == 200
    assert (await rest.delete(f"{APPS}/{name}/software/1.1.0")).status_code == 200

    entries = (await audit(rest, name))["entries"]
    assert summary(entries) == [
        ("software.delete", "software/1.1.0", OPERATOR),
        ("consent.delete", "endpoints/ep-a/consents/all", OPERATOR),
        ("consent.delete", "endpoints/ep-a/consents/1.1.0", OPERATOR),
        ("consent.create", "endpoints/ep-a/consents/all", OPERATOR),
        ("consent.create", "endpoints/ep-a/consents/1.1.0", OPERATOR),
        ("settings.update", "settings", OPERATOR),
        ("software.replace", "software/1.1.0", OPERATOR),
        ("software.update", "software/1.1.0", OPERATOR),
        ("software.create", "software/1.1.0", OPERATOR),
    ]
    assert all(e["tenantId"] == "default" for e in entries)
    times = [parse_time(e["time"]) for e in entries]
    assert times == sorted(times, reverse=True)
    assert started <= times[-1] and times[0] <= datetime.now(UTC) + timedelta(seconds=1)
    by_action = {e["action"]: e.get("details") for e in entries}
    assert by_action["software.update"] == {
        "rolloutStrategy": {"before": "suspended", "after": "general"}
    }
    # create_software gave {"image": "fw-1.1.0.bin"}; the PUT changed only the specification.
    assert by_action["software.replace"] == {
        "specification": {"before": {"image": "fw-1.1.0.bin"}, "after": {"image": "b.bin"}}
    }
    assert by_action["settings.update"] == {"consentRequired": {"before": False, "after": True}}

    # Pages: newest first, each continuing where the previous one stopped.
    first = await audit(rest, name, pageSize=4)
    second = await audit(rest, name, pageSize=4, pageToken=first["nextPageToken"])
    third = await audit(rest, name, pageSize=4, pageToken=second["nextPageToken"])
    assert [e["id"] for e in first["entries"] + second["entries"] + third["entries"]] == [
        e["id"] for e in entries
    ]
    assert third["nextPageToken"] == ""


async def test_an_update_records_before_and_after_of_each_changed_field_only(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    name = application.name
    await create_software(rest, name, "1.1.0", ["1.0.0"], "general")
    await patch_software(
        rest,
        name,
        "1.1.0",
        upgradableFrom=["1.0.0", "1.0.1"],
        rolloutPolicy={"maxFailureRatio": 0.2, "minReports": 10},
    )
    await patch_software(rest, name, "1.1.0", rolloutStrategy="general")  # changes nothing

    unchanged, updated = [e.get("details", {}) for e in (await audit(rest, name))["entries"][:2]]
    assert unchanged == {}
    assert updated == {
        "upgradableFrom": {"before": ["1.0.0"], "after": ["1.0.0", "1.0.1"]},
        "rolloutPolicy": {"before": None, "after": {"maxFailureRatio": 0.2, "minReports": 10}},
    }


@pytest.mark.parametrize(
    "token",
    ["garbage", "Z2FyYmFnZQ", "!!!", "YXVkaXR8ZGVmYXVsdC9vdGhlci8xMjM"],
    ids=["not-base64", "base64-of-garbage", "not-a-token", "another-applications-token"],
)
async def test_a_page_token_this_listing_did_not_return_is_400_naming_page_token(
    rest: httpx.AsyncClient, application: ApplicationConfig, token: str
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])

    response = await rest.get(f"{APPS}/{application.name}/audit", params={"pageToken": token})

    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3  # INVALID_ARGUMENT
    violations = [v for d in body.get("details", []) for v in d.get("fieldViolations", [])]
    assert [v["field"] for v in violations] == ["pageToken"]
    assert "entries" not in body


async def test_failed_change_leaves_no_audit_entry(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    await create_software(rest, application.name, "1.1.0", ["1.0.0"])
    duplicate = await rest.post(
        f"{APPS}/{application.name}/software",
        json={
            "version": "1.1.0",
            "upgradableFrom": ["1.0.0"],
            "specification": {},
            "rolloutStrategy": "general",
        },
    )
    assert duplicate.status_code == 409, duplicate.text
    missing = await rest.delete(f"{APPS}/{application.name}/endpoints/ep-z/consents/1.1.0")
    assert missing.status_code == 404
    entries = (await audit(rest, application.name))["entries"]
    assert [e["action"] for e in entries] == ["software.create"]


async def test_automatic_halt_is_audited_with_actor_system_and_its_reason(
    cmx: CmxPeer, rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    app_version = application.app_versions[0]
    policy = {"maxFailureRatio": 0.5, "minReports": 1}
    await create_software(rest, application.name, "1.1.0", ["1.0.0"], policy=policy)
    await cmx.applied(app_version, "ep-bad", "1.1.0", status_code=500, reason="bricked")

    async def halted() -> bool:
        entries = (await audit(rest, application.name))["entries"]
        return bool(entries) and entries[0]["action"] == "rollout.halt"

    await until(halted, "the halt audited", timeout=5)
    entry = (await audit(rest, application.name))["entries"][0]
    assert (entry["actor"], entry["resource"]) == ("system", "software/1.1.0")
    found = await get_software(rest, application.name, "1.1.0")
    assert entry["details"]["reason"] == found["halt"]["reason"]
    assert "1/1" in entry["details"]["reason"]
