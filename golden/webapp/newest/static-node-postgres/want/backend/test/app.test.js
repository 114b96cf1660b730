import assert from 'node:assert/strict';
import { test } from 'node:test';

import { memoryCache, memoryStore, startApp } from './helpers.js';

test('GET /healthz answers 200 ok', async (t) => {
  const s = await startApp();
  t.after(s.close);
  const res = await s.request('GET', '/healthz');
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'ok' });
});

test('GET /readyz checks the database and the cache', async (t) => {
  const s = await startApp({ cache: memoryCache() });
  t.after(s.close);

  let res = await s.request('GET', '/readyz');
  assert.equal(res.status, 200);
  assert.deepEqual(res.json, { status: 'ok', checks: { db: 'ok', cache: 'ok' } });

  s.store.failWith = new Error('connect ECONNREFUSED 127.0.0.1:5432');
  res = await s.request('GET', '/readyz');
  assert.equal(res.status, 503);
  assert.deepEqual(res.json, {
    status: 'unavailable',
    checks: { db: 'connect ECONNREFUSED 127.0.0.1:5432', cache: 'ok' },
  });
});

test('GET /readyz without a cache checks only the database', async (t) => {
  const s = await startApp();
  t.after(s.close);
  const res = await s.request('GET', '/readyz');
  assert.deepEqual(res.json, { status: 'ok', checks: { db: 'ok' } });
});

test('GET /readyz fails a check that hangs', async (t) => {
  const store = memoryStore();
  store.ping = () => new Promise(() => {});
  const s = await startApp({ store, checkTimeoutMs: 50 });
  t.after(s.close);
  const res = await s.request('GET', '/readyz');
  assert.equal(res.status, 503);
  assert.equal(res.json.checks.db, 'timed out after 50 ms');
});

test('GET /readyz answers 503 once shutdown started', async (t) => {
  const s = await startApp();
  t.after(s.close);
  s.app.startShutdown();
  const res = await s.request('GET', '/readyz');
  assert.equal(res.status, 503);
});

test('POST /api/items creates an item', async (t) => {
  const s = await startApp();
  t.after(s.close);
  const res = await s.request('POST', '/api/items', { name: '  first  ' });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get('location'), '/api/items/1');
  assert.equal(res.json.id, 1);
  assert.equal(res.json.name, 'first');
  assert.match(res.json.created_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
});

test('POST /api/items rejects bad input with 400', async (t) => {
  const s = await startApp();
  t.after(s.close);
  const cases = [
    ['not JSON', 'name=x'],
    ['no name', {}],
    ['name not a string', { name: 42 }],
    ['empty name', { name: '' }],
    ['blank name', { name: '   ' }],
    ['201 characters', { name: 'x'.repeat(201) }],
    ['JSON null', 'null'],
  ];
  for (const [what, body] of cases) {
    const res = await s.request('POST', '/api/items', body);
    assert.equal(res.status, 400, what);
    assert.equal(typeof res.json.error, 'string', what);
  }
  assert.equal(s.store.items.length, 0);
});

test('POST /api/items counts characters, not bytes', async (t) => {
  const s = await startApp();
  t.after(s.close);
  const res = await s.request('POST', '/api/items', { name: '✓'.repeat(200) });
  assert.equal(res.status, 201);
});

test('POST /api/items rejects a body over 64 KiB with 413', async (t) => {
  const s = await startApp();
  t.after(s.close);
  const res = await s.request('POST', '/api/items', { name: 'x'.repeat(70_000) });
  assert.equal(res.status, 413);
});

test('GET /api/items lists the newest first', async (t) => {
  const s = await startApp();
  t.after(s.close);
  for (const name of ['a', 'b', 'c']) await s.request('POST', '/api/items', { name });
  const res = await s.request('GET', '/api/items');
  assert.equal(res.status, 200);
  assert.deepEqual(
    res.json.map((i) => i.name),
    ['c', 'b', 'a'],
  );
});

