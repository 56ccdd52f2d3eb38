"""Bad input on every NATS subject otao listens to: random bytes, truncated Avro, another
record's schema, flipped bits, trailing bytes, absurd length prefixes, huge payloads.

A CDTP request always gets an answer (400 when it cannot be decoded), nothing crashes, and the
subscription still handles a good message right after: a poll is answered, a report recorded,
an endpoint forgotten, a filter joined/left/deleted, an EPR answer used, a catalog reloaded,
Tekton asked again, a tenant refreshed or forgotten.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.msg import Msg

from otao.domain.errors import InvalidArgument
from otao.domain.models import Caller, RolloutStrategy, Software, SoftwareSpec
from otao.domain.validation import SoftwareInput
from otao.messaging.avro import AvroCodec
from otao.messaging.records import (
    BroadcastConfigurationUpdateEvent,
    ConfigApplied,
    ConfigRequest,
    ConfigResponse,
    EndpointFilterDeletedEvent,
    EndpointFiltersRequest,
    EndpointFiltersResponse,
    EndpointMatchedFilterEvent,
    EndpointUnmatchedFilterEvent,
    EndpointUnregisteredEvent,
    Record,
    ServiceSpecificConfigurationUpdateEvent,
    TenantUnregisteredEvent,
    TenantUpdatedEvent,
)
from otao.messaging.subjects import (
    EfeEventType,
    ScmpAction,
    TleEventType,
    cdtp_request_subject,
    config_applied_subject,
    efe_subject,
    efmp_reply_subject,
    efmp_request_subject,
    elce_unregistered_subject,
    scmp_broadcast_subject,
    scmp_targeted_subject,
    tle_subject,
)
from otao.store.software import SoftwareStore
from tests.reliability.harness import (
    KaaNames,
    applied_report,
    close_quietly,
    database,
    dedicated_otao,
    eventually,
    now_ms,
)
from tests.support.fake_keycloak import FakeKeycloak
from tests.support.fake_tekton import FakeTekton
from tests.support.fake_tenant_manager import FakeTenantManager
from tests.support.otao import RunningOtao
from tests.support.stack import MongoServer, NatsServer

pytestmark = pytest.mark.timeout(180)

CODEC = AvroCodec()
NATS_MAX_PAYLOAD = 1024 * 1024  # nats-server's default max_payload (and AvroCodec's limit)
FUZZ = settings(
    max_examples=160,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# ---------------------------------------------------------------------------------------------
# Payloads


def sample(record_type: type[Record], text: str = "x", number: int = 7) -> Record:
    """A well-formed record of ``record_type`` with ``text`` in every string field."""
    common: dict[str, Any] = {"correlation_id": text, "timestamp": now_ms()}
    samples: dict[type[Any], dict[str, Any]] = {
        ConfigRequest: {"app_version_name": text, "endpoint_id": text, "config_id": text},
        ConfigApplied: {
            "app_version_name": text,
            "endpoint_id": text,
            "config_id": text,
            "status_code": number,
        },
        EndpointUnregisteredEvent: {
            "app_version_name": text,
            "endpoint_id": text,
            "originator_replica_id": text,
        },
        EndpointMatchedFilterEvent: {
            "originator_replica_id": text,
            "filter_id": text,
            "application_name": text,
            "app_version_name": text,
            "filter_name": None,
            "endpoint_id": text,
        },
        EndpointUnmatchedFilterEvent: {
            "originator_replica_id": text,
            "filter_id": text,
            "application_name": text,
            "app_version_name": text,
            "filter_name": text,
            "endpoint_id": text,
        },
        EndpointFilterDeletedEvent: {
            "originator_replica_id": text,
            "filter_id": text,
            "application_name": text,
            "filter_name": None,
        },
        EndpointFiltersResponse: {
            "endpoint_id": text,
            "filter_ids": (text, text),
            "status_code": number,
        },
        EndpointFiltersRequest: {"endpoint_id": text},
        BroadcastConfigurationUpdateEvent: {"originator_replica_id": text, "tenant_id": text},
        ServiceSpecificConfigurationUpdateEvent: {"tenant_id": text, "app_name": text},
        TenantUpdatedEvent: {"tenant_id": text, "originator_replica_id": text},
        TenantUnregisteredEvent: {"tenant_id": text, "originator_replica_id": text},
        ConfigResponse: {"app_version_name": text, "endpoint_id": text, "status_code": number},
    }
    return record_type(**common, **samples[record_type])


OTHER_RECORDS = [
    ConfigRequest,
    ConfigApplied,
    ConfigResponse,
    EndpointUnregisteredEvent,
    EndpointMatchedFilterEvent,
    EndpointFilterDeletedEvent,
    EndpointFiltersResponse,
    EndpointFiltersRequest,
    BroadcastConfigurationUpdateEvent,
    TenantUpdatedEvent,
]
ABSURD_LENGTH = b"\x02" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\xff\x01"  # a string of ~2^62 bytes
CLASSES = [
    "empty",
    "random bytes",
    "truncated",
    "wrong schema",
    "bit flip",
    "trailing bytes",
    "absurd length",
    "huge random",
    "huge fields",
    "not JSON / not Avro",
]


def huge(record_type: type[Record], chars: int) -> bytes:
    """A well-formed record with very long strings, as big as NATS lets through."""
    while True:
        encoded = CODEC.encode(sample(record_type, "é" * chars))
        if len(encoded) < NATS_MAX_PAYLOAD - 4096:
            return encoded
        chars //= 2


def _flip(data: bytes, index: int, bit: int) -> bytes:
    index %= max(len(data), 1)
    if not data:
        return b"\x01"
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1 :]


@st.composite
def payload(draw: st.DrawFn, record_type: type[Record]) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(CLASSES))
    text = draw(st.text(max_size=30))
    try:
        good = CODEC.encode(sample(record_type, text, draw(st.integers(-(2**31), 2**31 - 1))))
    except ValueError:
        good = CODEC.encode(sample(record_type))
    if kind == "empty":
        return kind, b""
    if kind == "random bytes":
        return kind, draw(st.binary(min_size=1, max_size=600))
    if kind == "truncated":
        return kind, good[: draw(st.integers(0, len(good) - 1))]
    if kind == "wrong schema":
        other = draw(st.sampled_from([r for r in OTHER_RECORDS if r is not record_type]))
        return kind, CODEC.encode(sample(other, text))
    if kind == "bit flip":
        return kind, _flip(good, draw(st.integers(0, 10_000)), draw(st.integers(0, 7)))
    if kind == "trailing bytes":
        return kind, good + draw(st.binary(min_size=1, max_size=16))
    if kind == "absurd length":
        return kind, draw(st.sampled_from([ABSURD_LENGTH, good[:3] + ABSURD_LENGTH]))
    if kind == "huge random":
        size = draw(st.sampled_from([64 * 1024, 512 * 1024, NATS_MAX_PAYLOAD - 4096]))
        seed = draw(st.binary(min_size=16, max_size=16))
        return kind, (seed * (size // 16 + 1))[:size]
    if kind == "huge fields":
        return kind, huge(record_type, draw(st.sampled_from([30_000, 400_000])))
    return kind, draw(
        st.sampled_from([b'{"tenantId":1}', b"null", b"\xff\xfe\x00", "ü".encode() * 9, b"[]"])
    )


# ---------------------------------------------------------------------------------------------
# The otao under test, a NATS client, and what a good message on each subject must do


@dataclass
class Target:
    otao: RunningOtao
    names: KaaNames
    client: Client
    app: str
    app_version: str
    db: Any
    counter: itertools.count[int] = field(default_factory=itertools.count)

    async def request(self, payload: bytes, timeout: float = 5.0) -> ConfigResponse:
        reply = await self.client.request(
            cdtp_request_subject(self.names.otao), payload, timeout=timeout
        )
        return CODEC.decode(ConfigResponse, reply.data)

    async def publish(self, subject: str, payload: bytes) -> None:
        await self.client.publish(subject, payload)
        await self.client.flush()

    async def endpoint_doc(self, endpoint: str) -> dict[str, Any] | None:
        doc: dict[str, Any] | None = await self.db.endpoints.find_one(
            {"_id": f"default/{self.app}/{endpoint}"}
        )
        return doc


@pytest.fixture(scope="module")
async def target(nats_server: NatsServer, mongo_server: MongoServer) -> AsyncIterator[Target]:
    async with dedicated_otao(
        nats_server.url, mongo_server.uri, kaa={"efmp_timeout_seconds": 2.0}
    ) as (otao, names):
        application = otao.add_application()
        app, app_version = application.name, application.app_versions[0]
        await otao.app.components.services.software.create(
            _system(), app, _input("1.1.0", ["1.0.0"], RolloutStrategy.GENERAL)
        )
        await otao.app.components.services.software.create(
            _system(),
            app,
            _input("0.9.0", ["0.8.0"], RolloutStrategy.TARGETED, filters=[("beta", "")]),
        )
        client = await nats.connect(nats_server.url)

        async def epr(msg: Msg) -> None:  # EPR: every endpoint is in filter "beta"
            request = CODEC.decode(EndpointFiltersRequest, msg.data)
            response = EndpointFiltersResponse(
                correlation_id=request.correlation_id,
                timestamp=now_ms(),
                endpoint_id=request.endpoint_id,
                filter_ids=("beta",),
                status_code=200,
            )
            await client.publish(msg.reply, CODEC.encode(response))

        await client.subscribe(efmp_request_subject(names.epr), cb=epr)
        async with database(mongo_server.uri, otao.settings.mongodb_database) as db:
            yield Target(otao, names, client, app, app_version, db)
        await close_quietly(client)


def _system() -> Caller:
    return Caller("default", "reliability-test")


def _input(
    version: str,
    sources: list[str],
    strategy: RolloutStrategy,
    filters: list[tuple[str, str]] | None = None,
) -> SoftwareInput:
    return SoftwareInput(
        version=version,
        upgradable_from=sources,
        specification={"image": f"fw-{version}.bin"},
        has_specification=True,
        metadata={},
        has_metadata=True,
        rollout_strategy=strategy.value,
        filters=filters or [],
        rollout_policy=None,
    )


async def good_cdtp(t: Target) -> None:
    response = await t.request(CODEC.encode(_request(t, f"good-{next(t.counter)}", "1.0.0")))
    assert (response.status_code, response.config_id) == (200, "1.1.0"), response


def _request(t: Target, endpoint: str, config_id: str | None) -> ConfigRequest:
    return ConfigRequest(
        correlation_id=uuid.uuid4().hex,
        timestamp=now_ms(),
        app_version_name=t.app_version,
        endpoint_id=endpoint,
        config_id=config_id,
    )


def _applied(t: Target, endpoint: str, version: str) -> bytes:
    return CODEC.encode(applied_report(t.app_version, endpoint, version))


async def good_applied(t: Target) -> None:
    endpoint = f"applied-{next(t.counter)}"
    await t.publish(config_applied_subject(t.names.consumer), _applied(t, endpoint, "1.0.0"))

    async def recorded() -> bool:
        doc = await t.endpoint_doc(endpoint)
        return doc is not None and doc.get("currentVersion") == "1.0.0"

    await eventually(recorded, 5, "a good ConfigApplied recorded")


async def good_unregistered(t: Target) -> None:
    endpoint = f"gone-{next(t.counter)}"
    await good_applied_for(t, endpoint)
    event = EndpointUnregisteredEvent(
        correlation_id=uuid.uuid4().hex,
        timestamp=now_ms(),
        app_version_name=t.app_version,
        endpoint_id=endpoint,
        originator_replica_id="epr-1",
    )
    await t.publish(elce_unregistered_subject(t.names.epr), CODEC.encode(event))

    async def forgotten() -> bool:
        return await t.endpoint_doc(endpoint) is None

    await eventually(forgotten, 5, "a good unregistration handled")


async def good_applied_for(t: Target, endpoint: str) -> None:
    await t.publish(config_applied_subject(t.names.consumer), _applied(t, endpoint, "1.0.0"))

    async def recorded() -> bool:
        return await t.endpoint_doc(endpoint) is not None

    await eventually(recorded, 5, "endpoint known")


def _matched(t: Target, endpoint: str, filter_id: str) -> bytes:
    return CODEC.encode(
        EndpointMatchedFilterEvent(
            timestamp=now_ms(),
            correlation_id=uuid.uuid4().hex,
            originator_replica_id="epr-1",
            filter_id=filter_id,
            application_name=t.app,
            app_version_name=t.app_version,
            filter_name=None,
            endpoint_id=endpoint,
        )
    )


async def _filters_of(t: Target, endpoint: str) -> list[str]:
    doc = await t.endpoint_doc(endpoint)
    return list((doc or {}).get("filters") or [])


async def good_matched(t: Target, endpoint: str | None = None, filter_id: str = "fz") -> str:
    endpoint = endpoint or f"matched-{next(t.counter)}"
    subject = efe_subject(t.names.epr, EfeEventType.EP_MATCHED, filter_id)
    await t.publish(subject, _matched(t, endpoint, filter_id))

    async def joined() -> bool:
        return filter_id in await _filters_of(t, endpoint)

    await eventually(joined, 5, "a good ep-matched handled")
    return endpoint


async def good_unmatched(t: Target) -> None:
    endpoint = await good_matched(t)
    event = EndpointUnmatchedFilterEvent(
        timestamp=now_ms(),
        correlation_id=uuid.uuid4().hex,
        originator_replica_id="epr-1",
        filter_id="fz",
        application_name=t.app,
        app_version_name=t.app_version,
        filter_name=None,
        endpoint_id=endpoint,
    )
    await t.publish(efe_subject(t.names.epr, EfeEventType.EP_UNMATCHED, "fz"), CODEC.encode(event))

    async def left() -> bool:
        return "fz" not in await _filters_of(t, endpoint)

    await eventually(left, 5, "a good ep-unmatched handled")


async def good_filter_deleted(t: Target) -> None:
    filter_id = f"del-{next(t.counter)}"
    endpoint = await good_matched(t, filter_id=filter_id)
    event = EndpointFilterDeletedEvent(
        timestamp=now_ms(),
        correlation_id=uuid.uuid4().hex,
        originator_replica_id="epr-1",
        filter_id=filter_id,
        application_name=t.app,
        filter_name=None,
    )
    subject = efe_subject(t.names.epr, EfeEventType.DELETED, filter_id)
    await t.publish(subject, CODEC.encode(event))

    async def dropped() -> bool:
        return filter_id not in await _filters_of(t, endpoint)

    await eventually(dropped, 5, "a good filter deletion handled")


async def good_efmp_reply(t: Target) -> None:
    """A poll that needs EPR's answer (targeted 0.9.0 for filter beta) gets it: without the
    answer (EPR timed out) nothing would be offered."""
    request = _request(t, f"efmp-{next(t.counter)}", "0.8.0")
    response = await t.request(CODEC.encode(request))
    assert (response.status_code, response.config_id) == (200, "0.9.0"), response


async def good_catalog_changed(t: Target) -> None:
    """A definition written behind otao's back is served once the announcement arrives."""
    version = f"5.0.{next(t.counter)}"
    now = datetime.now(UTC)
    spec = SoftwareSpec(version, ("4.0.0",), "{}", "{}", RolloutStrategy.GENERAL)
    await SoftwareStore(t.otao.app.components.storage.mongo).insert(
        Software("default", t.app, spec, now, now, uuid.uuid4().hex)
    )
    payload = f'{{"tenantId":"default","application":"{t.app}","replica":"other"}}'.encode()
    await t.publish(_catalog_subject(t), payload)

    async def served() -> bool:
        response = await t.request(CODEC.encode(_request(t, "catalog", "4.0.0")))
        return response.config_id == version

    await eventually(served, 5, "a good catalog announcement handled")


