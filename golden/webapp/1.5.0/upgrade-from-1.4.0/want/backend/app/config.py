"""Configuration read from the environment (see the table in README.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping, Optional

LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(Exception):
    """A variable is set to a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    port: int = 8080
    db_host: str = "db"
    db_port: int = 3306
    db_name: str = "app"
    db_user: str = "app"
    db_password: str = ""
    db_pool_size: int = 10
    redis_host: str = "cache"
    redis_port: int = 6379
    redis_password: str = ""
    redis_db: int = 0
    migrate_on_start: bool = False
    shutdown_timeout: float = 20.0
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Optional[Mapping[str, str]] = None) -> "Settings":
        """Build settings from env (os.environ by default); unset or empty means the default."""
        env = os.environ if env is None else env
        d = cls()

        def get(name: str, default: str) -> str:
            return env.get(name) or default

        redis_host, redis_port = _host_port("REDIS_ADDR", get("REDIS_ADDR", "cache:6379"), 6379)
        return cls(
            port=_int("PORT", get("PORT", str(d.port)), 1, 65535),
            db_host=get("DB_HOST", d.db_host),
            db_port=_int("DB_PORT", get("DB_PORT", str(d.db_port)), 1, 65535),
            db_name=get("DB_NAME", d.db_name),
            db_user=get("DB_USER", d.db_user),
            db_password=_secret(env, "DB_PASSWORD"),
            db_pool_size=_int("DB_POOL_SIZE", get("DB_POOL_SIZE", str(d.db_pool_size)), 1, 1000),
            redis_host=redis_host,
            redis_port=redis_port,
            redis_password=_secret(env, "REDIS_PASSWORD"),
            redis_db=_int("REDIS_DB", get("REDIS_DB", "0"), 0, 1_000_000),
            migrate_on_start=_bool("MIGRATE_ON_START", get("MIGRATE_ON_START", "false")),
            shutdown_timeout=_seconds("SHUTDOWN_TIMEOUT", get("SHUTDOWN_TIMEOUT", "20")),
            log_level=_choice("LOG_LEVEL", get("LOG_LEVEL", d.log_level).lower(), LOG_LEVELS),
        )


def _secret(env: Mapping[str, str], name: str) -> str:
    """Return NAME_FILE's content (without the final newline) when set, else NAME."""
    path = env.get(name + "_FILE")
    if not path:
        return env.get(name, "")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(f"{name}_FILE: {exc}") from exc


def _int(name: str, value: str, lo: int, hi: int) -> int:
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a number") from None
    if not lo <= n <= hi:
        raise ConfigError(f"{name}: {n} is not between {lo} and {hi}")
    return n


def _host_port(name: str, value: str, default_port: int) -> tuple[str, int]:
    """Split "host:port" (or "[v6addr]:port"); the port is optional."""
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = value, str(default_port)
    host = host.strip("[]")
    if not host:
        raise ConfigError(f"{name}: {value!r} has no host")
    return host, _int(name, port, 1, 65535)


def _bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: {value!r} is not true or false")


def _seconds(name: str, value: str) -> float:
    """Parse "20" or "20s" as seconds."""
    try:
        s = float(value.strip().removesuffix("s"))
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a number of seconds") from None
    if not 0 <= s <= 3600:
        raise ConfigError(f"{name}: {value!r} is not between 0 and 3600 seconds")
    return s


def _choice(name: str, value: str, allowed: tuple) -> str:
    if value not in allowed:
        raise ConfigError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value
