"""Checks on REST answers through Envoy shared by the REST test modules, and the definition
bodies both doors send."""

from __future__ import annotations

from typing import Any

import httpx

INVALID_ARGUMENT, NOT_FOUND = 3, 5


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def error(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["message"]
    return body


def violated_fields(response: httpx.Response) -> set[str]:
    body = error(response, 400, INVALID_ARGUMENT)
    return {
        violation["field"]
        for detail in body["details"]
        if detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        for violation in detail["fieldViolations"]
    }


def definition(
    version: str = "1.1.0",
    upgradable_from: list[str] | None = None,
    specification: Any = None,
    strategy: str | None = "general",
    **extra: Any,
) -> dict[str, Any]:
    """A valid definition as JSON (the proto's JSON mapping), with overrides."""
    body: dict[str, Any] = {
        "version": version,
        "upgradableFrom": ["1.0.0"] if upgradable_from is None else upgradable_from,
        "specification": (
            {"image": f"fw-{version}.bin"} if specification is None else specification
        ),
    }
    if strategy is not None:
        body["rolloutStrategy"] = strategy
    body.update(extra)
    return body


# A {"blob": ...} object one byte over the 256 KiB JSON limit.
OVER_256_KIB = {"blob": "x" * (256 * 1024 - len('{"blob":""}') + 1)}

# Every rule is tested once, in tests/domain/test_validation.py. These few, sent through each
# door (tests/rpc/test_software_rest.py, test_software_servicer.py), show that a violation
# survives the trip naming its field, and that nothing is stored: name -> (body, field).
DOOR_VIOLATIONS: dict[str, tuple[dict[str, Any], str]] = {
    "version with a leading zero": (definition(version="01.0.0", upgradable_from=[]), "version"),
    "version missing": (definition(version="", upgradable_from=[]), "version"),
    "upgradableFrom not SemVer": (
        definition(upgradable_from=["1.0.0", "1.0"]),
        "upgradableFrom[1]",
    ),
    "upgradableFrom duplicated": (
        definition(upgradable_from=["1.0.0", "1.0.0"]),
        "upgradableFrom[1]",
    ),
    "rolloutDate not UTC": (
        definition(
            strategy="targeted",
            filters=[{"filterId": "lab", "rolloutDate": "2030-01-02T03:04:05"}],
        ),
        "filters[0].rolloutDate",
    ),
    "rolloutDate with an offset": (
        definition(
            strategy="targeted",
            filters=[
                {"filterId": "lab"},
                {"filterId": "beta", "rolloutDate": "2030-01-01T00:00:00+02:00"},
            ],
        ),
        "filters[1].rolloutDate",
    ),
    "specification over 256 KiB": (definition(specification=OVER_256_KIB), "specification"),
    "metadata over 256 KiB": (definition(metadata=OVER_256_KIB), "metadata"),
    "rolloutStrategy missing": (definition(strategy=None), "rolloutStrategy"),
    # JSON tells an empty list from an absent field; the domain sees both as no filters.
    "targeted with an empty filter list": (definition(strategy="targeted", filters=[]), "filters"),
}