def _catalog_subject(t: Target) -> str:
    return f"kaa.v1.events.{t.names.otao}.application.catalog.changed"


SUBJECTS: dict[
    str, tuple[Callable[[Target], str], type[Record], Callable[[Target], Awaitable[Any]]]
]
SUBJECTS = {
    "6/CDTP ConfigRequest": (
        lambda t: cdtp_request_subject(t.names.otao),
        ConfigRequest,
        good_cdtp,
    ),
    "6/CDTP ConfigApplied": (
        lambda t: config_applied_subject(t.names.consumer),
        ConfigApplied,
        good_applied,
    ),
    "9/ELCE unregistered": (
        lambda t: elce_unregistered_subject(t.names.epr),
        EndpointUnregisteredEvent,
        good_unregistered,
    ),
    "18/EFE ep-matched": (
        lambda t: efe_subject(t.names.epr, EfeEventType.EP_MATCHED, "fz"),
        EndpointMatchedFilterEvent,
        good_matched,
    ),
    "18/EFE ep-unmatched": (
        lambda t: efe_subject(t.names.epr, EfeEventType.EP_UNMATCHED, "fz"),
        EndpointUnmatchedFilterEvent,
        good_unmatched,
    ),
    "18/EFE deleted": (
        lambda t: efe_subject(t.names.epr, EfeEventType.DELETED, "fz"),
        EndpointFilterDeletedEvent,
        good_filter_deleted,
    ),
    "20/EFMP reply": (
        lambda t: efmp_reply_subject(t.otao.settings.replica_id),
        EndpointFiltersResponse,
        good_efmp_reply,
    ),
    "catalog changed (replicas)": (_catalog_subject, ConfigApplied, good_catalog_changed),
}


