"""Bad input, fuzzed with hypothesis, on every REST route through a real Envoy.

Path parameters (random text and bytes, invalid UTF-8, SemVer edge cases), query parameters
(known and unknown names, random values) and bodies (random JSON, wrong types, huge strings,
deep nesting, invalid UTF-8, random bytes). Whatever comes in, the answer is 2xx or 4xx with a
JSON body, never a 5xx, and a good request right after succeeds.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otao.domain.applications import ApplicationConfig

pytestmark = pytest.mark.timeout(180)

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

APPLICATION = "<app>"  # replaced by the test's application name
APPS = "/api/v1/applications"

# (method, path template, request body field of the route or None, query parameter names)
ROUTES: list[tuple[str, str, str | None, tuple[str, ...]]] = [
    ("GET", "{app}/software", None, ()),
    ("POST", "{app}/software", "software", ()),
    ("GET", "{app}/software/{version}", None, ()),
    ("PUT", "{app}/software/{version}", "software", ("etag",)),
    ("PATCH", "{app}/software/{version}", "software", ("etag", "updateMask")),
    ("DELETE", "{app}/software/{version}", None, ("etag",)),
    ("GET", "{app}/settings", None, ()),
    ("PUT", "{app}/settings", "settings", ()),
    ("GET", "{app}/endpoints/{endpoint}/software", None, ()),
    ("GET", "{app}/endpoints", None, ("version", "pageSize", "pageToken")),
    ("GET", "{app}/software-distribution", None, ()),
    ("DELETE", "{app}/endpoints/{endpoint}/failures/{version}", None, ()),
    ("POST", "{app}/endpoints/{endpoint}/consents", "consent", ()),
    ("GET", "{app}/endpoints/{endpoint}/consents", None, ()),
    ("DELETE", "{app}/endpoints/{endpoint}/consents/{version}", None, ()),
    ("GET", "{app}/endpoints/{endpoint}/software:resolve", None, ("currentVersion",)),
    ("GET", "{app}/endpoints/{endpoint}/software:explain", None, ("currentVersion",)),
    ("GET", "{app}/upgrade-path", None, ("from", "to")),
    ("GET", "{app}/upgrade-graph", None, ()),
    ("GET", "{app}/software/{version}/rollout", None, ()),
    ("GET", "{app}/audit", None, ("pageSize", "pageToken")),
]

SEMVER_EDGES = [
    "01.0.0",
    "1.01.0",
    "1.0.01",
    "1.0.0-",
    "1.0.0+",
    "1.0.0-+",
    "1.0.0-01",
    "1.0.0-alpha..1",
    "1.0",
    "1",
    "v1.0.0",
    "=1.0.0",
    " 1.0.0",
    "1.0.0 ",
    "1.0.0\n",
    "-1.0.0",
    "1.0.0.0",
    "1.0.0-rc.1+build.5",
    "1.0.0+build.1",
    "1.0.0+build.1.2.3",
    "1.0.0+build..1",
    "1.0.0+ü",
    "1.0.0-alpha",
    "1.0.0-0.3.7",
    "1.0.0-x.7.z.92",
    "99999999999999999999.0.0",
    "1.0.0-" + "a" * 200,
    "0.0.0",
    "1.2.3-ß",
    "1.2.3-\u0000",
    "",
]

# Text of every kind, plus bytes that are not UTF-8 (sent percent-encoded).
RAW = st.one_of(
    st.text(max_size=40),
    st.binary(max_size=24),
    st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"a\x00b"]),
    st.sampled_from(SEMVER_EDGES),
)

SAFE_INTEGER = 2**53
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=16),
    st.sampled_from(SEMVER_EDGES),
)
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
SOFTWARE_FIELDS = [
    "version",
    "upgradableFrom",
    "specification",
    "metadata",
    "rolloutStrategy",
    "filters",
    "rolloutPolicy",
    "etag",
    "createdAt",
    "updatedAt",
    "halt",
]


def _encode(value: str | bytes) -> str:
    raw = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else value
    return quote(raw, safe="")


@st.composite
def path_value(draw: st.DrawFn, good: str) -> str:
    """Mostly something plausible, so requests get past routing to otao's validation."""
    choice = draw(st.integers(0, 3))
    if choice == 0:
        return good
    return _encode(draw(RAW))


