"""Settings come from the environment, typed, with a clear error naming a bad value."""

from __future__ import annotations

import pytest

from service.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_recycle) == (20, 0, 3600)
    assert settings.db_pool_pre_ping is True
    assert settings.db_isolation_level == "READ COMMITTED"


def test_environment_strings_are_converted() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/d",
            "DB_POOL_SIZE": "7",
            "DB_POOL_TIMEOUT": "0.25",
            "DB_POOL_PRE_PING": "false",
            "DB_ISOLATION_LEVEL": "SERIALIZABLE",
            "UNRELATED": "ignored",
        }
    )
    assert settings.db_pool_size == 7
    assert settings.db_pool_timeout == 0.25
    assert settings.db_pool_pre_ping is False
    assert settings.db_isolation_level == "SERIALIZABLE"


@pytest.mark.parametrize(
    ("name", "value"),
    [("DB_POOL_SIZE", "many"), ("DB_POOL_SIZE", "0"), ("DB_ISOLATION_LEVEL", "READ UNCOMMITTED"), ("DEBUG", "2")],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        Settings.from_env({name: value})


def test_env_names_are_the_upper_case_fields() -> None:
    assert "DB_POOL_SIZE" in Settings.env_names()
    assert "DATABASE_URL" in Settings.env_names()
