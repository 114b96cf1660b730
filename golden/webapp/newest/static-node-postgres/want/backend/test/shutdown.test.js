import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';

import { gracefulShutdown } from '../src/shutdown.js';
import { memoryLog } from './helpers.js';

/**
 * serve starts a server whose requests take delayMs, and returns it with its URL and a
 * promise that resolves when the first request has arrived.
 */
async function serve(delayMs, events = []) {
  let arrive;
  const arrived = new Promise((resolve) => {
    arrive = resolve;
  });
  const server = http.createServer((req, res) => {
    arrive();
    const timer = setTimeout(() => res.end('done'), delayMs);
    res.on('close', () => clearTimeout(timer));
    res.on('finish', () => events.push('response sent'));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/`, arrived };
}

test('in-flight requests finish before the pools are closed', async () => {
  const events = [];
  const { server, url, arrived } = await serve(300, events);
  const { log } = memoryLog();
  const inflight = fetch(url).then(async (r) => `${r.status} ${await r.text()}`);
  await arrived;
  const clean = await gracefulShutdown(server, {
    timeoutMs: 5000,
    log,
    closeResources: async () => events.push('pools closed'),
  });
  assert.equal(clean, true);
  assert.equal(await inflight, '200 done');
  assert.deepEqual(events, ['response sent', 'pools closed']);
  assert.equal(server.listening, false);
});

test('idle keep-alive connections do not hold up shutdown', async () => {
  const { server, url } = await serve(0);
  const agent = new http.Agent({ keepAlive: true });
  await new Promise((resolve, reject) => {
    http.get(url, { agent }, (res) => res.resume().on('end', resolve)).on('error', reject);
  });
  const { log } = memoryLog();
  const start = Date.now();
  const clean = await gracefulShutdown(server, { timeoutMs: 5000, log, closeResources: async () => {} });
  assert.equal(clean, true);
  assert.ok(Date.now() - start < 2000, `took ${Date.now() - start} ms`);
  agent.destroy();
});

test('requests running past the deadline are cut and reported', async () => {
  const { server, url, arrived } = await serve(10_000);
  const { log, lines } = memoryLog();
  const inflight = fetch(url).catch((err) => err);
  await arrived;
  let poolsClosed = false;
  const start = Date.now();
  const clean = await gracefulShutdown(server, {
    timeoutMs: 200,
    log,
    closeResources: async () => {
      poolsClosed = true;
    },
  });
  assert.equal(clean, false);
  assert.ok(Date.now() - start < 2000, `took ${Date.now() - start} ms`);
  assert.ok(lines.some((l) => l.level === 'error'));
  assert.ok((await inflight) instanceof Error, 'the cut request fails');
  assert.equal(poolsClosed, false);
});
