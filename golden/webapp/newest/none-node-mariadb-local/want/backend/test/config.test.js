import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { loadConfig } from '../src/config.js';

test('defaults', () => {
  const cfg = loadConfig({});
  assert.equal(cfg.port, 8080);
  assert.deepEqual(cfg.db, {
    host: 'db',
    port: 3306,
    name: 'app',
    user: 'app',
    password: '',
    poolSize: 10,
  });
  assert.deepEqual(cfg.redis, { host: 'cache', port: 6379, password: '', db: 0 });
  assert.equal(cfg.migrateOnStart, false);
  assert.match(cfg.migrationsDir, /migrations[/\\]$/);
  assert.equal(cfg.shutdownTimeoutMs, 20_000);
  assert.equal(cfg.logLevel, 'info');
});

test('values from the environment', () => {
  const cfg = loadConfig({
    PORT: '9000',
    DB_HOST: 'db.internal',
    DB_PORT: '6000',
    DB_NAME: 'shop',
    DB_USER: 'shop_app',
    DB_PASSWORD: 's3cret',
    DB_POOL_SIZE: '7',
    REDIS_ADDR: '[::1]:6380',
    REDIS_PASSWORD: 'r3dis',
    REDIS_DB: '2',
    MIGRATE_ON_START: 'true',
    MIGRATIONS_DIR: '/srv/migrations',
    SHUTDOWN_TIMEOUT: '5',
    LOG_LEVEL: 'DEBUG',
  });
  assert.equal(cfg.port, 9000);
  assert.deepEqual(cfg.db, { host: 'db.internal', port: 6000, name: 'shop', user: 'shop_app', password: 's3cret', poolSize: 7 });
  assert.deepEqual(cfg.redis, { host: '::1', port: 6380, password: 'r3dis', db: 2 });
  assert.equal(cfg.migrateOnStart, true);
  assert.equal(cfg.migrationsDir, '/srv/migrations');
  assert.equal(cfg.shutdownTimeoutMs, 5000);
  assert.equal(cfg.logLevel, 'debug');
});

test('SHUTDOWN_TIMEOUT takes seconds or a duration', () => {
  for (const [v, ms] of [['20', 20_000], ['2.5', 2500], ['20s', 20_000], ['500ms', 500], ['1m', 60_000]]) {
    assert.equal(loadConfig({ SHUTDOWN_TIMEOUT: v }).shutdownTimeoutMs, ms, v);
  }
});

test('a *_FILE variable wins over the plain one', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'secrets-'));
  t.after(() => rmSync(dir, { recursive: true }));
  const file = path.join(dir, 'db_password');
  writeFileSync(file, 'from-file\n');
  const cfg = loadConfig({ DB_PASSWORD: 'from-env', DB_PASSWORD_FILE: file });
  assert.equal(cfg.db.password, 'from-file');
});

test('every invalid variable is reported at once', () => {
  assert.throws(
    () =>
      loadConfig({
        PORT: '80a',
        DB_PORT: '70000',
        MIGRATE_ON_START: 'maybe',
        SHUTDOWN_TIMEOUT: 'soon',
        LOG_LEVEL: 'loud',
        DB_POOL_SIZE: '0',
        DB_PASSWORD_FILE: '/nonexistent/db_password',
      }),
    (err) => {
      for (const key of ['PORT="80a"', 'DB_PORT="70000"', 'MIGRATE_ON_START="maybe"', 'SHUTDOWN_TIMEOUT="soon"', 'LOG_LEVEL="loud"', 'DB_POOL_SIZE="0"', 'DB_PASSWORD_FILE: ENOENT']) {
        assert.ok(err.message.includes(key), `${key} missing from: ${err.message}`);
      }
      return true;
    },
  );
});
