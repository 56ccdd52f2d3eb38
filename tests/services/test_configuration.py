"""Application configuration from Kaa Tekton, reloaded over 17/SCMP, through otao's real doors.

A secured otao (see tests/security/doors.py) takes its applications from a fake Tekton over
loopback HTTP. Tests change the fake's data, announce the change on NATS (broadcast or targeted,
upsert or delete, for every scope), and observe otao: a 6/CDTP ConfigRequest for an app version
is answered (200) or not known (404), and GET settings shows ``consentRequired``. Only the
announced scope is reloaded; a failing Tekton leaves the last good configuration in place.

The tests share one otao and build on each other in file order (the broadcast adds B's boiler
that a later test deletes, the tenant scope adds A's heater that later tests look at).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from otao.messaging.avro import AvroCodec
from otao.messaging.records import (
    BroadcastConfigurationUpdateEvent,
    Record,
    ServiceSpecificConfigurationUpdateEvent,
)
from otao.messaging.subjects import ScmpAction, scmp_broadcast_subject, scmp_targeted_subject
from tests.security.doors import (
    DOORS,
    Door,
    Secured,
    ServiceTokenCheck,
    eventually,
    new_suffix,
    secured_stack,
    tenant_id,
)
from tests.support.cmx import CmxPeer
from tests.support.fake_tekton import FakeTekton
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

pytestmark = pytest.mark.timeout(60)

GET_SETTINGS = "/kaa.otao.v1.SoftwareService/GetApplicationSettings"
PUT_SETTINGS = "/kaa.otao.v1.SoftwareService/UpdateApplicationSettings"


class Platform:
    """The secured otao, its fake Tekton, and a CMX peer to ask for configurations."""

    def __init__(self, stack: Secured, tekton: FakeTekton, cmx: CmxPeer) -> None:
        self.stack = stack
        self.tekton = tekton
        self.cmx = cmx
        self.codec = AvroCodec()

    def version(self, letter: str, name: str) -> str:
        return f"{name}-{letter}-{self.stack.suffix}"

    def app(self, letter: str, name: str) -> dict[str, Any]:
        """The fake Tekton's (mutable) entry of a tenant's application."""
        wanted = tenant_id(letter, self.stack.suffix)
        for entry in self.tekton.applications:
            if entry["tenantId"] == wanted and entry["appName"] == name:
                return entry
        raise KeyError((letter, name))

    def add(self, letter: str, name: str, *versions: str, consent: bool | None = None) -> None:
        names = [self.version(letter, v) for v in versions]
        self.tekton.add_application(tenant_id(letter, self.stack.suffix), name, names, consent)

    async def cdtp_status(self, app_version: str) -> int:
        response = await self.cmx.request(app_version, f"ep-{uuid.uuid4().hex[:8]}")
        return response.status_code

    async def settings(self, letter: str, application: str, door: Door = "rest") -> Any:
        tenant = self.stack.tenants[letter]
        result = await self.stack.call(
            door,
            GET_SETTINGS,
            {"application_name": application},
            tenant.token(application=application),
        )
        if result.code == grpc.StatusCode.NOT_FOUND:
            return None
        assert result.code == grpc.StatusCode.OK, result
        return result.body

    async def broadcast(
        self,
        tenant: str | None = None,
        app: str | None = None,
        version: str | None = None,
        action: ScmpAction = ScmpAction.UPSERT,
    ) -> None:
        subject = scmp_broadcast_subject(f"tekton-{self.stack.suffix}", action)
        await self._scmp(
            subject,
            BroadcastConfigurationUpdateEvent,
            tenant,
            app,
            version,
            originator_replica_id="tekton-1",
        )

    async def targeted(
        self,
        tenant: str,
        app: str | None = None,
        version: str | None = None,
        action: ScmpAction = ScmpAction.UPSERT,
    ) -> None:
        subject = scmp_targeted_subject(f"otao-{self.stack.suffix}", action)
        await self._scmp(subject, ServiceSpecificConfigurationUpdateEvent, tenant, app, version)

    async def _scmp(
        self,
        subject: str,
        record: Callable[..., Record],
        tenant: str | None,
        app: str | None,
        version: str | None,
        **extra: str,
    ) -> None:
        """An SCMP update event of either kind: the scope both share, then ``extra``."""
        event = record(
            correlation_id=uuid.uuid4().hex,
            timestamp=int(time.time() * 1000),
            tenant_id=tenant and tenant_id(tenant, self.stack.suffix),
            app_name=app,
            app_ver_name=version,
            **extra,
        )
        await self._publish(subject, self.codec.encode(event))

    async def _publish(self, subject: str, payload: bytes) -> None:
        await self.cmx.client.publish(subject, payload)
        await self.cmx.client.flush()

    async def eventually_status(self, app_version: str, status: int) -> None:
        async def reached() -> bool:
            return await self.cdtp_status(app_version) == status

        await eventually(reached, timeout=5, interval=0.05)

    async def eventually_settings(self, letter: str, application: str, expected: Any) -> None:
        async def reached() -> bool:
            return bool(await self.settings(letter, application) == expected)

        await eventually(reached, timeout=5, interval=0.05)


@pytest.fixture(scope="module")
async def platform(
    nats_server: NatsServer, mongo_server: MongoServer, envoy_factory: EnvoyFactory
) -> AsyncIterator[Platform]:
    suffix = new_suffix()
    with FakeTekton() as tekton:
        tekton.add_application(
            tenant_id("a", suffix), "kettle", [f"kettle-a-{suffix}"], consent_required=True
        )
        tekton.add_application(
            tenant_id("b", suffix), "kettle", [f"kettle-b-{suffix}"], consent_required=False
        )
        async with secured_stack(
            nats_server, mongo_server, envoy_factory, ("a", "b"), tekton=tekton, suffix=suffix
        ) as stack:
            cmx = await CmxPeer.connect(
                nats_server.url, otao=f"otao-{suffix}", consumer=f"cmx-{suffix}"
            )
            try:
                tekton_config = stack.otao.app.components.services.tekton
                assert tekton_config is not None
                await eventually(lambda: tekton_config.loaded)
                yield Platform(stack, tekton, cmx)
            finally:
                await cmx.close()


# ---------------------------------------------------------------------------------------------
# Configured from Tekton


async def test_otao_serves_the_applications_tekton_configures(platform: Platform) -> None:
    assert await platform.cdtp_status(platform.version("a", "kettle")) == 200
    assert await platform.cdtp_status(platform.version("b", "kettle")) == 200
    assert await platform.cdtp_status(f"unknown-{platform.stack.suffix}") == 404
    for door in DOORS:
        assert await platform.settings("a", "kettle", door) == {"consentRequired": True}
        assert await platform.settings("b", "kettle", door) == {"consentRequired": False}


async def test_tekton_is_asked_with_a_client_credentials_token(platform: Platform) -> None:
    check = platform.tekton.accepts
    assert isinstance(check, ServiceTokenCheck)

    assert platform.tekton.tokens_seen
    # Every request carried a token the fake Keycloak's service realm issued to otao's client.
    assert check.seen == platform.tekton.tokens_seen
    assert all(check.verdicts)
    # The first fetch was for everything, for otao's own service instance.
    assert platform.tekton.queries[0] == {}
    assert platform.tekton.instance == f"otao-{platform.stack.suffix}"


@pytest.mark.parametrize("door", DOORS)
async def test_settings_cannot_be_changed_while_tekton_is_their_source(
    platform: Platform, door: Door
) -> None:
    tenant = platform.stack.a
    fields = {"application_name": "kettle", "settings": {"consent_required": False}}

    result = await platform.stack.call(door, PUT_SETTINGS, fields, tenant.token())

    assert result.code == grpc.StatusCode.FAILED_PRECONDITION, result
    if door == "rest":
        assert result.http_status == 400
    assert "tekton" in result.message.lower()
    assert await platform.settings("a", "kettle") == {"consentRequired": True}


# ---------------------------------------------------------------------------------------------
# 17/SCMP: each scope reloads exactly itself


async def test_a_broadcast_for_everything_reloads_everything(platform: Platform) -> None:
    platform.add("b", "boiler", "boiler")
    boiler = platform.version("b", "boiler")
    assert await platform.cdtp_status(boiler) == 404

    await platform.broadcast()

    await platform.eventually_status(boiler, 200)
    assert await platform.settings("b", "boiler") == {"consentRequired": False}
    assert platform.tekton.queries[-1] == {}


async def test_a_tenant_scope_reloads_that_tenant_only(platform: Platform) -> None:
    platform.add("a", "heater", "heater")
    platform.add("b", "fan", "fan")  # changed in Tekton, but not announced
    heater, fan = platform.version("a", "heater"), platform.version("b", "fan")

    await platform.targeted("a")

    await platform.eventually_status(heater, 200)
    assert platform.tekton.queries[-1] == {"tenantId": platform.stack.a.id}
    assert await platform.cdtp_status(fan) == 404
    # The tenant's other applications are still served.
    assert await platform.cdtp_status(platform.version("a", "kettle")) == 200


async def test_an_application_scope_reloads_that_application_only(platform: Platform) -> None:
    platform.app("a", "kettle")["config"]["consentRequired"] = False
    platform.app("a", "heater")["config"]["consentRequired"] = True  # not announced

    await platform.broadcast("a", "kettle")

    await platform.eventually_settings("a", "kettle", {"consentRequired": False})
    assert platform.tekton.queries[-1] == {"tenantId": platform.stack.a.id, "appName": "kettle"}
    assert await platform.settings("a", "heater") == {"consentRequired": False}
    # Tenant B's application of the same name is another application.
    assert await platform.settings("b", "kettle") == {"consentRequired": False}


async def test_an_app_version_scope_adds_and_deletes_that_version(platform: Platform) -> None:
    kettle = platform.app("a", "kettle")
    v1, v2 = platform.version("a", "kettle"), platform.version("a", "kettle2")
    kettle["appVersions"].append({"name": v2, "config": {}})
    assert await platform.cdtp_status(v2) == 404

    await platform.targeted("a", "kettle", v2)

    await platform.eventually_status(v2, 200)
    assert platform.tekton.queries[-1] == {
        "tenantId": platform.stack.a.id,
        "appName": "kettle",
        "appVersionName": v2,
    }
    assert await platform.cdtp_status(v1) == 200

    kettle["appVersions"] = [v for v in kettle["appVersions"] if v["name"] != v2]
    await platform.targeted("a", "kettle", v2, action=ScmpAction.DELETE)

    await platform.eventually_status(v2, 404)
    assert await platform.cdtp_status(v1) == 200


async def test_a_deleted_application_is_no_longer_served(platform: Platform) -> None:
    boiler = platform.version("b", "boiler")
    platform.tekton.applications.remove(platform.app("b", "boiler"))

    await platform.broadcast("b", "boiler", action=ScmpAction.DELETE)

    await platform.eventually_status(boiler, 404)
    assert await platform.settings("b", "boiler") is None
    assert await platform.cdtp_status(platform.version("b", "kettle")) == 200


# ---------------------------------------------------------------------------------------------
# Tekton down


@pytest.mark.parametrize("failure", ["error", "drop"])
async def test_a_failing_tekton_leaves_the_last_good_configuration_until_it_is_back(
    platform: Platform, failure: str
) -> None:
    tekton = platform.tekton
    lamp = platform.version("a", f"lamp{failure}")
    platform.add("a", f"lamp{failure}", f"lamp{failure}")
    kettle = platform.app("a", "kettle")
    consent_before = kettle["config"]["consentRequired"]
    kettle["config"]["consentRequired"] = not consent_before
    attempts = tekton.count(tekton.path)
    tekton.fail_mode = failure  # type: ignore[assignment]
    try:
        await platform.broadcast()

        await eventually(lambda: tekton.count(tekton.path) >= attempts + 2, timeout=5)
        # Fetches failed (and were retried): everything otao served before, it still serves.
        assert await platform.cdtp_status(platform.version("a", "kettle")) == 200
        assert await platform.cdtp_status(platform.version("b", "kettle")) == 200
        assert await platform.cdtp_status(platform.version("a", "heater")) == 200
        assert await platform.settings("a", "kettle") == {"consentRequired": consent_before}
        assert await platform.cdtp_status(lamp) == 404
    finally:
        tekton.fail_mode = None

    # Back: the retry brings in what was announced meanwhile, without another event.
    await platform.eventually_status(lamp, 200)
    await platform.eventually_settings("a", "kettle", {"consentRequired": not consent_before})

    # And announcements work again.
    kettle["config"]["consentRequired"] = consent_before
    await platform.targeted("a", "kettle")
    await platform.eventually_settings("a", "kettle", {"consentRequired": consent_before})
