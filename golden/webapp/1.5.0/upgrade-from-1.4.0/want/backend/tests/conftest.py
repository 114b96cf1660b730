"""Fakes for the store and the cache: the unit tests need no database and no Redis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import pytest
from fastapi.testclient import TestClient

from app.api import create_app


class FakeStore:
    """In-memory stand-in for app.store.Store."""

    def __init__(self) -> None:
        self.items: dict[int, dict[str, Any]] = {}
        self.down: Optional[Exception] = None
        self.start = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    def _check(self) -> None:
        if self.down:
            raise self.down

    def ping(self) -> None:
        self._check()

    def create_item(self, name: str) -> dict[str, Any]:
        self._check()
        item_id = len(self.items) + 1
        created = self.start + timedelta(seconds=item_id)
        item = {"id": item_id, "name": name, "created_at": created.isoformat().replace("+00:00", "Z")}
        self.items[item_id] = item
        return dict(item)

    def get_item(self, item_id: int) -> Optional[dict[str, Any]]:
        self._check()
        item = self.items.get(item_id)
        return dict(item) if item else None

    def list_items(self, limit: int = 100) -> list[dict[str, Any]]:
        self._check()
        return [dict(i) for i in sorted(self.items.values(), key=lambda i: -i["id"])][:limit]


class FakeCache:
    """In-memory stand-in for app.store.Cache; when down, reads miss and writes are dropped."""

    def __init__(self) -> None:
        self.data: dict[int, dict[str, Any]] = {}
        self.down: Optional[Exception] = None

    def ping(self) -> None:
        if self.down:
            raise self.down

    def get_item(self, item_id: int) -> Optional[dict[str, Any]]:
        return None if self.down else self.data.get(item_id)

    def set_item(self, item: dict[str, Any]) -> None:
        if not self.down:
            self.data[item["id"]] = item


@pytest.fixture
def cache() -> FakeCache:
    return FakeCache()


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def client(store, cache):
    with TestClient(create_app(store, cache), raise_server_exceptions=False) as c:
        yield c