test('GET /api/items/{id} returns the item or 404', async (t) => {
  const s = await startApp();
  t.after(s.close);
  await s.request('POST', '/api/items', { name: 'one' });

  let res = await s.request('GET', '/api/items/1');
  assert.equal(res.status, 200);
  assert.equal(res.json.name, 'one');
  assert.equal(res.headers.get('x-cache'), null);

  for (const path of ['/api/items/2', '/api/items/abc', '/api/items/0', '/api/items/99999999999999999999']) {
    res = await s.request('GET', path);
    assert.equal(res.status, 404, path);
    assert.deepEqual(res.json, { error: 'not found' }, path);
  }
});

test('GET /api/items/{id} reads through the cache', async (t) => {
  const cache = memoryCache();
  const s = await startApp({ cache });
  t.after(s.close);
  await s.request('POST', '/api/items', { name: 'cached' });

  let res = await s.request('GET', '/api/items/1');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-cache'), 'miss');
  assert.equal(cache.values.get(1).name, 'cached');

  res = await s.request('GET', '/api/items/1');
  assert.equal(res.headers.get('x-cache'), 'hit');
  assert.equal(res.json.name, 'cached');

  res = await s.request('GET', '/api/items/2');
  assert.equal(res.status, 404);
  assert.equal(cache.values.has(2), false);
});

test('GET /api/items/{id} falls back to the database when the cache fails', async (t) => {
  const cache = memoryCache();
  const s = await startApp({ cache });
  t.after(s.close);
  await s.request('POST', '/api/items', { name: 'x' });
  cache.failWith = new Error('The client is offline');
  const res = await s.request('GET', '/api/items/1');
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-cache'), 'miss');
  assert.ok(s.lines.some((l) => l.level === 'warn' && l.err === 'The client is offline'));
});

test('a database error answers 500 without details and is logged', async (t) => {
  const s = await startApp();
  t.after(s.close);
  s.store.failWith = new Error('relation "items" does not exist');
  const res = await s.request('GET', '/api/items');
  assert.equal(res.status, 500);
  assert.deepEqual(res.json, { error: 'internal error' });
  assert.ok(s.lines.some((l) => l.level === 'error' && l.err === 'relation "items" does not exist'));
});

test('unknown paths answer 404, wrong methods 405 with Allow', async (t) => {
  const s = await startApp();
  t.after(s.close);
  let res = await s.request('GET', '/nope');
  assert.equal(res.status, 404);
  res = await s.request('DELETE', '/api/items/1');
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'GET');
});

test('GET /metrics counts requests by route pattern', async (t) => {
  const s = await startApp();
  t.after(s.close);
  await s.request('POST', '/api/items', { name: 'm' });
  await s.request('GET', '/api/items/1');
  await s.request('GET', '/api/items/7');
  await s.request('GET', '/no/such/path');
  const res = await s.request('GET', '/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain/);
  const m = res.text;
  assert.match(m, /^http_requests_total\{method="POST",route="\/api\/items",status="201"\} 1$/m);
  assert.match(m, /^http_requests_total\{method="GET",route="\/api\/items\/\{id\}",status="200"\} 1$/m);
  assert.match(m, /^http_requests_total\{method="GET",route="\/api\/items\/\{id\}",status="404"\} 1$/m);
  assert.match(m, /^http_requests_total\{method="GET",route="unmatched",status="404"\} 1$/m);
  assert.match(m, /^http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/api\/items\/\{id\}"\} \d+$/m);
  assert.match(m, /^process_cpu_seconds_total /m);
});

test('each request is logged as one JSON line', async (t) => {
  const s = await startApp();
  t.after(s.close);
  await s.request('GET', '/api/items?x=1');
  await s.request('GET', '/healthz');
  const req = s.lines.filter((l) => l.msg === 'request');
  assert.equal(req.length, 2);
  const [items, health] = req;
  assert.equal(items.level, 'info');
  assert.equal(items.method, 'GET');
  assert.equal(items.path, '/api/items');
  assert.equal(items.status, 200);
  assert.equal(typeof items.duration_ms, 'number');
  assert.equal(health.level, 'debug', 'probes log at debug level');
});
