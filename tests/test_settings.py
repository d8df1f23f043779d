"""Settings come from the environment, typed, with a clear error naming a bad value."""

from __future__ import annotations

import pytest

from service.core.settings import Settings, SettingsError


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_recycle) == (20, 0, 3600)
    assert settings.db_pool_pre_ping is True


def test_environment_strings_are_converted() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://u@h/d",
            "DB_POOL_SIZE": "7",
            "DB_POOL_TIMEOUT": "0.25",
            "DB_POOL_PRE_PING": "false",
            "UNRELATED": "ignored",
        }
    )
    assert settings.db_pool_size == 7
    assert settings.db_pool_timeout == 0.25
    assert settings.db_pool_pre_ping is False


@pytest.mark.parametrize(
    ("name", "value"),
    [("DB_POOL_SIZE", "many"), ("DB_POOL_SIZE", "0"), ("LOG_FORMAT", "xml"), ("DEBUG", "2")],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.lower()):
        Settings.from_env({name: value})


def test_a_removed_setting_stops_the_start_and_says_what_replaced_it() -> None:
    # An operator who set SERIALIZABLE for everything must learn that it no longer applies, not lose it silently.
    with pytest.raises(SettingsError, match=r"DB_ISOLATION_LEVEL: each write declares its own isolation level"):
        Settings.from_env({"DB_ISOLATION_LEVEL": "SERIALIZABLE"})
    assert "DB_ISOLATION_LEVEL" not in Settings.env_names()


def test_env_names_are_the_upper_case_fields() -> None:
    assert "DB_POOL_SIZE" in Settings.env_names()
    assert "DATABASE_URL" in Settings.env_names()


GOOD = {"DATABASE_URL": "postgresql://db/devdir", "SECRET_KEY": "k" * 32}


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"SECRET_KEY": "k" * 32}, "DATABASE_URL"),
        ({**GOOD, "SECRET_KEY": ""}, "SECRET_KEY"),
        ({**GOOD, "SECRET_KEY": "k" * 31}, "SECRET_KEY"),
        ({**GOOD, "DEVDIR_ADMIN_EMAIL": "boss@x.io"}, "DEVDIR_ADMIN_EMAIL / DEVDIR_ADMIN_PASSWORD"),
        ({**GOOD, "DEVDIR_ADMIN_PASSWORD": "a long enough password"}, "DEVDIR_ADMIN_EMAIL / DEVDIR_ADMIN_PASSWORD"),
        ({**GOOD, "DEVDIR_ADMIN_EMAIL": "boss", "DEVDIR_ADMIN_PASSWORD": "a long enough password"}, "DEVDIR_ADMIN"),
        ({**GOOD, "DEVDIR_ADMIN_EMAIL": "boss@x.io", "DEVDIR_ADMIN_PASSWORD": "short"}, "DEVDIR_ADMIN"),
    ],
)
def test_check_names_what_the_app_cannot_start_without(environment: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environment).check()


def test_check_passes_a_complete_environment_and_gives_the_first_admin_in_nfc() -> None:
    Settings.from_env(GOOD).check()
    decomposed = "jose\u0301@x.io"
    settings = Settings.from_env({**GOOD, "DEVDIR_ADMIN_EMAIL": decomposed, "DEVDIR_ADMIN_PASSWORD": "p" * 12})
    settings.check()
    admin = settings.first_admin()
    assert admin is not None
    assert admin.email == "jos\u00e9@x.io"
    assert admin.password == "p" * 12


def test_replica_urls_are_trimmed_and_blank_entries_skipped() -> None:
    settings = Settings.from_env(
        {**GOOD, "DATABASE_REPLICA_URLS": " postgresql://u:p@standby-1:5433/devdir ,, postgres://standby-2/devdir, "}
    )
    settings.check()
    assert settings.replica_urls == ("postgresql://u:p@standby-1:5433/devdir", "postgres://standby-2/devdir")
    assert settings.db_replica_max_lag_ms == 1000
    assert Settings.from_env(GOOD).replica_urls == ()


@pytest.mark.parametrize(
    "urls",
    [
        "mysql://u:hunter2@standby/devdir",
        "standby:5432",
        "postgresql://u:hunter2@/devdir",
        "postgresql://u:hunter2@standby:port/devdir",
        "postgresql://u:hunter2@standby:5432",
        "postgresql://u:hunter2@standby/devdir,postgresql://v:hunter2@standby:5432/devdir",
    ],
)
def test_a_bad_replica_url_is_named_without_its_password(urls: str) -> None:
    with pytest.raises(SettingsError, match="DATABASE_REPLICA_URLS") as raised:
        Settings.from_env({**GOOD, "DATABASE_REPLICA_URLS": urls}).check()
    assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_the_replica_lag_bound_must_be_positive(value: str) -> None:
    with pytest.raises(SettingsError, match="db_replica_max_lag_ms"):
        Settings.from_env({**GOOD, "DB_REPLICA_MAX_LAG_MS": value})
