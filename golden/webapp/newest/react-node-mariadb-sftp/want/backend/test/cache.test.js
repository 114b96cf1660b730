import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ITEM_TTL_SECONDS, itemCache } from '../src/cache.js';

/** fakeRedis records the calls the item cache makes on a node-redis client. */
function fakeRedis() {
  const data = new Map();
  return {
    data,
    calls: [],
    offline: false,
    async get(key) {
      if (this.offline) throw new Error('The client is offline');
      return data.get(key) ?? null;
    },
    async set(key, value, options) {
      this.calls.push(['set', key, options]);
      data.set(key, value);
      return 'OK';
    },
    async ping() {
      if (this.offline) throw new Error('The client is offline');
      return 'PONG';
    },
  };
}

test('items are stored as JSON under item:<id> with a 60 s TTL', async () => {
  const client = fakeRedis();
  const cache = itemCache(client);
  const item = { id: 7, name: 'seven', created_at: '2026-01-01T00:00:00.000Z' };
  assert.equal(await cache.get(7), null);
  await cache.set(item);
  assert.deepEqual(client.calls, [['set', 'item:7', { expiration: { type: 'EX', value: 60 } }]]);
  assert.equal(ITEM_TTL_SECONDS, 60);
  assert.deepEqual(await cache.get(7), item);
});

test('ping explains why the client is offline', async () => {
  const client = fakeRedis();
  client.offline = true;
  const cache = itemCache(client, () => 'connect ECONNREFUSED 127.0.0.1:6379');
  await assert.rejects(cache.ping(), { message: 'The client is offline: connect ECONNREFUSED 127.0.0.1:6379' });
});
