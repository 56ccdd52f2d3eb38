"""otao.logs: text logs (``make run``) and JSON logs carry the structured fields."""

from __future__ import annotations

import json
import logging
import sys

from otao.logs import JsonFormatter, TextFormatter


def record(message: str, **fields: object) -> logging.LogRecord:
    logger = logging.getLogger("otao.services.push")
    return logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, message, (), None, extra=fields
    )


def test_a_text_line_shows_every_structured_field_after_the_message() -> None:
    line = TextFormatter().format(
        record("push job done", job="j-1", application="kettle", sent=250, seconds=1.234)
    )

    assert line.endswith(
        "INFO otao.services.push: push job done job=j-1 application=kettle sent=250 seconds=1.234"
    )


def test_a_text_value_with_spaces_or_quotes_is_quoted_and_an_empty_one_shows() -> None:
    line = TextFormatter().format(
        record(
            "audit",
            action="software.update",
            resource="software/1.1.0",
            changed="",
            reason='3/4 failed "bricked"',
            details={"rolloutStrategy": "general"},
        )
    )

    message = line.split(": ", 1)[1]
    assert message == (
        'audit action=software.update resource=software/1.1.0 changed="" '
        'reason="3/4 failed \\"bricked\\"" details="{\\"rolloutStrategy\\": \\"general\\"}"'
    )


def test_a_text_line_without_fields_is_just_the_message() -> None:
    assert TextFormatter().format(record("serving")).endswith("otao.services.push: serving")


def test_a_text_line_keeps_the_exception_after_the_fields() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logger = logging.getLogger("otao.test")
        failed = logger.makeRecord(
            "otao.test",
            logging.ERROR,
            __file__,
            1,
            "failed",
            (),
            sys.exc_info(),
            extra={"job": "j"},
        )
    lines = TextFormatter().format(failed).splitlines()

    assert lines[0].endswith("failed job=j")
    assert lines[-1] == "RuntimeError: boom"


def test_a_json_line_carries_the_same_fields() -> None:
    entry = json.loads(JsonFormatter().format(record("push job done", job="j-1", sent=3)))

    assert (entry["message"], entry["job"], entry["sent"]) == ("push job done", "j-1", 3)
