"""otao's settings (otao/settings.py)."""

from __future__ import annotations

import pytest

from otao.settings import SecuritySettings, Settings


def test_neither_the_client_secret_nor_the_database_password_is_ever_in_a_repr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTAO_CONFIG_FILE", raising=False)
    settings = Settings(
        security=SecuritySettings(enabled=True, client_secret="s3cr3t-value"),
        mongodb_uri="mongodb://otao:pa55word@db.example:27017",
    )
    assert settings.security.client_secret == "s3cr3t-value"
    shown = repr(settings) + str(settings) + repr(settings.security)
    assert "s3cr3t-value" not in shown
    assert "pa55word" not in shown
    assert "security=" in repr(settings)  # the rest of the settings still shows