async def _send(t: Target, name: str, data: bytes) -> None:
    subject_of, record_type, _ = SUBJECTS[name]
    if record_type is not ConfigRequest:
        await t.publish(subject_of(t), data)
        return
    try:
        decoded: ConfigRequest | None = CODEC.decode(ConfigRequest, data)
    except InvalidArgument:
        decoded = None
    if decoded is not None and decoded.timeout > 0:
        await t.publish(subject_of(t), data)  # may be expired: no answer is due
        return
    response = await t.request(data)
    if decoded is None:
        assert response.status_code == 400, response
        assert response.reason_phrase == "malformed ConfigRequest"
    else:
        assert 200 <= response.status_code < 500, response


def _alive(t: Target, caplog: pytest.LogCaptureFixture) -> None:
    assert not [task.get_name() for task in t.otao.app.tasks if task.done()]
    assert t.otao.app.components.broker.nats.connected
    _no_escaped_exception(caplog)


def _no_escaped_exception(caplog: pytest.LogCaptureFixture) -> None:
    """No handler let an exception out to the NATS client (it reports them as "NATS error")."""
    escaped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("NATS error")]
    assert not escaped, escaped


@pytest.mark.parametrize("name", list(SUBJECTS))
@pytest.mark.parametrize("kind", CLASSES)
async def test_each_input_class_on_each_subject(
    target: Target, name: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Every (subject, input class) pair at least once, whatever hypothesis draws below."""
    record_type = SUBJECTS[name][1]
    data = _fixed(record_type, kind)
    await _send(target, name, data)
    await SUBJECTS[name][2](target)
    _alive(target, caplog)


def _fixed(record_type: type[Record], kind: str) -> bytes:
    good = CODEC.encode(sample(record_type, "fixed"))
    return {
        "empty": b"",
        "random bytes": bytes(range(256)) * 2,
        "truncated": good[: len(good) // 2],
        "wrong schema": CODEC.encode(
            sample(ConfigResponse if record_type is not ConfigResponse else ConfigRequest)
        ),
        "bit flip": _flip(good, 1, 7),
        "trailing bytes": good + b"\x00\x01",
        "absurd length": ABSURD_LENGTH,
        "huge random": b"\x9f" * (NATS_MAX_PAYLOAD - 4096),
        "huge fields": huge(record_type, 400_000),
        "not JSON / not Avro": b"\xff\xfe\x00",
    }[kind]


@FUZZ
@given(data=st.data())
async def test_random_bad_input_on_every_subject(
    target: Target, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    name = data.draw(st.sampled_from(list(SUBJECTS)))
    _, payload_bytes = data.draw(payload(SUBJECTS[name][1]))
    await _send(target, name, payload_bytes)
    await SUBJECTS[name][2](target)
    _alive(target, caplog)


# ---------------------------------------------------------------------------------------------
# 17/SCMP and 21/TLE: an otao with Tekton and security on (fake Keycloak, Tenant Manager, Tekton)


@dataclass
class PlatformTarget:
    otao: RunningOtao
    names: KaaNames
    client: Client
    tekton: FakeTekton
    tenant_manager: FakeTenantManager

    async def publish(self, subject: str, payload: bytes) -> None:
        await self.client.publish(subject, payload)
        await self.client.flush()


@pytest.fixture(scope="module")
async def platform(
    nats_server: NatsServer, mongo_server: MongoServer
) -> AsyncIterator[PlatformTarget]:
    names = KaaNames.fresh()
    with (
        FakeKeycloak() as keycloak,
        FakeTenantManager() as tenant_manager,
        FakeTekton(names.otao) as tekton,
    ):
        keycloak.add_realm("kaa").clients["otao"] = "s3cret"
        keycloak.add_realm("t1-realm")
        tenant_manager.add_tenant("t1", "t1-realm")
        tekton.add_application("t1", "meter", ["meter-v1"])
        async with dedicated_otao(
            nats_server.url,
            mongo_server.uri,
            kaa={**names.settings()},
            security={
                "enabled": True,
                "keycloak_url": keycloak.url,
                "tenant_manager_url": tenant_manager.url,
                "client_secret": "s3cret",
            },
            tekton={"enabled": True, "url": tekton.url, "retry_seconds": 0.5},
        ) as (otao, _):
            target = PlatformTarget(
                otao, names, await nats.connect(nats_server.url), tekton, tenant_manager
            )
            await eventually(lambda: tekton.total() >= 1, 10, "Tekton read at start")
            await eventually(
                lambda: otao.app.components.platform.tenants.by_id("t1") is not None,
                10,
                "tenants read",
            )
            yield target
            await close_quietly(target.client)


def _fresh() -> dict[str, Any]:
    """A new correlation id and the time now: what every good event below carries."""
    return {"correlation_id": uuid.uuid4().hex, "timestamp": now_ms()}


def _scmp(broadcast: bool) -> bytes:
    if broadcast:
        return CODEC.encode(
            BroadcastConfigurationUpdateEvent(
                **_fresh(), originator_replica_id="tekton-1", tenant_id="t1"
            )
        )
    return CODEC.encode(
        ServiceSpecificConfigurationUpdateEvent(**_fresh(), tenant_id="t1", app_name="meter")
    )


def _tle(record_type: type[TenantUpdatedEvent] | type[TenantUnregisteredEvent]) -> bytes:
    return CODEC.encode(record_type(**_fresh(), tenant_id="t1", originator_replica_id="tm-1"))


async def good_scmp(p: PlatformTarget, subject: str, broadcast: bool) -> None:
    before = p.tekton.total()
    await p.publish(subject, _scmp(broadcast))
    await eventually(lambda: p.tekton.total() > before, 5, "a good SCMP event reloads")


async def good_tle_updated(p: PlatformTarget) -> None:
    before = p.tenant_manager.total()
    await p.publish(tle_subject("tm", TleEventType.UPDATED), _tle(TenantUpdatedEvent))
    await eventually(lambda: p.tenant_manager.total() > before, 5, "a good TLE updated refreshes")
    await eventually(
        lambda: p.otao.app.components.platform.tenants.by_id("t1") is not None,
        5,
        "tenant known again",
    )


async def good_tle_unregistered(p: PlatformTarget) -> None:
    await good_tle_updated(p)
    await p.publish(tle_subject("tm", TleEventType.UNREGISTERED), _tle(TenantUnregisteredEvent))
    await eventually(
        lambda: p.otao.app.components.platform.tenants.by_id("t1") is None, 5, "a good TLE forgets"
    )
    await good_tle_updated(p)


PlatformSubject = tuple[
    Callable[[KaaNames], str], type[Record], Callable[[PlatformTarget], Awaitable[None]]
]


def _scmp_subject(subject_of: Callable[[KaaNames], str], broadcast: bool) -> PlatformSubject:
    """An SCMP subject: its record type, and a good event on the same subject reloads."""
    record_type = (
        BroadcastConfigurationUpdateEvent if broadcast else ServiceSpecificConfigurationUpdateEvent
    )
    return subject_of, record_type, lambda p: good_scmp(p, subject_of(p.names), broadcast)


PLATFORM_SUBJECTS: dict[str, PlatformSubject] = {
    "17/SCMP broadcast upsert": _scmp_subject(
        lambda n: scmp_broadcast_subject(n.tekton, ScmpAction.UPSERT), broadcast=True
    ),
    "17/SCMP broadcast delete": _scmp_subject(
        lambda n: scmp_broadcast_subject(n.tekton, ScmpAction.DELETE), broadcast=True
    ),
    "17/SCMP targeted upsert": _scmp_subject(
        lambda n: scmp_targeted_subject(n.otao, ScmpAction.UPSERT), broadcast=False
    ),
    "17/SCMP targeted delete": _scmp_subject(
        lambda n: scmp_targeted_subject(n.otao, ScmpAction.DELETE), broadcast=False
    ),
    "21/TLE updated": (
        lambda n: tle_subject("tm", TleEventType.UPDATED),
        TenantUpdatedEvent,
        good_tle_updated,
    ),
    "21/TLE unregistered": (
        lambda n: tle_subject("tm", TleEventType.UNREGISTERED),
        TenantUnregisteredEvent,
        good_tle_unregistered,
    ),
}


def _platform_alive(p: PlatformTarget, caplog: pytest.LogCaptureFixture) -> None:
    assert not [task.get_name() for task in p.otao.app.tasks if task.done()]
    assert p.otao.app.components.broker.nats.connected
    _no_escaped_exception(caplog)


@pytest.mark.parametrize("name", list(PLATFORM_SUBJECTS))
@pytest.mark.parametrize("kind", CLASSES)
async def test_each_input_class_on_each_platform_subject(
    platform: PlatformTarget, name: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    subject_of, record_type, good = PLATFORM_SUBJECTS[name]
    await platform.publish(subject_of(platform.names), _fixed(record_type, kind))
    await good(platform)
    _platform_alive(platform, caplog)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
async def test_random_bad_input_on_every_platform_subject(
    platform: PlatformTarget, data: st.DataObject, caplog: pytest.LogCaptureFixture
) -> None:
    name = data.draw(st.sampled_from(list(PLATFORM_SUBJECTS)))
    subject_of, record_type, good = PLATFORM_SUBJECTS[name]
    _, payload_bytes = data.draw(payload(record_type))
    await platform.publish(subject_of(platform.names), payload_bytes)
    await good(platform)
    _platform_alive(platform, caplog)


async def test_nothing_was_left_half_done(target: Target) -> None:
    """After all of it: the CDTP provider has no request stuck in flight."""
    cdtp = target.otao.app.components.handlers.cdtp
    await eventually(lambda: not cdtp._in_flight, 10, "no CDTP request left in flight")
    await good_cdtp(target)
