"""A secured otao behind its real doors, for tests of security and platform configuration.

``secured_stack`` starts: a fake Keycloak (a service realm for otao's own client and one realm
per tenant, plus a realm that is no tenant), a fake Tenant Manager listing the tenants, otao with
security on (unique Kaa instance names and tenant ids, so other modules' NATS events stay apart),
optionally fed by a fake Tekton, a real Envoy in front of it, a gRPC channel and an HTTP client.

``Door``: every RPC is called generically from its descriptor, over gRPC or, using the method's
``google.api.http`` annotation, as REST through Envoy; both give a ``Result`` with the gRPC code.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import grpc
import httpx
from google.api import annotations_pb2
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from joserfc import jwt
from joserfc.jwk import KeySet
from kaa.otao.v1 import (
    application_pb2,
    endpoint_pb2,
    resolution_pb2,
    rollout_pb2,
    software_pb2,
    watch_pb2,
)

from otao.rpc.access import DELETE, READ, UPDATE
from tests.support.eventually import eventually as shared_eventually
from tests.support.fake_keycloak import FakeKeycloak, Realm
from tests.support.fake_tekton import FakeTekton
from tests.support.fake_tenant_manager import FakeTenantManager
from tests.support.otao import RunningOtao, start_otao
from tests.support.stack import EnvoyFactory, MongoServer, NatsServer

ALL_SCOPES = (READ, UPDATE, DELETE)
CLIENT_ID = "otao"
CLIENT_SECRET = "otao-secret"
SERVICES = tuple(
    module.DESCRIPTOR.services_by_name[name]
    for module, name in (
        (software_pb2, "SoftwareService"),
        (resolution_pb2, "ResolutionService"),
        (endpoint_pb2, "EndpointService"),
        (rollout_pb2, "RolloutService"),
        (application_pb2, "ApplicationService"),
        (watch_pb2, "WatchService"),
    )
)
Door = Literal["grpc", "rest"]
DOORS: tuple[Door, ...] = ("grpc", "rest")


def all_methods() -> set[str]:
    """Every RPC otao serves, as gRPC method paths (from the protos, not from otao's tables)."""
    return {
        f"/{service.full_name}/{method.name}" for service in SERVICES for method in service.methods
    }


def permissions(
    application: str = "kettle", scopes: tuple[str, ...] = ALL_SCOPES
) -> dict[str, Any]:
    """Keycloak's RPT claim granting ``scopes`` on the application's resource."""
    return {"permissions": [{"rsname": f"application-{application}", "scopes": list(scopes)}]}


@dataclass
class TenantUnderTest:
    id: str
    realm: Realm
    application: str
    app_version: str

    def token(
        self,
        subject: str | None = None,
        scopes: tuple[str, ...] | None = ALL_SCOPES,
        application: str | None = None,
        **claims: Any,
    ) -> str:
        """An access token of this tenant's realm; ``scopes=None``: no permissions claim (UMA)."""
        extra: dict[str, Any] = dict(claims)
        if scopes is not None:
            extra["authorization"] = permissions(application or self.application, scopes)
        return self.realm.issue(subject or f"user-{self.id}", **extra)


class ServiceTokenCheck:
    """A fake's ``accepts``: only tokens the service realm signed for otao's client pass."""

    def __init__(self, realm: Realm, client_id: str) -> None:
        self.realm = realm
        self.client_id = client_id
        self.seen: list[str] = []
        self.verdicts: list[bool] = []

    def __call__(self, token: str) -> bool:
        self.seen.append(token)
        try:
            claims = jwt.decode(token, KeySet(list(self.realm.keys))).claims
            jwt.JWTClaimsRegistry(
                iss={"essential": True, "value": self.realm.issuer},
                exp={"essential": True},
                azp={"essential": True, "value": self.client_id},
            ).validate(claims)
            verdict = True
        except Exception:
            verdict = False
        self.verdicts.append(verdict)
        return verdict


@dataclass
class Result:
    """The outcome of one call through a door, as the gRPC code (REST: from the JSON body)."""

    code: grpc.StatusCode
    message: str
    body: Any = None
    http_status: int | None = None


_CODES = {code.value[0]: code for code in grpc.StatusCode}
_POOL = descriptor_pool.Default()


def _method(path: str) -> MethodDescriptor:
    return _POOL.FindMethodByName(path.strip("/").replace("/", "."))


def http_rule(path: str) -> tuple[str, str, str] | None:
    """(verb, path template, body field) of a method's ``google.api.http`` annotation."""
    options = _method(path).GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return None
    rule = options.Extensions[annotations_pb2.http]
    verb = rule.WhichOneof("pattern")
    return verb, getattr(rule, verb), rule.body


def request_message(path: str, fields: dict[str, Any]) -> Message:
    cls = message_factory.GetMessageClass(_method(path).input_type)
    return json_format.ParseDict(fields, cls())


def _response_payload(message: Message) -> Any:
    if message.DESCRIPTOR.full_name == "google.api.HttpBody":
        return json.loads(message.data)  # type: ignore[attr-defined]
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


@dataclass
class Secured:
    suffix: str
    keycloak: FakeKeycloak
    tenant_manager: FakeTenantManager
    service_realm: Realm
    service_tokens: ServiceTokenCheck
    stranger: Realm
    tenants: dict[str, TenantUnderTest]
    otao: RunningOtao
    channel: grpc.aio.Channel
    rest: httpx.AsyncClient
    nats_url: str

    @property
    def a(self) -> TenantUnderTest:
        return self.tenants["a"]

    @property
    def b(self) -> TenantUnderTest:
        return self.tenants["b"]

    @property
    def c(self) -> TenantUnderTest:
        return self.tenants["c"]

    async def call(
        self, door: Door, method: str, fields: dict[str, Any], token: str | None
    ) -> Result:
        if door == "grpc":
            return await self.grpc(method, fields, token)
        return await self.rest_call(method, fields, token)

    async def grpc(
        self, method: str, fields: dict[str, Any], token: str | None, authorization: str = ""
    ) -> Result:
        descriptor = _method(method)
        response_cls = message_factory.GetMessageClass(descriptor.output_type)
        call = self.channel.unary_unary(
            method,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_cls.FromString,
        )
        metadata: list[tuple[str, str]] = []
        if token is not None:
            metadata.append(("authorization", f"Bearer {token}"))
        elif authorization:
            metadata.append(("authorization", authorization))
        try:
            response = await call(request_message(method, fields), metadata=metadata, timeout=10)
        except grpc.aio.AioRpcError as error:
            return Result(error.code(), error.details() or "")
        return Result(grpc.StatusCode.OK, "", _response_payload(response))

    async def rest_call(
        self,
        method: str,
        fields: dict[str, Any],
        token: str | None,
        authorization: str = "",
    ) -> Result:
        rule = http_rule(method)
        assert rule is not None, f"{method} has no REST route"
        verb, template, body_field = rule
        request = request_message(method, fields)
        as_json = json_format.MessageToDict(request)
        path = template
        for descriptor in request.DESCRIPTOR.fields:
            placeholder = "{" + descriptor.name + "}"
            if placeholder in path:
                path = path.replace(placeholder, str(getattr(request, descriptor.name)))
                as_json.pop(descriptor.json_name, None)
        body = None
        if body_field:
            # A <field>_json HttpBody route carries <field> as the JSON body (strict_json).
            typed = body_field.removesuffix("_json")
            body = as_json.pop(request.DESCRIPTOR.fields_by_name[typed].json_name, {})
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        elif authorization:
            headers["Authorization"] = authorization
        response = await self.rest.request(
            verb.upper(),
            path,
            params={k: str(v) for k, v in as_json.items()},
            json=body,
            headers=headers,
        )
        return rest_result(response)

    async def wait_for_tenants(self, *tenant_ids: str, timeout: float = 10.0) -> None:
        directory = self.otao.app.components.platform.tenants
        await shared_eventually(
            lambda: all(directory.by_id(t) for t in tenant_ids),
            f"otao learning tenants {tenant_ids}",
            timeout,
        )


def rest_result(response: httpx.Response) -> Result:
    body = response.json() if response.content else None
    if response.status_code == 200:
        return Result(grpc.StatusCode.OK, "", body, 200)
    assert isinstance(body, dict), response.text
    return Result(_CODES[body["code"]], body.get("message", ""), body, response.status_code)


async def eventually(
    condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05
) -> None:
    """The shared ``tests.support.eventually``, with this module's argument order."""
    await shared_eventually(condition, "condition", timeout, interval)


def new_suffix() -> str:
    return secrets.token_hex(3)


def tenant_id(letter: str, suffix: str) -> str:
    return f"tenant-{letter}-{suffix}"


@asynccontextmanager
async def secured_stack(
    nats_server: NatsServer,
    mongo_server: MongoServer,
    envoy_factory: EnvoyFactory,
    letters: tuple[str, ...] = ("a", "b", "c"),
    tekton: FakeTekton | None = None,
    suffix: str | None = None,
    **overrides: Any,
) -> AsyncIterator[Secured]:
    """Tenants ``tenant-<letter>-<suffix>``, each with an application ``kettle`` (app version
    ``kettle-<letter>-<suffix>-v1``, consent required for ``b`` only) unless Tekton configures
    otao, in which case the test fills the fake Tekton beforehand, for the tenant ids made from
    ``suffix`` (its ``instance`` and ``accepts`` are set here)."""
    suffix = suffix or new_suffix()
    keycloak = FakeKeycloak().start()
    tenant_manager: FakeTenantManager | None = None
    running: RunningOtao | None = None
    envoy = None
    try:
        service_realm = keycloak.add_realm("kaa")
        service_realm.clients[CLIENT_ID] = CLIENT_SECRET
        stranger = keycloak.add_realm("stranger")
        check = ServiceTokenCheck(service_realm, CLIENT_ID)
        tenant_manager = FakeTenantManager(accepts=check).start()
        tenants: dict[str, TenantUnderTest] = {}
        applications = []
        for letter in letters:
            realm = keycloak.add_realm(f"realm-{letter}")
            tenant_manager.add_tenant(tenant_id(letter, suffix), realm.name)
            app_version = f"kettle-{letter}-{suffix}-v1"
            tenants[letter] = TenantUnderTest(
                tenant_id(letter, suffix), realm, "kettle", app_version
            )
            applications.append(
                {
                    "name": "kettle",
                    "tenant_id": tenant_id(letter, suffix),
                    "app_versions": [app_version],
                    # Different settings per tenant, so a leak would show.
                    "consent_required": letter == "b",
                }
            )
        settings: dict[str, Any] = {
            "kaa": {
                "otao": f"otao-{suffix}",
                "consumer": f"cmx-{suffix}",
                "epr": f"epr-{suffix}",
                "tekton": f"tekton-{suffix}",
            },
            "security": {
                "enabled": True,
                "keycloak_url": keycloak.url,
                "tenant_manager_url": tenant_manager.url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "service_realm": service_realm.name,
                # Key rotation tests need not wait out the production rate limit.
                "jwks_refetch_min_interval_seconds": 0.2,
            },
            "applications": applications,
        }
        if tekton is not None:
            tekton.instance = settings["kaa"]["otao"]
            tekton.accepts = ServiceTokenCheck(service_realm, CLIENT_ID)
            settings["applications"] = []
            settings["tekton"] = {"enabled": True, "url": tekton.url, "retry_seconds": 0.3}
        settings.update(overrides)
        running = await start_otao(nats_server.url, mongo_server.uri, **settings)
        envoy = await asyncio.to_thread(envoy_factory, running.port)
        async with (
            grpc.aio.insecure_channel(running.grpc_target) as channel,
            httpx.AsyncClient(base_url=envoy.base_url, timeout=15.0) as rest,
        ):
            stack = Secured(
                suffix=suffix,
                keycloak=keycloak,
                tenant_manager=tenant_manager,
                service_realm=service_realm,
                service_tokens=check,
                stranger=stranger,
                tenants=tenants,
                otao=running,
                channel=channel,
                rest=rest,
                nats_url=nats_server.url,
            )
            await stack.wait_for_tenants(*(t.id for t in tenants.values()))
            yield stack
    finally:
        if envoy is not None:
            await asyncio.to_thread(envoy.stop)
        if running is not None:
            await running.stop()
        if tenant_manager is not None:
            tenant_manager.stop()
        keycloak.stop()
