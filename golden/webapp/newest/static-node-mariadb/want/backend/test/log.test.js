import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createLogger } from '../src/log.js';

function capture(level) {
  const out = [];
  const log = createLogger({ level, stream: { write: (s) => out.push(s) }, now: () => new Date(0) });
  return { log, out };
}

test('a log line is one JSON object with time, level and msg first', () => {
  const { log, out } = capture('info');
  log.info('hello', { n: 1, err: new Error('boom'), msg: 'ignored' });
  assert.deepEqual(out, ['{"time":"1970-01-01T00:00:00.000Z","level":"info","msg":"hello","n":1,"err":"boom"}\n']);
});

test('lines below the level are dropped', () => {
  const { log, out } = capture('warn');
  log.debug('d');
  log.info('i');
  log.warn('w');
  log.error('e');
  assert.deepEqual(
    out.map((l) => JSON.parse(l).level),
    ['warn', 'error'],
  );
});

test('an unknown level is an error', () => {
  assert.throws(() => createLogger({ level: 'loud' }), /unknown log level "loud"/);
});
