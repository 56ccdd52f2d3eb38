"""Push jobs as values (their factories and ids) and the pure rule of who gets a push."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from otao.domain.catalog import Catalog
from otao.domain.models import (
    ApplicationSettings,
    Change,
    Consent,
    EndpointState,
    RolloutFilter,
    RolloutStrategy,
    Software,
    SoftwareSpec,
)
from otao.domain.push import PushJob, catalog_before, deliveries
from tests.domain.builders import NOW

TENANT, APP = "t", "kettle"


def software(
    version: str,
    *upgradable_from: str,
    strategy: RolloutStrategy = RolloutStrategy.GENERAL,
    etag: str = "e1",
    filters: tuple[RolloutFilter, ...] = (),
) -> Software:
    spec = SoftwareSpec(version, upgradable_from, f'{{"v":"{version}"}}', "{}", strategy, filters)
    return Software(TENANT, APP, spec, NOW, NOW, etag)


def endpoint(
    name: str,
    current: str,
    failed: frozenset[str] = frozenset(),
    consents: tuple[Consent, ...] = (),
) -> EndpointState:
    return EndpointState(
        TENANT, APP, name, current_version=current, failed_versions=failed, consents=consents
    )


def catalog(*definitions: Software, consent_required: bool = False) -> Catalog:
    return Catalog.build(TENANT, APP, ApplicationSettings(consent_required), definitions)


def test_a_change_that_alters_no_deliverable_update_makes_no_job() -> None:
    before = software("1.1.0", "1.0.0")
    after = replace(before, spec=replace(before.spec, metadata_json='{"note":1}'), etag="e2")

    assert PushJob.for_change(Change(TENANT, APP, before, after), NOW) is None
    assert PushJob.for_change(Change(TENANT, APP, None, after), NOW) is not None


def test_a_create_and_the_intent_written_before_it_share_one_id_and_each_write_has_its_own() -> (
    None
):
    created = software("1.1.0", "1.0.0")
    suspended = replace(
        created, spec=replace(created.spec, rollout_strategy=RolloutStrategy.SUSPENDED), etag="e2"
    )
    intent = PushJob.for_change(Change(TENANT, APP, None, created), NOW)
    job = PushJob.for_change(Change(TENANT, APP, None, created), NOW + timedelta(seconds=1))
    update = PushJob.for_change(Change(TENANT, APP, created, suspended), NOW)
    deletion = PushJob.for_change(Change(TENANT, APP, suspended, None), NOW)

    assert intent is not None and job is not None and update is not None and deletion is not None
    assert intent.id == job.id
    assert len({job.id, update.id, deletion.id}) == 3


def test_a_rollout_date_makes_one_job_id_wherever_it_is_seen_and_before_it_the_date_is_far() -> (
    None
):
    date = NOW - timedelta(minutes=1)
    dated = software(
        "1.1.0", "1.0.0", strategy=RolloutStrategy.TARGETED, filters=(RolloutFilter("beta", date),)
    )

    seen_here = PushJob.for_rollout_date(dated, 0, NOW)
    seen_there = PushJob.for_rollout_date(dated, 0, NOW + timedelta(seconds=3))

    assert seen_here.id == seen_there.id
    assert seen_here.after == dated
    assert seen_here.before is not None
    before_date = seen_here.before.spec.filters[0].rollout_date
    assert before_date is not None and before_date > NOW + timedelta(days=365)


def test_the_catalog_before_a_job_undoes_its_definition_and_settings_change() -> None:
    old, released = software("1.0.0"), software("1.1.0", "1.0.0")
    suspended = replace(
        released, spec=replace(released.spec, rollout_strategy=RolloutStrategy.SUSPENDED)
    )
    now = catalog(old, released, consent_required=False)
    release = PushJob.for_change(Change(TENANT, APP, suspended, released), NOW)
    create = PushJob.for_change(Change(TENANT, APP, None, released), NOW)
    lifted = PushJob.for_consent_lifted(TENANT, APP, "c1", NOW)
    assert release is not None and create is not None

    assert catalog_before(release, now).get("1.1.0") == suspended
    assert catalog_before(create, now).get("1.1.0") is None
    assert catalog_before(create, now).get("1.0.0") == old
    assert catalog_before(lifted, now).settings.consent_required is True


def test_deliveries_are_the_endpoints_whose_deliverable_update_the_change_changed() -> None:
    released = software("1.1.0", "1.0.0")
    other = software("0.6.0", "0.5.0")
    suspended = replace(
        released, spec=replace(released.spec, rollout_strategy=RolloutStrategy.SUSPENDED)
    )
    states = [
        endpoint("a", "1.0.0"),
        endpoint("failed", "1.0.0", failed=frozenset({"1.1.0"})),
        endpoint("b", "1.0.0"),
        endpoint("other-branch", "0.5.0"),  # gets 0.6.0 before and after: no push
        endpoint("on-top", "1.1.0"),
    ]

    pushed = deliveries(catalog(suspended, other), catalog(released, other), states, NOW)

    assert [(s.endpoint_id, offered.version) for s, offered in pushed] == [
        ("a", "1.1.0"),
        ("b", "1.1.0"),
    ]


def test_lifting_consent_delivers_to_endpoints_that_waited_for_it_only() -> None:
    released = software("1.1.0", "1.0.0")
    consented = Consent("1.1.0", False, NOW)
    states = [endpoint("waited", "1.0.0"), endpoint("had", "1.0.0", consents=(consented,))]
    lifted = PushJob.for_consent_lifted(TENANT, APP, "c1", NOW)
    after = catalog(released, consent_required=False)

    pushed = deliveries(catalog_before(lifted, after), after, states, NOW)

    assert [s.endpoint_id for s, _ in pushed] == ["waited"]
