"""Persistence behind /api/items: the MariaDB store and the Redis cache."""

from __future__ import annotations

import json
import logging
import queue
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Optional

import pymysql
from pymysql.cursors import DictCursor
import redis

from .config import Settings

log = logging.getLogger("app.store")


class Unavailable(Exception):
    """The database cannot be reached; the API answers 503."""


# PyMySQL takes %s placeholders; MariaDB (10.5+) supports INSERT ... RETURNING.
INSERT_ITEM = "INSERT INTO items (name) VALUES (%s) RETURNING id, name, created_at"
SELECT_ITEM = "SELECT id, name, created_at FROM items WHERE id = %s"
LIST_ITEMS = "SELECT id, name, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT %s"

# Serializes concurrent `migrate` runs; GET_LOCK returns 1 once the lock is held.
MIGRATION_LOCK = "SELECT GET_LOCK('schema_migrations', 300)"
MIGRATION_UNLOCK = "SELECT RELEASE_LOCK('schema_migrations')"


def connect(cfg: Settings, connect_timeout: int = 5) -> pymysql.connections.Connection:
    """A single autocommit connection that returns rows as dicts and times in UTC."""
    return pymysql.connect(
        host=cfg.db_host,
        port=cfg.db_port,
        database=cfg.db_name,
        user=cfg.db_user,
        password=cfg.db_password,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=connect_timeout,
        read_timeout=30,
        write_timeout=30,
        init_command="SET time_zone = '+00:00'",
        cursorclass=DictCursor,
    )


class Pool:
    """A small thread-safe connection pool (PyMySQL has none): at most size connections,
    idle ones reused newest first and pinged (reconnecting) before use."""

    def __init__(self, connect, size: int):
        self._connect = connect
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)

    @contextmanager
    def connection(self, timeout: float = 5):
        if not self._slots.acquire(timeout=timeout):
            raise TimeoutError(f"no free database connection after {timeout:g} s")
        conn = None
        try:
            try:
                conn = self._idle.get_nowait()
                conn.ping(reconnect=True)
            except queue.Empty:
                conn = self._connect()
            yield conn
        except BaseException:
            if conn is not None:
                conn.close()  # its state is unknown: never hand it out again
                conn = None
            raise
        finally:
            if conn is not None:
                self._idle.put(conn)
            self._slots.release()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return
            except pymysql.MySQLError:
                pass


class Store:
    """Items in MariaDB, through a small connection pool."""

    def __init__(self, cfg: Settings):
        self._pool = Pool(lambda: connect(cfg), cfg.db_pool_size)

    def open(self) -> None:
        """Connections are made on first use; the service starts even when the database is down."""

    def close(self) -> None:
        self._pool.close()

    def ping(self) -> None:
        """Raise unless the database answers within 2 seconds."""
        with self._pool.connection(timeout=2) as conn:
            conn.ping(reconnect=False)

    def _fetch(self, sql: str, args: tuple) -> list[dict[str, Any]]:
        try:
            with self._pool.connection() as conn, conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError, TimeoutError) as exc:
            raise Unavailable(str(exc)) from exc

    def create_item(self, name: str) -> dict[str, Any]:
        return _item(self._fetch(INSERT_ITEM, (name,))[0])

    def get_item(self, item_id: int) -> Optional[dict[str, Any]]:
        rows = self._fetch(SELECT_ITEM, (item_id,))
        return _item(rows[0]) if rows else None

    def list_items(self, limit: int = 100) -> list[dict[str, Any]]:
        return [_item(r) for r in self._fetch(LIST_ITEMS, (limit,))]


def _item(row: dict[str, Any]) -> dict[str, Any]:
    """The API form of a row: created_at as an RFC 3339 UTC string."""
    created: datetime = row["created_at"]
    if created.tzinfo is None:  # TIMESTAMP read in a UTC session
        created = created.replace(tzinfo=timezone.utc)
    return {
        "id": row["id"],
        "name": row["name"],
        "created_at": created.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
    }


class Cache:
    """Cache-aside for single items in Redis (key item:<id>, TTL 60 s).

    Items never change once created, so nothing needs invalidating. Redis errors are logged
    and count as misses: the database still answers when the cache is down."""

    TTL_SECONDS = 60

    def __init__(self, cfg: Settings):
        self._redis = redis.Redis(
            host=cfg.redis_host,
            port=cfg.redis_port,
            password=cfg.redis_password or None,
            db=cfg.redis_db,
            socket_connect_timeout=2,
            socket_timeout=2,
            health_check_interval=30,
        )

    def close(self) -> None:
        self._redis.close()

    def ping(self) -> None:
        self._redis.ping()

    def get_item(self, item_id: int) -> Optional[dict[str, Any]]:
        try:
            raw = self._redis.get(f"item:{item_id}")
        except redis.RedisError as exc:
            log.warning("cache read failed", extra={"fields": {"error": str(exc)}})
            return None
        return json.loads(raw) if raw is not None else None

    def set_item(self, item: dict[str, Any]) -> None:
        try:
            self._redis.set(f"item:{item['id']}", json.dumps(item), ex=self.TTL_SECONDS)
        except redis.RedisError as exc:
            log.warning("cache write failed", extra={"fields": {"error": str(exc)}})
