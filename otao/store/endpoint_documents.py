"""The endpoint document: one per (tenant, application, endpoint), and what is done to it.

One document keyed by the natural ``_id`` holds the current version, the last report,
failed and applied versions, consents and filter membership, so resolving an endpoint's
update costs one ``_id`` read and forgetting an unregistered endpoint is one delete.

Here: the document's id and scope fields, its conversions to domain values (``from_document``
for polls and explanations, ``push_state`` for a push's walk), and the pure changes the
store's writes make to a document copy (``store/endpoints.py`` reads, checks the revision
and replaces it).
"""

from __future__ import annotations

from datetime import datetime

from otao.domain.models import (
    AppliedReport,
    Consent,
    EndpointKey,
    EndpointState,
    FilterBelief,
    FilterSource,
)
from otao.domain.push import Walked
from otao.domain.rollout_state import InstallRecord
from otao.store.mongo import Document

# An endpoint an operator pre-granted consent for before it ever connected, or that EPR named
# in a filter event before it ever polled, has a document (the fact must apply once it
# connects) marked UNSEEN: it is not a known endpoint (not listed, counted nor pushed to)
# until it polls or reports.
UNSEEN = "unseen"
KNOWN: Document = {UNSEEN: {"$ne": True}}


def endpoint_doc_id(key: EndpointKey) -> str:
    return f"{key.tenant_id}/{key.application}/{key.endpoint_id}"


def endpoint_scope(key: EndpointKey) -> Document:
    """The fields naming the endpoint in its documents (and in its offers)."""
    return {
        "tenantId": key.tenant_id,
        "application": key.application,
        "endpointId": key.endpoint_id,
    }


_NONE: frozenset[str] = frozenset()


def _consents(doc: Document) -> tuple[Consent, ...]:
    consents = doc.get("consents")
    if not consents:
        return ()
    return tuple(
        Consent(c.get("version"), bool(c.get("allVersions")), c["grantedAt"]) for c in consents
    )


def _filters(doc: Document) -> frozenset[str] | None:
    """The filters it matches; None while nothing is known. Any fact counts (an ep-matched
    event alone included), not only a learned membership."""
    get = doc.get
    filters = get("filters")
    if filters or get("filtersKnown") or get("filterFacts"):
        return frozenset(filters or ())
    return None


def from_document(doc: Document) -> EndpointState:
    # Read on every poll that needs state and for every endpoint a push walks: kept lean.
    get = doc.get
    report = get("lastReport")
    failed = get("failedVersions")
    return EndpointState(
        tenant_id=doc["tenantId"],
        application=doc["application"],
        endpoint_id=doc["endpointId"],
        current_version=get("currentVersion"),
        last_report=(
            AppliedReport(
                report["configId"],
                int(report["statusCode"]),
                report.get("reasonPhrase"),
                report["reportedAt"],
            )
            if report
            else None
        ),
        failed_versions=frozenset(failed) if failed else _NONE,
        consents=_consents(doc),
        filters=_filters(doc),
        updated_at=get("updatedAt"),
        app_version=get("appVersionName"),
        seen=not get(UNSEEN),
        filters_known=bool(get("filtersKnown")),
        filter_beliefs=tuple(
            FilterBelief(f["filterId"], FilterSource(f["source"]), f["at"])
            for f in get("filterFacts") or ()
            if f["matched"]
        ),
        installs=tuple(install_record(i) for i in get("installs") or ()),
    )


def push_state(doc: Document) -> Walked:
    """What ``otao.domain.push.deliveries`` decides by and the push sends to: the versions,
    consents, filters and app version name; none of the history (last report, install
    records, where each filter belief came from), which only polls, reports and explanations
    read. A push walks every endpoint: the full state was 18% of its time."""
    get = doc.get
    failed = get("failedVersions")
    return Walked(
        doc["endpointId"],
        get("currentVersion"),
        frozenset(failed) if failed else _NONE,
        _consents(doc),
        _filters(doc),
        get("appVersionName"),
    )


# Install records kept per endpoint (the newest versions it reported on): enough for every
# rollout still judged, bounded so the document stays small.
MAX_INSTALLS = 8


def install_record(doc: Document) -> InstallRecord:
    return InstallRecord(
        version=doc["version"],
        succeeded=bool(doc["succeeded"]),
        reported_at=doc["reportedAt"],
        previous_version=doc.get("previousVersion"),
        poll_config_id=doc.get("pollConfigId"),
        poll_at=doc.get("pollAt"),
    )


def record_install(doc: Document, report: AppliedReport) -> None:
    """The report's install record: the version the endpoint ran before (its current one,
    unless it already names this version), the report, and no settling poll yet."""
    version = report.config_id
    installs = [i for i in doc.get("installs") or [] if i["version"] != version]
    earlier = next((i for i in doc.get("installs") or [] if i["version"] == version), None)
    current = doc.get("currentVersion")
    previous = current if current and current != version else None
    if previous is None and earlier is not None:
        previous = earlier.get("previousVersion")
    installs.append(
        {
            "version": version,
            "succeeded": report.succeeded,
            "reportedAt": report.reported_at,
            "previousVersion": previous,
            "pollConfigId": None,
            "pollAt": None,
        }
    )
    doc["installs"] = installs[-MAX_INSTALLS:]


def settle_installs(doc: Document, config_id: str | None, now: datetime) -> bool:
    """A poll naming ``config_id``: the first such poll after a success report settles it.
    Naming the version it ran before is an A/B fallback: the version counts as failed (not
    offered again until an operator clears it) and the endpoint runs its old version."""
    if config_id is None:
        return False
    changed = False
    for install in doc.get("installs") or []:
        record = install_record(install)
        if not record.settles(config_id) or now < record.reported_at:
            continue
        install["pollConfigId"] = config_id
        install["pollAt"] = now
        changed = True
        if config_id == record.previous_version and config_id != record.version:
            add_value(doc, "failedVersions", record.version)
            remove_value(doc, "appliedVersions", record.version)
            doc["currentVersion"] = config_id
    return changed


def filter_fact(
    doc: Document, filter_id: str, matched: bool, source: FilterSource, at: datetime
) -> bool:
    """Record one membership fact (``filterFacts``: per filter, the latest word and its
    source) and keep ``filters``, the matched ids the members query reads, in step."""
    facts = [f for f in doc.get("filterFacts") or [] if f["filterId"] != filter_id]
    facts.append({"filterId": filter_id, "matched": matched, "source": source.value, "at": at})
    doc["filterFacts"] = facts
    return (add_value if matched else remove_value)(doc, "filters", filter_id)


def mark_seen(doc: Document) -> bool:
    """Mark the endpoint as seen; True when it was not before."""
    return doc.pop(UNSEEN, None) is not None


def mark_unseen_if_new(doc: Document) -> None:
    if "rev" not in doc:  # a new document: the endpoint itself has not been heard from
        doc[UNSEEN] = True


def add_value(doc: Document, field: str, value: str) -> bool:
    values: list[str] = doc.setdefault(field, [])
    if value in values:
        return False
    values.append(value)
    return True


def remove_value(doc: Document, field: str, value: str) -> bool:
    values: list[str] = doc.get(field) or []
    if value not in values:
        return False
    doc[field] = [v for v in values if v != value]
    return True
