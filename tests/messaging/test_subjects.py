from __future__ import annotations

import dataclasses

import pytest

from otao.messaging.subjects import (
    ANY,
    EfeEventType,
    ScmpAction,
    Subjects,
    TleEventType,
    check_token,
    efe_subject,
)

SUBJECTS = Subjects(otao="otao", replica="r-42", consumer="cmx-ota", epr="epr", tekton="tekton")


def test_cdtp_requests_arrive_on_the_otao_service_subject_in_a_queue_group_named_otao() -> None:
    assert SUBJECTS.cdtp_request == "kaa.v1.service.otao.cdtp.request"
    assert SUBJECTS.queue_group == "otao"


def test_config_updated_is_broadcast_as_an_otao_event() -> None:
    assert SUBJECTS.config_updated == "kaa.v1.events.otao.endpoint.config.updated"


def test_config_applied_is_heard_from_the_consumer_instance() -> None:
    assert SUBJECTS.config_applied == "kaa.v1.events.cmx-ota.endpoint.config.applied"


def test_config_applied_can_be_heard_from_any_consumer() -> None:
    anyone = dataclasses.replace(SUBJECTS, consumer=ANY)
    assert anyone.config_applied == "kaa.v1.events.*.endpoint.config.applied"


def test_endpoint_unregistered_events_come_from_the_endpoint_register() -> None:
    assert SUBJECTS.elce_unregistered == "kaa.v1.events.epr.endpoint.lifecycle.unregistered"


@pytest.mark.parametrize(
    ("event_type", "token"),
    [
        (EfeEventType.ACTIVATED, "activated"),
        (EfeEventType.PENDING, "pending"),
        (EfeEventType.DELETED, "deleted"),
        (EfeEventType.EP_MATCHED, "ep-matched"),
        (EfeEventType.EP_UNMATCHED, "ep-unmatched"),
    ],
)
def test_filter_events_are_subscribed_per_type_for_every_filter(
    event_type: EfeEventType, token: str
) -> None:
    assert SUBJECTS.efe(event_type) == f"kaa.v1.events.epr.endpoint-filter.*.{token}"


def test_a_filter_event_subject_names_its_filter_and_type() -> None:
    subject = efe_subject("epr", EfeEventType.EP_MATCHED, "f-1")
    assert subject == "kaa.v1.events.epr.endpoint-filter.f-1.ep-matched"


def test_filter_membership_requests_go_to_the_register_and_replies_to_this_replica() -> None:
    assert SUBJECTS.efmp_request == "kaa.v1.service.epr.efmp.ep-filters-request"
    assert SUBJECTS.efmp_reply == "kaa.v1.replica.r-42.efmp.ep-filters-response"


def test_service_configuration_updates_arrive_broadcast_from_tekton_and_targeted_to_otao() -> None:
    assert (
        SUBJECTS.scmp_broadcast(ScmpAction.UPSERT)
        == "kaa.v1.events.tekton.service.configuration.upsert"
    )
    assert (
        SUBJECTS.scmp_broadcast(ScmpAction.DELETE)
        == "kaa.v1.events.tekton.service.configuration.delete"
    )
    assert (
        SUBJECTS.scmp_targeted(ScmpAction.UPSERT) == "kaa.v1.service.otao.scmp.configuration.upsert"
    )
    assert (
        SUBJECTS.scmp_targeted(ScmpAction.DELETE) == "kaa.v1.service.otao.scmp.configuration.delete"
    )


def test_tenant_lifecycle_events_are_heard_from_any_originator_by_default() -> None:
    assert SUBJECTS.tle(TleEventType.UPDATED) == "kaa.v1.events.*.tenant.lifecycle.updated"
    assert (
        SUBJECTS.tle(TleEventType.UNREGISTERED) == "kaa.v1.events.*.tenant.lifecycle.unregistered"
    )
    tm = dataclasses.replace(SUBJECTS, tenant_originator="tenant-manager")
    assert tm.tle(TleEventType.UPDATED) == "kaa.v1.events.tenant-manager.tenant.lifecycle.updated"


@pytest.mark.parametrize("bad", ["", "a.b", "a b", "a>", "a*", ">", "tab\t", "nul\x00", "line\n"])
@pytest.mark.parametrize(
    "field", ["otao", "replica", "consumer", "epr", "tekton", "tenant_originator"]
)
def test_instance_names_that_are_not_single_subject_tokens_are_refused(
    field: str, bad: str
) -> None:
    with pytest.raises(ValueError, match="NATS subject token"):
        dataclasses.replace(SUBJECTS, **{field: bad})


@pytest.mark.parametrize("field", ["otao", "replica", "epr"])
def test_names_otao_publishes_or_replies_on_cannot_be_wildcards(field: str) -> None:
    with pytest.raises(ValueError, match="NATS subject token"):
        dataclasses.replace(SUBJECTS, **{field: ANY})


def test_check_token_returns_a_valid_token() -> None:
    assert check_token("cmx-ota", "consumer") == "cmx-ota"
    assert check_token(ANY, "consumer", wildcard=True) == ANY
