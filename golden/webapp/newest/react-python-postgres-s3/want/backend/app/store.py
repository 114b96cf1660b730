"""Persistence behind /api/items: the PostgreSQL store."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Optional

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from .config import Settings

log = logging.getLogger("app.store")


class Unavailable(Exception):
    """The database cannot be reached; the API answers 503."""


# psycopg takes %s placeholders; PostgreSQL supports INSERT ... RETURNING.
INSERT_ITEM = "INSERT INTO items (name) VALUES (%s) RETURNING id, name, created_at"
SELECT_ITEM = "SELECT id, name, created_at FROM items WHERE id = %s"
LIST_ITEMS = "SELECT id, name, created_at FROM items ORDER BY created_at DESC, id DESC LIMIT %s"

# Serializes concurrent `migrate` runs (any constant key shared by all replicas will do).
MIGRATION_LOCK = "SELECT pg_advisory_lock(7243591)"
MIGRATION_UNLOCK = "SELECT pg_advisory_unlock(7243591)"


def connect(cfg: Settings) -> psycopg.Connection:
    """A single autocommit connection, for migrations."""
    return psycopg.connect(**_connect_args(cfg))


def _connect_args(cfg: Settings) -> dict[str, Any]:
    return {
        "host": cfg.db_host,
        "port": cfg.db_port,
        "dbname": cfg.db_name,
        "user": cfg.db_user,
        "password": cfg.db_password,
        "connect_timeout": 5,
        "application_name": "backend",
        "autocommit": True,
    }


class Store:
    """Items in PostgreSQL, through a connection pool that reconnects on its own."""

    def __init__(self, cfg: Settings):
        self._pool = ConnectionPool(
            kwargs={**_connect_args(cfg), "row_factory": dict_row},
            min_size=1,
            max_size=cfg.db_pool_size,
            timeout=5,  # seconds a request waits for a free connection
            name="db",
            open=False,
        )

    def open(self) -> None:
        """Start connecting in the background; the service starts even when the database is down."""
        self._pool.open(wait=False)

    def close(self) -> None:
        self._pool.close(timeout=5)

    def ping(self) -> None:
        """Raise unless the database answers within 2 seconds."""
        with self._pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")

    def _fetch(self, sql: str, args: tuple) -> list[dict[str, Any]]:
        try:
            with self._pool.connection() as conn:
                return conn.execute(sql, args).fetchall()
        except psycopg.OperationalError as exc:  # includes the pool's timeout
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
