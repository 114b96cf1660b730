import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { applyMigrations, loadMigrations, splitStatements } from '../src/migrate.js';
import { memoryLog } from './helpers.js';

test('splitStatements splits at ";" at line end and drops comments', () => {
  const sql = [
    '-- 0002: two tables',
    'CREATE TABLE a (x int);',
    '',
    '-- the second one',
    "CREATE TABLE b (s varchar(10) DEFAULT 'a;b');  ",
    'INSERT INTO b VALUES',
    "  ('x');",
    '-- trailing comment',
    '',
  ].join('\n');
  assert.deepEqual(splitStatements(sql), [
    'CREATE TABLE a (x int)',
    "CREATE TABLE b (s varchar(10) DEFAULT 'a;b')",
    "INSERT INTO b VALUES\n  ('x')",
  ]);
  assert.deepEqual(splitStatements('SELECT 1'), ['SELECT 1']);
  assert.deepEqual(splitStatements('-- nothing\n'), []);
});

test('loadMigrations reads *.sql files in name order', (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'migrations-'));
  t.after(() => rmSync(dir, { recursive: true }));
  writeFileSync(path.join(dir, '0002_b.sql'), 'SELECT 2;\n');
  writeFileSync(path.join(dir, '0001_a.sql'), 'SELECT 1;\nSELECT 11;\n');
  writeFileSync(path.join(dir, 'README.md'), 'not a migration');
  return loadMigrations(dir).then((ms) => {
    assert.deepEqual(ms, [
      { version: '0001_a', statements: ['SELECT 1', 'SELECT 11'] },
      { version: '0002_b', statements: ['SELECT 2'] },
    ]);
  });
});

test('the shipped migrations parse', async () => {
  const dir = fileURLToPath(new URL('../migrations/', import.meta.url));
  const ms = await loadMigrations(dir);
  assert.ok(ms.length >= 1);
  assert.equal(ms[0].version, '0001_create_items');
  assert.match(ms[0].statements[0], /^CREATE TABLE IF NOT EXISTS items/);
});

test('applyMigrations applies only what is not recorded, in order', async () => {
  const recorded = new Set(['0001_a']);
  const ran = [];
  const store = {
    migrate: (fn) =>
      fn({
        applied: async () => new Set(recorded),
        apply: async (version, statements) => {
          ran.push([version, statements]);
          recorded.add(version);
        },
      }),
  };
  const { log } = memoryLog();
  const ms = [
    { version: '0001_a', statements: ['A'] },
    { version: '0002_b', statements: ['B'] },
    { version: '0003_c', statements: ['C1', 'C2'] },
  ];
  assert.deepEqual(await applyMigrations(store, ms, log), ['0002_b', '0003_c']);
  assert.deepEqual(ran, [
    ['0002_b', ['B']],
    ['0003_c', ['C1', 'C2']],
  ]);
  assert.deepEqual(await applyMigrations(store, ms, log), []);
});

test('applyMigrations stops at the first failure and names it', async () => {
  const ran = [];
  const store = {
    migrate: (fn) =>
      fn({
        applied: async () => new Set(),
        apply: async (version) => {
          if (version === '0002_b') throw new Error('syntax error');
          ran.push(version);
        },
      }),
  };
  const { log } = memoryLog();
  const ms = ['0001_a', '0002_b', '0003_c'].map((version) => ({ version, statements: ['X'] }));
  await assert.rejects(applyMigrations(store, ms, log), /^Error: migration 0002_b: syntax error$/);
  assert.deepEqual(ran, ['0001_a']);
});
