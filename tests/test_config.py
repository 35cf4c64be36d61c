import os

import pytest

from chat import config


def test_defaults_put_the_database_and_a_generated_secret_under_instance(tmp_path, capsys):
    settings = config.load(str(tmp_path), environ={})
    assert settings.DATABASE_URL == f"sqlite:///{tmp_path}/papo.db"
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
