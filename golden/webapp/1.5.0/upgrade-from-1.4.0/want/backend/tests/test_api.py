"""The HTTP API against fake dependencies."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from app.store import Unavailable


def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_readyz_ok(client):
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"db": "ok", "cache": "ok"}}


def test_readyz_db_down(client, store):
    store.down = ConnectionError("connection refused")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert r.json()["checks"]["db"] == "connection refused"


def test_readyz_cache_down(client, cache):
    cache.down = ConnectionError("redis unreachable")
    r = client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"] == {"db": "ok", "cache": "redis unreachable"}


def test_create_and_get_item(client):
    r = client.post("/api/items", json={"name": "first"})
    assert r.status_code == 201
    item = r.json()
    assert item["name"] == "first"
    assert item["created_at"].endswith("Z")
    r = client.get(f"/api/items/{item['id']}")
    assert r.status_code == 200
    assert r.json() == item


def test_create_item_accepts_200_characters(client):
    assert client.post("/api/items", json={"name": "x" * 200}).status_code == 201


@pytest.mark.parametrize("body", [
    {"name": ""},
    {"name": "x" * 201},
    {"name": 5},
    {"title": "no name"},
    ["name"],
    None,
])
def test_create_item_rejects_bad_input(client, body):
    r = client.post("/api/items", json=body)
    assert r.status_code == 400
    assert "name" in r.json()["error"]


def test_create_item_rejects_invalid_json(client):
    r = client.post("/api/items", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"]


def test_list_items_newest_first(client):
    for name in ("a", "b", "c"):
        client.post("/api/items", json={"name": name})
    r = client.get("/api/items")
    assert r.status_code == 200
    assert [i["name"] for i in r.json()] == ["c", "b", "a"]


@pytest.mark.parametrize("path", ["/api/items/42", "/api/items/abc", "/api/items/0", "/api/items/99999999999999999999"])
def test_get_item_not_found(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert r.json() == {"error": "not found"}


def test_unknown_route_and_method(client):
    assert client.get("/nope").json() == {"error": "not found"}
    r = client.delete("/api/items")
    assert r.status_code == 405
    assert r.json() == {"error": "method not allowed"}


def test_database_outage_is_a_503(client, store):
    store.down = Unavailable("connection refused")
    r = client.post("/api/items", json={"name": "x"})
    assert r.status_code == 503
    assert r.json() == {"error": "database unavailable"}


def test_store_failure_is_a_json_500(client, store):
    store.down = RuntimeError("boom")
    r = client.get("/api/items")
    assert r.status_code == 500
    assert r.json() == {"error": "internal error"}


def test_get_item_reads_through_cache(client, cache):
    item_id = client.post("/api/items", json={"name": "cached"}).json()["id"]
    first = client.get(f"/api/items/{item_id}")
    assert first.headers["X-Cache"] == "miss"
    assert cache.data[item_id]["name"] == "cached"
    second = client.get(f"/api/items/{item_id}")
    assert second.headers["X-Cache"] == "hit"
    assert second.json() == first.json()


def test_get_item_works_when_cache_is_down(client, cache):
    cache.down = ConnectionError("redis unreachable")
    item_id = client.post("/api/items", json={"name": "x"}).json()["id"]
    for _ in range(2):
        r = client.get(f"/api/items/{item_id}")
        assert r.status_code == 200
        assert r.headers["X-Cache"] == "miss"


def test_metrics_use_route_patterns(client):
    labels = {"method": "GET", "route": "/api/items/{id}", "status": "404"}
    before = REGISTRY.get_sample_value("http_requests_total", labels) or 0
    client.get("/api/items/12345")
    assert REGISTRY.get_sample_value("http_requests_total", labels) == before + 1
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/api/items/{id}",status="404"}' in r.text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET",route="/api/items/{id}"}' in r.text
    assert "/api/items/12345" not in r.text


def test_unmatched_paths_share_one_label(client):
    client.get("/no/such/path")
    assert REGISTRY.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "unmatched", "status": "404"}) >= 1
