"""otao.store.rollout_reads against a real MongoDB-compatible server: a version's install
records and offers, and the known endpoints, read a page at a time (pages and lookups of 3
here, so every read crosses page boundaries).

Each test has a database of its own (tests/store/conftest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from otao.domain.models import AppliedReport, Consent, EndpointKey
from otao.store.endpoints import EndpointStore
from otao.store.mongo import Mongo
from otao.store.offers import OfferStore
from otao.store.rollout_reads import RolloutReads
from tests.support.values import APP, T0, TENANT

pytestmark = pytest.mark.timeout(30)

APP_VERSION = "kettle-v1"
# "kettle-2" sorts before "kettle/" and "kettle0" after it: neighbours in the _id order.
NEIGHBOURS = ("kettle-2", "kettle0")


@pytest.fixture
def reads(mongo: Mongo) -> RolloutReads:
    return RolloutReads(mongo, page=3, lookup=3, rest=0.0)


def key(endpoint: str, application: str = APP) -> EndpointKey:
    return EndpointKey(TENANT, application, endpoint)


async def test_the_install_records_of_a_version_are_read_across_pages(
    mongo: Mongo, reads: RolloutReads
) -> None:
    endpoints = EndpointStore(mongo)
    reporting = [f"ep-{n:02d}" for n in range(8)]
    for n, endpoint in enumerate(reporting):
        status = 200 if n % 2 == 0 else 500
        report = AppliedReport("1.1.0", status, None, T0 + timedelta(seconds=n))
        await endpoints.apply_report(key(endpoint), APP_VERSION, report)
    await endpoints.apply_report(key("other"), APP_VERSION, AppliedReport("1.2.0", 200, None, T0))
    for application in NEIGHBOURS:
        report = AppliedReport("1.1.0", 200, None, T0)
        await endpoints.apply_report(key("ep-00", application), APP_VERSION, report)

    asked = [*reporting, "other", "never-heard-of"]
    found = await reads.installs(TENANT, APP, "1.1.0", asked)

    assert sorted(found) == reporting
    assert [found[e].succeeded for e in reporting] == [n % 2 == 0 for n in range(8)]
    assert found["ep-03"].reported_at == T0 + timedelta(seconds=3)
    assert sorted(await reads.installs(TENANT, APP, "1.1.0", reporting[2:5])) == reporting[2:5]
    assert await reads.installs(TENANT, APP, "2.0.0", asked) == {}


async def test_the_offers_of_a_version_are_read_across_pages(
    mongo: Mongo, reads: RolloutReads
) -> None:
    offers = OfferStore(mongo)
    offered = [f"ep-{n:02d}" for n in range(7)]
    await offers.mark_offered([key(e) for e in offered[:4]], "1.1.0", T0)
    await offers.mark_offered([key(e) for e in offered[4:]], "1.1.0", T0 + timedelta(1))
    await offers.mark_offered([key("ep-00"), key("ep-99")], "1.2.0", T0)
    await offers.mark_offered([key("ep-00", a) for a in NEIGHBOURS], "1.1.0", T0)

    found = await reads.offered_at(TENANT, APP, "1.1.0")

    assert found == {e: T0 if n < 4 else T0 + timedelta(1) for n, e in enumerate(offered)}


async def test_the_known_endpoints_are_read_in_pages_without_the_unseen(
    mongo: Mongo, reads: RolloutReads
) -> None:
    endpoints = EndpointStore(mongo)
    known = [f"ep-{n:02d}" for n in range(7)]
    for endpoint in known:
        await endpoints.record_sighting(key(endpoint), APP_VERSION, "1.0.0", T0)
    # Consent granted before it ever connected: a document, but not a known endpoint.
    await endpoints.add_consent(key("unseen"), Consent("1.1.0", False, T0), T0)
    await endpoints.record_sighting(key("ep-00", NEIGHBOURS[0]), APP_VERSION, "1.0.0", T0)

    pages = [page async for page in reads.known(TENANT, APP)]

    assert [len(page) for page in pages] == [3, 3, 1]
    states = [state for page in pages for state in page]
    assert [s.endpoint_id for s in states] == known
    assert {s.current_version for s in states} == {"1.0.0"}
    assert await reads.known_count(TENANT, APP) == len(known)
