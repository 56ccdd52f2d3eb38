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
