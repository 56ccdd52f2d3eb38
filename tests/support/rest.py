"""Checks on REST answers through Envoy shared by the REST test modules."""

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
