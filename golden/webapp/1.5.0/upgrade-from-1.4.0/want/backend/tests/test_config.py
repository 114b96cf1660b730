"""Settings from the environment."""

from __future__ import annotations

import pytest

from app.config import ConfigError, Settings


def test_defaults():
    cfg = Settings.from_env({})
    assert (cfg.port, cfg.db_host, cfg.db_port, cfg.db_name, cfg.db_user) == (8080, "db", 3306, "app", "app")
    assert cfg.db_password == ""
    assert cfg.migrate_on_start is False
    assert cfg.shutdown_timeout == 20
    assert cfg.log_level == "info"
    assert (cfg.redis_host, cfg.redis_port, cfg.redis_password, cfg.redis_db) == ("cache", 6379, "", 0)


def test_password_file_wins(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("from-file\n")
    cfg = Settings.from_env({"DB_PASSWORD": "from-env", "DB_PASSWORD_FILE": str(secret)})
    assert cfg.db_password == "from-file"
    assert Settings.from_env({"DB_PASSWORD": "from-env"}).db_password == "from-env"


def test_missing_password_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="DB_PASSWORD_FILE"):
        Settings.from_env({"DB_PASSWORD_FILE": str(tmp_path / "absent")})


def test_values():
    cfg = Settings.from_env({
        "PORT": "9000", "DB_HOST": "h", "DB_PORT": "1234", "MIGRATE_ON_START": "true",
        "SHUTDOWN_TIMEOUT": "5s", "LOG_LEVEL": "DEBUG",
    })
    assert (cfg.port, cfg.db_host, cfg.db_port) == (9000, "h", 1234)
    assert cfg.migrate_on_start is True
    assert cfg.shutdown_timeout == 5
    assert cfg.log_level == "debug"


@pytest.mark.parametrize("addr, want", [
    ("redis.internal:6380", ("redis.internal", 6380)),
    ("redis.internal", ("redis.internal", 6379)),
    ("[::1]:6390", ("::1", 6390)),
])
def test_redis_addr(addr, want):
    cfg = Settings.from_env({"REDIS_ADDR": addr})
    assert (cfg.redis_host, cfg.redis_port) == want


@pytest.mark.parametrize("env", [
    {"PORT": "http"},
    {"PORT": "70000"},
    {"MIGRATE_ON_START": "maybe"},
    {"SHUTDOWN_TIMEOUT": "soon"},
    {"LOG_LEVEL": "loud"},
    {"REDIS_DB": "-1"},
    {"REDIS_ADDR": "cache:port"},
])
def test_invalid_values(env):
    with pytest.raises(ConfigError, match=next(iter(env))):
        Settings.from_env(env)
