"""Validation of what operators submit: every rule, with the exact JSON path it reports."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otao.domain import validation
from otao.domain.errors import InvalidArgument
from otao.domain.models import (
    JsonValue,
    RolloutFilter,
    RolloutPolicy,
    RolloutStrategy,
    canonical_json,
)
from otao.domain.validation import MAX_JSON_BYTES, SoftwareInput


def submission(**overrides: Any) -> SoftwareInput:
    """A valid general definition 2.0.0 upgradable from 1.0.0, with ``overrides`` applied."""
    fields: dict[str, Any] = {
        "version": "2.0.0",
        "upgradable_from": ["1.0.0"],
        "specification": {"url": "https://example.com/fw-2.0.0.bin", "sha256": "ab12"},
        "has_specification": True,
        "rollout_strategy": "general",
    }
    fields.update(overrides)
    return SoftwareInput(**fields)


def targeted(*filters: tuple[str, str], **overrides: Any) -> SoftwareInput:
    return submission(rollout_strategy="targeted", filters=list(filters), **overrides)


def violation_fields(submitted: SoftwareInput) -> list[str]:
    with pytest.raises(InvalidArgument) as raised:
        validation.software(submitted)
    return [v.field for v in raised.value.violations]


def rejected_field(call: Any, *args: Any) -> str:
    with pytest.raises(InvalidArgument) as raised:
        call(*args)
    [violation] = raised.value.violations
    return violation.field


# --- every invalid definition, once ---------------------------------------------------------
# The doors (tests/rpc/test_software_rest.py, test_software_servicer.py) only prove, with a few
# of these, that a violation survives the trip to the caller with its field.

OVER_256_KIB = {"blob": "x" * MAX_JSON_BYTES}


def _filters(*filters: tuple[str, str]) -> dict[str, Any]:
    """Overrides for a targeted definition with these (filterId, rolloutDate) filters."""
    return {"rollout_strategy": "targeted", "filters": list(filters)}


INVALID_DEFINITIONS: dict[str, tuple[dict[str, Any], str]] = {
    "version with a leading zero": ({"version": "01.0.0", "upgradable_from": []}, "version"),
    "version with an empty pre-release": ({"version": "1.0.0-", "upgradable_from": []}, "version"),
    "version missing": ({"version": "", "upgradable_from": []}, "version"),
    "upgradableFrom not SemVer (v prefix)": ({"upgradable_from": ["v1.0.0"]}, "upgradableFrom[0]"),
    "upgradableFrom not SemVer (two parts)": (
        {"upgradable_from": ["1.0.0", "1.0"]},
        "upgradableFrom[1]",
    ),
    "upgradableFrom equal to version": ({"upgradable_from": ["2.0.0"]}, "upgradableFrom[0]"),
    "upgradableFrom higher than version": (
        {"upgradable_from": ["1.0.0", "2.1.0"]},
        "upgradableFrom[1]",
    ),
    "upgradableFrom pre-release above version": (
        {"version": "1.0.0-rc.1", "upgradable_from": ["1.0.0-rc.2"]},
        "upgradableFrom[0]",
    ),
    "upgradableFrom duplicated": (
        {"upgradable_from": ["1.0.0", "0.9.0", "1.0.0"]},
        "upgradableFrom[2]",
    ),
    "filters with general": ({"filters": [("lab", "")]}, "filters"),
    "filters with suspended": (
        {"rollout_strategy": "suspended", "filters": [("lab", "")]},
        "filters",
    ),
    "targeted without filters": (_filters(), "filters"),
    "targeted with an empty filter list": ({**_filters(), "filters": []}, "filters"),
    "rolloutDate not ISO 8601": (_filters(("lab", "01/02/2030")), "filters[0].rolloutDate"),
    "rolloutDate not UTC": (_filters(("lab", "2030-01-02T03:04:05")), "filters[0].rolloutDate"),
    "rolloutDate without time": (_filters(("lab", "2030-01-01")), "filters[0].rolloutDate"),
    "rolloutDate with an offset": (
        _filters(("lab", ""), ("beta", "2030-01-01T00:00:00+02:00")),
        "filters[1].rolloutDate",
    ),
    "rolloutDate month 13": (_filters(("lab", "2030-13-01T00:00:00Z")), "filters[0].rolloutDate"),
    "filterId with a slash": (_filters(("a/b", "")), "filters[0].filterId"),
    "filterId with a space": (_filters(("beta testers", "")), "filters[0].filterId"),
    "filterId empty": (_filters(("", "")), "filters[0].filterId"),
    "filterId too long": (_filters(("f" * 129, "")), "filters[0].filterId"),
    "filterId duplicated": (_filters(("lab", ""), ("lab", "")), "filters[1].filterId"),
    "specification over 256 KiB": ({"specification": OVER_256_KIB}, "specification"),
    "metadata over 256 KiB": ({"metadata": OVER_256_KIB, "has_metadata": True}, "metadata"),
    "rolloutStrategy missing": ({"rollout_strategy": ""}, "rolloutStrategy"),
    "rolloutStrategy unknown": ({"rollout_strategy": "gradual"}, "rolloutStrategy"),
    "rolloutStrategy in capitals": ({"rollout_strategy": "GENERAL"}, "rolloutStrategy"),
}


@pytest.mark.parametrize(
    ("overrides", "field"), INVALID_DEFINITIONS.values(), ids=INVALID_DEFINITIONS.keys()
)
def test_an_invalid_definition_names_exactly_the_bad_field(
    overrides: dict[str, Any], field: str
) -> None:
    assert violation_fields(submission(**overrides)) == [field]


# --- a whole definition -----------------------------------------------------------------------


def test_a_valid_definition_becomes_a_spec_with_canonical_json() -> None:
    spec = validation.software(
        submission(metadata={"notes": "Grüße", "owner": "ops"}, has_metadata=True)
    )
    assert spec.version == "2.0.0"
    assert spec.upgradable_from == ("1.0.0",)
    assert spec.specification_json == '{"url":"https://example.com/fw-2.0.0.bin","sha256":"ab12"}'
    assert spec.metadata_json == '{"notes":"Grüße","owner":"ops"}'
    assert spec.rollout_strategy is RolloutStrategy.GENERAL
    assert spec.filters == ()
    assert spec.rollout_policy is None


def test_absent_metadata_is_stored_as_an_empty_object() -> None:
    assert validation.software(submission()).metadata_json == "{}"


def test_null_specification_is_a_json_value() -> None:
    spec = validation.software(submission(specification=None, has_specification=True))
    assert spec.specification_json == "null"


def test_absent_specification_is_required() -> None:
    fields = violation_fields(submission(specification=None, has_specification=False))
    assert fields == ["specification"]


def test_specification_keeps_keys_with_dollar_and_dot_and_their_order() -> None:
    value = {"z": 1, "$set": {"a.b": [1, 2.5, None, True]}, "a": "x"}
    spec = validation.software(submission(specification=value))
    assert spec.specification_json == '{"z":1,"$set":{"a.b":[1,2.5,null,true]},"a":"x"}'
    assert json.loads(spec.specification_json) == value


def test_a_definition_without_upgradable_from_is_valid() -> None:
    assert validation.software(submission(upgradable_from=[])).upgradable_from == ()


def test_all_violations_are_reported_at_once() -> None:
    fields = violation_fields(
        SoftwareInput(
            version="1.0",
            upgradable_from=["x", "0.9.0", "0.9.0"],
            specification=None,
            has_specification=False,
            metadata={"bad": math.nan},
            has_metadata=True,
            rollout_strategy="sometimes",
            filters=[],
            rollout_policy=(2.0, 0),
        )
    )
    assert sorted(fields) == sorted(
        [
            "version",
            "upgradableFrom[0]",
            "upgradableFrom[2]",
            "rolloutStrategy",
            "rolloutPolicy.maxFailureRatio",
            "rolloutPolicy.minReports",
            "specification",
            "metadata",
        ]
    )


def test_the_error_carries_a_generic_message_and_the_violations() -> None:
    with pytest.raises(InvalidArgument) as raised:
        validation.software(submission(version=""))
    assert raised.value.message == "the software definition is invalid"
    assert raised.value.violations[0].field == "version"
    assert raised.value.violations[0].description == "required"


# --- version --------------------------------------------------------------------------------

INVALID_VERSIONS = [
    "",
    "01.0.0",
    "1.01.0",
    "1.0.01",
    "1.0.0-",
    "1.0.0+",
    "1.0",
    "1",
    "v1.0.0",
    "V1.0.0",
    " 1.0.0",
    "1.0.0 ",
    "1.0.0\n",
    "1.0.0-01",
    "1.0.0-a..b",
    "1.0.0+a..b",
    "1.0.0-rc_1",
    "-1.0.0",
    "1.0.0.0",
    "\u0661.0.0",  # ARABIC-INDIC DIGIT ONE
    "latest",
]

VALID_VERSIONS = [
    "0.0.0",
    "1.0.0",
    "1.0.0+build.1",
    "1.0.0-rc.1",
    "1.0.0-alpha+001",
    "1.0.0-0a",
    "1.0.0+01",
    "1.0.0-x-y-z.--",
    "10.20.30",
    "1.0.0-alpha.beta.1+exp.sha.5114f85",
]


@pytest.mark.parametrize("value", INVALID_VERSIONS)
def test_an_invalid_version_is_reported_at_version(value: str) -> None:
    assert violation_fields(submission(version=value, upgradable_from=[])) == ["version"]


@pytest.mark.parametrize("value", VALID_VERSIONS)
def test_a_valid_semver_is_accepted_as_version(value: str) -> None:
    assert validation.software(submission(version=value, upgradable_from=[])).version == value


def test_a_version_of_128_characters_is_accepted_and_129_rejected() -> None:
    longest = "1.0.0-" + "a" * 122
    assert len(longest) == validation.MAX_VERSION_LENGTH
    assert validation.software(submission(version=longest, upgradable_from=[])).version == longest
    assert violation_fields(submission(version=longest + "a", upgradable_from=[])) == ["version"]


@pytest.mark.parametrize("value", INVALID_VERSIONS)
def test_the_version_validator_rejects_what_software_rejects(value: str) -> None:
    assert rejected_field(validation.version, value) == "version"


def test_the_version_validator_reports_the_given_field_and_returns_the_value() -> None:
    assert validation.version("1.2.3+b") == "1.2.3+b"
    assert rejected_field(validation.version, "1.2", "currentVersion") == "currentVersion"


def test_an_empty_optional_version_is_none() -> None:
    assert validation.optional_version("", "currentVersion") is None
    assert validation.optional_version("1.0.0", "currentVersion") == "1.0.0"
    assert rejected_field(validation.optional_version, "01.0.0", "target") == "target"


# --- upgradableFrom -------------------------------------------------------------------------


def test_an_invalid_upgradable_from_is_reported_at_its_index() -> None:
    assert violation_fields(submission(upgradable_from=["1.0.0", "1.1"])) == ["upgradableFrom[1]"]


def test_upgradable_from_equal_to_version_is_rejected() -> None:
    assert violation_fields(submission(upgradable_from=["1.0.0", "2.0.0"])) == ["upgradableFrom[1]"]


def test_upgradable_from_higher_than_version_is_rejected() -> None:
    fields = violation_fields(submission(upgradable_from=["2.0.1", "1.0.0", "3.0.0"]))
    assert fields == ["upgradableFrom[0]", "upgradableFrom[2]"]


def test_upgradable_from_differing_only_in_build_metadata_counts_as_equal() -> None:
    fields = violation_fields(submission(version="2.0.0+b2", upgradable_from=["2.0.0+b1"]))
    assert fields == ["upgradableFrom[0]"]


def test_a_prerelease_of_the_same_version_may_upgrade_to_it() -> None:
    spec = validation.software(submission(upgradable_from=["2.0.0-rc.1", "1.9.9"]))
    assert spec.upgradable_from == ("2.0.0-rc.1", "1.9.9")


def test_a_release_may_not_upgrade_to_its_own_prerelease() -> None:
    fields = violation_fields(submission(version="2.0.0-rc.1", upgradable_from=["2.0.0"]))
    assert fields == ["upgradableFrom[0]"]


def test_duplicate_upgradable_from_is_rejected_at_the_repeat() -> None:
    fields = violation_fields(submission(upgradable_from=["1.0.0", "1.1.0", "1.0.0"]))
    assert fields == ["upgradableFrom[2]"]


def test_upgradable_from_is_not_compared_with_an_invalid_version() -> None:
    assert violation_fields(submission(version="2.0", upgradable_from=["3.0.0"])) == ["version"]


def test_more_than_1000_upgradable_from_versions_are_rejected() -> None:
    sources = [f"0.{i}.0" for i in range(validation.MAX_UPGRADABLE_FROM + 1)]
    assert violation_fields(submission(upgradable_from=sources)) == ["upgradableFrom"]
    assert len(validation.software(submission(upgradable_from=sources[:-1])).upgradable_from) == (
        validation.MAX_UPGRADABLE_FROM
    )


# --- rolloutStrategy and filters ------------------------------------------------------------


@pytest.mark.parametrize("value", ["", "GENERAL", "everyone", "paused"])
def test_an_unknown_rollout_strategy_is_reported(value: str) -> None:
    assert violation_fields(submission(rollout_strategy=value)) == ["rolloutStrategy"]


@pytest.mark.parametrize("value", ["suspended", "targeted", "general"])
def test_each_rollout_strategy_is_accepted(value: str) -> None:
    filters = [("beta", "")] if value == "targeted" else []
    spec = validation.software(submission(rollout_strategy=value, filters=filters))
    assert spec.rollout_strategy == RolloutStrategy(value)


def test_targeted_without_filters_is_rejected_at_filters() -> None:
    assert violation_fields(targeted()) == ["filters"]


@pytest.mark.parametrize("strategy", ["general", "suspended"])
def test_filters_are_only_allowed_with_targeted(strategy: str) -> None:
    fields = violation_fields(submission(rollout_strategy=strategy, filters=[("beta", "")]))
    assert fields == ["filters"]


def test_targeted_filters_are_kept_in_order_with_their_dates() -> None:
    spec = validation.software(
        targeted(("beta", "2024-05-01T12:30:00Z"), ("canary", ""), ("eu:west-1", ""))
    )
    assert spec.filters == (
        RolloutFilter("beta", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        RolloutFilter("canary", None),
        RolloutFilter("eu:west-1", None),
    )


@pytest.mark.parametrize("filter_id", ["", "-beta", "be ta", "beta/1", "beta\n", "b" * 129])
def test_an_invalid_filter_id_is_reported_at_its_index(filter_id: str) -> None:
    assert violation_fields(targeted(("ok", ""), (filter_id, ""))) == ["filters[1].filterId"]


def test_a_filter_id_of_128_characters_is_accepted() -> None:
    assert validation.software(targeted(("b" * 128, ""))).filters[0].filter_id == "b" * 128


def test_a_duplicate_filter_is_rejected_at_the_repeat() -> None:
    fields = violation_fields(targeted(("beta", ""), ("canary", ""), ("beta", "")))
    assert fields == ["filters[2].filterId"]


def test_more_than_100_filters_are_rejected() -> None:
    filters = [(f"f{i}", "") for i in range(validation.MAX_FILTERS + 1)]
    assert violation_fields(targeted(*filters)) == ["filters"]
    assert len(validation.software(targeted(*filters[:-1])).filters) == validation.MAX_FILTERS


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-05-01T12:30:00Z", datetime(2024, 5, 1, 12, 30, tzinfo=UTC)),
        ("2024-05-01T12:30:00.5Z", datetime(2024, 5, 1, 12, 30, 0, 500000, tzinfo=UTC)),
        ("2024-05-01T12:30:00.123456789Z", datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_a_utc_rollout_date_is_parsed(value: str, expected: datetime) -> None:
    spec = validation.software(targeted(("beta", value)))
    assert spec.filters[0].rollout_date == expected
    assert spec.filters[0].rollout_date.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "2024-05-01T12:30:00+00:00",
        "2024-05-01T12:30:00+02:00",
        "2024-05-01T12:30:00-05:00",
        "2024-05-01T12:30:00",
        "2024-05-01",
        "2024-05-01 12:30:00Z",
        "2024-05-01T12:30Z",
        "2024-05-01T12:30:00.Z",
        "2024-05-01T12:30:00.1234567890Z",
        "2024-02-30T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-05-01T24:00:00Z",
        "2024-05-01T12:30:60Z",
        "2024-05-01T12:30:00Z\n",
        " 2024-05-01T12:30:00Z",
        "\uff12\uff10\uff12\uff14-05-01T12:30:00Z",  # fullwidth digits
        "\u0662\u0660\u0662\u0664-05-01T12:30:00Z",  # Arabic-Indic digits
        "1714566600",
    ],
)
def test_a_rollout_date_not_in_utc_z_form_is_rejected(value: str) -> None:
    fields = violation_fields(targeted(("ok", ""), ("beta", value)))
    assert fields == ["filters[1].rolloutDate"]


@pytest.mark.parametrize(
    "value",
    ["2024-05-01T12:30:00+00:00", "2024-05-01T12:30:00\uff3a", "\u0662024-05-01T12:30:00Z"],
)
def test_parse_utc_date_raises_value_error_on_other_forms(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the documented contract is ValueError
        validation.parse_utc_date(value)


def test_format_utc_date_writes_utc_z_and_parses_back() -> None:
    moment = datetime(2024, 5, 1, 14, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    text = validation.format_utc_date(moment)
    assert text == "2024-05-01T12:30:05Z"
    assert validation.parse_utc_date(text) == moment


def test_filter_and_date_violations_of_several_filters_are_all_reported() -> None:
    fields = violation_fields(
        targeted(("beta", "tomorrow"), ("", "2024-01-01T00:00:00Z"), ("beta", "2024-01-01"))
    )
    assert fields == [
        "filters[0].rolloutDate",
        "filters[1].filterId",
        "filters[2].filterId",
        "filters[2].rolloutDate",
    ]


# --- rolloutPolicy --------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.25, 1.0])
def test_a_failure_ratio_between_0_and_1_is_accepted(ratio: float) -> None:
    spec = validation.software(submission(rollout_policy=(ratio, 1)))
    assert spec.rollout_policy == RolloutPolicy(ratio, 1)


@pytest.mark.parametrize("ratio", [-0.01, 1.01, math.nan, math.inf, -math.inf])
def test_a_failure_ratio_outside_0_to_1_is_rejected(ratio: float) -> None:
    fields = violation_fields(submission(rollout_policy=(ratio, 10)))
    assert fields == ["rolloutPolicy.maxFailureRatio"]


@pytest.mark.parametrize("min_reports", [0, -1])
def test_min_reports_below_1_is_rejected(min_reports: int) -> None:
    fields = violation_fields(submission(rollout_policy=(0.1, min_reports)))
    assert fields == ["rolloutPolicy.minReports"]


# --- specification and metadata -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, [1, math.nan], {"a": {"b": [math.inf]}}],
)
@pytest.mark.parametrize("where", ["specification", "metadata"])
def test_non_finite_numbers_are_rejected(value: JsonValue, where: str) -> None:
    fields = violation_fields(submission(**{where: value, f"has_{where}": True}))
    assert fields == [where]


@pytest.mark.parametrize("where", ["specification", "metadata"])
def test_a_lone_surrogate_is_an_invalid_argument_not_a_crash(where: str) -> None:
    fields = violation_fields(submission(**{where: {"name": "\ud800"}, f"has_{where}": True}))
    assert fields == [where]


@pytest.mark.parametrize("where", ["specification", "metadata"])
def test_json_of_exactly_256_kib_is_accepted(where: str) -> None:
    value = "x" * (MAX_JSON_BYTES - 2)  # the quotes make it exactly 256 KiB
    spec = validation.software(submission(**{where: value, f"has_{where}": True}))
    text = spec.specification_json if where == "specification" else spec.metadata_json
    assert len(text.encode("utf-8")) == MAX_JSON_BYTES


@pytest.mark.parametrize("where", ["specification", "metadata"])
def test_json_one_byte_over_256_kib_is_rejected(where: str) -> None:
    value = "x" * (MAX_JSON_BYTES - 1)
    assert violation_fields(submission(**{where: value, f"has_{where}": True})) == [where]


def test_the_json_limit_counts_utf8_bytes_not_characters() -> None:
    fits = "é" * ((MAX_JSON_BYTES - 2) // 2)
    validation.software(submission(specification=fits))
    too_big = fits + "é"
    assert len(canonical_json(too_big)) < MAX_JSON_BYTES
    assert violation_fields(submission(specification=too_big)) == ["specification"]


# --- names and ids --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "my-app", "App_1.2", "0app", "a" * 128])
def test_a_valid_application_name_is_returned(name: str) -> None:
    assert validation.application_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "-app", ".app", "_app", "my app", "app:1", "app/x", "app\n", "é", "a" * 129]
)
def test_an_invalid_application_name_is_rejected(name: str) -> None:
    assert rejected_field(validation.application_name, name) == "applicationName"


def test_the_application_name_validator_reports_the_given_field() -> None:
    assert rejected_field(validation.application_name, "", "parent") == "parent"


@pytest.mark.parametrize("value", ["e", "ep-1", "urn:dev:42", "a.b_c", "e" * 256])
def test_a_valid_endpoint_id_is_returned(value: str) -> None:
    assert validation.endpoint_id(value) == value


@pytest.mark.parametrize("value", ["", ":ep", "ep 1", "ep/1", "ep-1\n", "e" * 257])
def test_an_invalid_endpoint_id_is_rejected(value: str) -> None:
    assert rejected_field(validation.endpoint_id, value) == "endpointId"


def test_the_endpoint_id_validator_reports_the_given_field() -> None:
    assert rejected_field(validation.endpoint_id, "", "endpoint") == "endpoint"


# --- canonical JSON -------------------------------------------------------------------------

json_keys = st.one_of(st.text(), st.sampled_from(["$", ".", "$set", "a.b", "$a.b", ""]))
json_values: st.SearchStrategy[JsonValue] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(json_keys, children),
    max_leaves=30,
)


@given(json_values)
def test_any_json_value_survives_canonical_json_unchanged(value: JsonValue) -> None:
    text = canonical_json(value)
    assert json.loads(text) == value
    assert canonical_json(json.loads(text)) == text


@given(json_values)
def test_any_json_value_is_accepted_as_specification_and_stored_canonically(
    value: JsonValue,
) -> None:
    spec = validation.software(submission(specification=value))
    assert spec.specification_json == canonical_json(value)
    assert json.loads(spec.specification_json) == value