@st.composite
def software_body(draw: st.DrawFn) -> Any:
    """A definition-shaped object whose fields are right, wrong-typed or absurd."""
    body: dict[str, Any] = {}
    for field in draw(st.lists(st.sampled_from(SOFTWARE_FIELDS), max_size=7, unique=True)):
        body[field] = draw(
            st.one_of(
                JSON,
                st.sampled_from(SEMVER_EDGES),
                st.lists(st.sampled_from(SEMVER_EDGES), max_size=3),
                st.just({"filterId": "f", "rolloutDate": "2030-13-45T99:99:99Z"}),
                st.just([{"filterId": "", "rolloutDate": "yesterday"}]),
                st.just({"maxFailureRatio": 1e308, "minReports": 2**40}),
                st.just(["general", "targeted"]),
            )
        )
    return body


def _deep(depth: int, opener: str) -> str:
    if opener == "[":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@st.composite
def body_bytes(draw: st.DrawFn) -> bytes | None:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return None
    if kind == 1:
        return json.dumps(draw(JSON)).encode()
    if kind == 2:
        return json.dumps(draw(software_body())).encode()
    if kind == 3:  # deep nesting, in a field or as the whole body
        depth = draw(st.integers(1, 160))
        nested = _deep(depth, draw(st.sampled_from(["[", "{"])))
        field = draw(st.sampled_from(["specification", "metadata", "upgradableFrom", None]))
        if field is None:
            return nested.encode()
        text = '{"version":"2.0.0","rolloutStrategy":"general","' + field + '":' + nested + "}"
        return text.encode()
    if kind == 4:  # huge strings, below Envoy's 1 MiB body limit
        size = draw(st.sampled_from([1000, 70_000, 300_000, 900_000]))
        field = draw(st.sampled_from(["version", "specification", "metadata", "upgradableFrom"]))
        value: Any = "x" * size if field != "upgradableFrom" else ["1.0.0"] * (size // 10)
        return json.dumps({"version": "2.0.0", "rolloutStrategy": "general", field: value}).encode()
    if kind == 5:  # a valid-looking body with bytes that are not UTF-8 spliced in
        body = json.dumps(draw(software_body()) or {"version": "2.0.0"}).encode()
        cut = draw(st.integers(0, len(body)))
        junk = draw(st.sampled_from([b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80\x80"]))
        return body[:cut] + junk + body[cut:]
    if kind == 6:  # JSON-ish text: escapes, surrogates, numbers JSON allows but doubles do not
        return draw(
            st.sampled_from(
                [
                    b'{"version":"\\ud800"}',
                    b'{"specification":1e999,"version":"2.0.0","rolloutStrategy":"general"}',
                    b'{"rolloutPolicy":{"maxFailureRatio":-0.0,"minReports":99999999999}}',
                    b'{"version":"2.0.0","version":"3.0.0"}',
                    b'{"consentRequired":"yes"}',
                    b'{"allVersions":1}',
                    b"[]",
                    b"null",
                    b'"a string"',
                    b"{",
                    b"",
                ]
            )
        )
    return draw(st.binary(max_size=200))


@st.composite
def query_string(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    pool = [*names, "unknown", "etag", "updateMask", "pageSize", "from"]
    pairs = []
    for name in draw(st.lists(st.sampled_from(pool), max_size=3)):
        value = draw(
            st.one_of(
                st.sampled_from(["0", "-1", "2147483648", "1e3", "abc", "rolloutStrategy,x.y"]),
                RAW.map(_encode),
            )
        )
        pairs.append(f"{name}={value}")
    return "&".join(pairs)


@st.composite
def fuzzed_request(draw: st.DrawFn) -> tuple[str, str, bytes | None]:
    method, template, body_field, query_names = draw(st.sampled_from(ROUTES))
    path = template.format(
        app=draw(path_value(APPLICATION)),
        version=draw(path_value("2.0.0")),
        endpoint=draw(path_value("ep-1")),
    )
    query = draw(query_string(query_names))
    url = f"{APPS}/{path}" + (f"?{query}" if query else "")
    body = draw(body_bytes()) if body_field is not None or draw(st.booleans()) else None
    return method, url, body


async def _good_request_succeeds(rest: httpx.AsyncClient, application: str) -> None:
    response = await rest.get(f"{APPS}/{application}/settings")
    assert response.status_code == 200, response.text


def _never_5xx(response: httpx.Response, what: object) -> None:
    assert 200 <= response.status_code < 500, (what, response.status_code, response.text[:300])
    assert response.headers.get("content-type", "").startswith("application/json"), (
        what,
        response.headers,
    )
    if response.status_code >= 400:
        error = response.json()
        assert isinstance(error.get("code"), int) and error["code"] != 0, (what, error)
        # Never exception text or a traceback on the wire.
        text = response.text
        assert "Traceback" not in text and "Exception" not in text and "<class" not in text, text


@FUZZ
@given(request=fuzzed_request())
async def test_every_rest_route_answers_bad_input_with_a_4xx(
    rest: httpx.AsyncClient, application: ApplicationConfig, request: tuple[str, str, bytes | None]
) -> None:
    method, url, body = request
    url = url.replace(_encode(APPLICATION), application.name).replace(APPLICATION, application.name)
    headers = {"content-type": "application/json"} if body is not None else {}
    response = await rest.request(method, url, content=body, headers=headers)
    _never_5xx(response, (method, url, body[:200] if body else body))
    await _good_request_succeeds(rest, application.name)


@pytest.mark.parametrize("version", SEMVER_EDGES)
async def test_semver_edge_cases_are_a_400_or_work_end_to_end(
    rest: httpx.AsyncClient, application: ApplicationConfig, version: str
) -> None:
    """Strict SemVer 2.0: invalid strings are a 400 naming the field; valid ones work."""
    path = f"{APPS}/{application.name}/software"
    created = await rest.post(
        path,
        json={
            "version": version,
            "upgradableFrom": [],
            "specification": {"v": version},
            "rolloutStrategy": "general",
        },
    )
    _never_5xx(created, version)
    fetched = await rest.get(f"{path}/{_encode(version)}")
    _never_5xx(fetched, version)
    resolved = await rest.get(
        f"{APPS}/{application.name}/endpoints/ep-1/software:resolve?currentVersion={_encode(version)}"
    )
    _never_5xx(resolved, version)
    if created.status_code == 200:
        assert created.json()["version"] == version
        assert fetched.status_code == 200 and fetched.json() == created.json()
    else:
        assert created.status_code == 400, created.text
        details = created.json()["details"]
        fields = {v["field"] for d in details for v in d.get("fieldViolations", [])}
        assert "version" in fields, created.text
        if version:  # an empty path segment is another route (the list)
            assert fetched.status_code == 400, fetched.text
    await _good_request_succeeds(rest, application.name)


async def test_a_good_definition_is_accepted_after_the_fuzzing(
    rest: httpx.AsyncClient, application: ApplicationConfig
) -> None:
    created = await rest.post(
        f"{APPS}/{application.name}/software",
        json={
            "version": "9.0.0",
            "upgradableFrom": ["1.0.0"],
            "specification": {"image": "fw.bin"},
            "rolloutStrategy": "general",
        },
    )
    assert created.status_code == 200, created.text
