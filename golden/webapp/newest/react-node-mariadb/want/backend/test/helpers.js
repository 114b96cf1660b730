// Test doubles shared by the unit tests: an in-memory store, cache and logger.
import http from 'node:http';

import { createApp } from '../src/app.js';
import { createLogger } from '../src/log.js';
import { createMetrics } from '../src/metrics.js';

/** memoryStore is the items store interface of src/db.js without a database. */
export function memoryStore() {
  const items = [];
  let clock = Date.parse('2026-01-01T00:00:00Z');
  return {
    items,
    failWith: null, // set to an Error to make every call fail
    async ping() {
      if (this.failWith) throw this.failWith;
    },
    async createItem(name) {
      if (this.failWith) throw this.failWith;
      clock += 1000;
      const item = { id: items.length + 1, name, created_at: new Date(clock).toISOString() };
      items.push(item);
      return item;
    },
    async listItems(limit) {
      if (this.failWith) throw this.failWith;
      return [...items].reverse().slice(0, limit);
    },
    async getItem(id) {
      if (this.failWith) throw this.failWith;
      return items.find((i) => i.id === id) ?? null;
    },
  };
}

/** memoryCache is the item cache interface of src/cache.js without Redis. */
export function memoryCache() {
  const values = new Map();
  return {
    values,
    failWith: null,
    async get(id) {
      if (this.failWith) throw this.failWith;
      return values.get(id) ?? null;
    },
    async set(item) {
      if (this.failWith) throw this.failWith;
      values.set(item.id, item);
    },
    async ping() {
      if (this.failWith) throw this.failWith;
    },
  };
}

/** memoryLog returns a logger at debug level and the parsed lines it wrote. */
export function memoryLog() {
  const lines = [];
  const stream = { write: (s) => lines.push(JSON.parse(s)) };
  return { log: createLogger({ level: 'debug', stream }), lines };
}

/**
 * startApp serves createApp on a free loopback port and returns helpers to call it.
 * Call close() when done.
 */
export async function startApp({ store = memoryStore(), cache = null, checkTimeoutMs } = {}) {
  const { log, lines } = memoryLog();
  const app = createApp({ store, cache, log, metrics: createMetrics(), checkTimeoutMs });
  const server = http.createServer(app.handler);
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const request = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      body: typeof body === 'string' || body === undefined ? body : JSON.stringify(body),
    });
    const text = await res.text();
    const json = res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : undefined;
    return { status: res.status, headers: res.headers, text, json };
  };
  return {
    app,
    store,
    cache,
    lines,
    request,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
