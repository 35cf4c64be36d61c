import os

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from chat import config


def test_defaults_put_the_database_and_a_generated_secret_under_instance(tmp_path, capsys):
    settings = config.load(str(tmp_path), environ={})
    assert settings.DATABASE_URL.removeprefix("sqlite:///") == f"{tmp_path}/papo.db"
    assert len(settings.SECRET_KEY) >= 32
    assert "generated one" in capsys.readouterr().err
    assert config.load(str(tmp_path), environ={}).SECRET_KEY == settings.SECRET_KEY
    assert oct(os.stat(tmp_path / "secret_key").st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("environ, words", [
    ({"ASYNC_MODE": "tornado"}, "ASYNC_MODE"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
    ({"REDIS_URL": "http://x"}, "REDIS_URL"),
    ({"SECRET_KEY": "short"}, "SECRET_KEY"),
    ({"RATE_BURST": "many"}, "RATE_BURST"),
    ({"RATE_PER_SECOND": "0"}, "RATE_PER_SECOND"),
    ({"CORS_ALLOWED_ORIGINS": "example.com"}, "CORS_ALLOWED_ORIGINS"),
    ({"PASSWORD_HASH": "md5"}, "PASSWORD_HASH"),
])
def test_a_bad_setting_stops_start_up_with_one_clear_line(tmp_path, environ, words):
    with pytest.raises(config.SettingError) as caught:
        config.load(str(tmp_path), environ={"SECRET_KEY": "k" * 20, **environ})
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_lists_and_numbers_are_parsed(tmp_path):
    settings = config.load(str(tmp_path), environ={
        "SECRET_KEY": "k" * 20, "ADMIN_USERS": "ana, bo", "RATE_BURST": "5", "RATE_PER_SECOND": "2.5"})
    assert settings.ADMIN_USERS == ("ana", "bo")
    assert (settings.RATE_BURST, settings.RATE_PER_SECOND) == (5, 2.5)


BOUNDED = [s for s in config.SETTINGS if "bounds" in s.metadata]


@pytest.mark.parametrize("setting", BOUNDED, ids=lambda s: s.name)
def test_each_number_setting_keeps_its_declared_bounds(tmp_path, setting):
    low, high = setting.metadata["bounds"]
    environ = {"SECRET_KEY": "k" * 20, "SOCKET_TIMEOUT": "86400", "PING_INTERVAL": "1", "PING_TIMEOUT": "1",
               setting.name: str(low)}
    assert getattr(config.load(str(tmp_path), environ=environ), setting.name) == low
    for outside in (low - (1 if isinstance(low, int) or not low else low / 2), high * 2):
        with pytest.raises(config.SettingError, match=f"^{setting.name} must be between"):
            config.load(str(tmp_path), environ={**environ, setting.name: str(outside)})


def test_the_defaults_keep_their_own_bounds():
    for setting in BOUNDED:
        low, high = setting.metadata["bounds"]
        assert low <= setting.default <= high, setting.name
        assert isinstance(setting.default, type(low)), setting.name


def test_a_token_may_live_five_seconds(tmp_path):
    settings = config.load(str(tmp_path), environ={"SECRET_KEY": "k" * 20, "TOKEN_TTL": "5"})
    assert settings.TOKEN_TTL == 5
    with pytest.raises(config.SettingError, match="TOKEN_TTL must be between 5 and"):
        config.load(str(tmp_path), environ={"SECRET_KEY": "k" * 20, "TOKEN_TTL": "4"})


@pytest.mark.parametrize("name, choices", [("ASYNC_MODE", config.ASYNC_MODES),
                                           ("SECURE_COOKIES", config.SECURE_COOKIES)])
def test_a_word_setting_names_its_choices(tmp_path, name, choices):
    with pytest.raises(config.SettingError) as caught:
        config.load(str(tmp_path), environ={"SECRET_KEY": "k" * 20, name: "sometimes"})
    assert str(caught.value) == f"{name} must be one of {', '.join(choices)}, got 'sometimes'"
    assert getattr(config.load(str(tmp_path), environ={"SECRET_KEY": "k" * 20, name: choices[-1]}), name) == choices[-1]


def test_derived_defaults_follow_the_settings_they_scale(tmp_path):
    settings = config.load(str(tmp_path), environ={"SECRET_KEY": "k" * 20, "RATE_BURST": "7", "PING_INTERVAL": "10"})
    assert (settings.EVENT_BURST, settings.EVENT_PER_SECOND) == (21, 30.0)
    assert settings.SOCKET_TIMEOUT == 30 + 10 + 20


def test_a_lone_process_drains_at_once_and_a_cluster_over_a_window_unless_told(tmp_path):
    key = {"SECRET_KEY": "k" * 20}
    cluster = {**key, "REDIS_URL": "redis://127.0.0.1:6379/0"}
    assert config.load(str(tmp_path), environ=key).DRAIN_SECONDS == 0.0
    assert config.load(str(tmp_path), environ=cluster).DRAIN_SECONDS == config.CLUSTER_DRAIN_SECONDS == 3.0
    assert config.load(str(tmp_path), environ={**cluster, "DRAIN_SECONDS": "0.5"}).DRAIN_SECONDS == 0.5


def test_unknown_settings_are_handed_on_as_extra(tmp_path):
    settings = config.load(str(tmp_path), environ={}, overrides={"SECRET_KEY": "k" * 20, "TESTING": True})
    assert settings.extra == {"TESTING": True}


@hypothesis_settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(setting=st.sampled_from(BOUNDED), raw=st.text(max_size=30))
def test_any_text_for_a_number_is_taken_within_bounds_or_refused_in_one_line(tmp_path, setting, raw):
    environ = {"SECRET_KEY": "k" * 20, "SOCKET_TIMEOUT": "86400", "PING_INTERVAL": "1", "PING_TIMEOUT": "1",
               setting.name: raw}
    try:
        value = getattr(config.load(str(tmp_path), environ=environ), setting.name)
    except config.SettingError as error:
        assert str(error).startswith(setting.name) and "\n" not in str(error)
    else:
        low, high = setting.metadata["bounds"]
        assert low <= value <= high
