// Schema migrations: migrations/NNNN_name.sql, applied in file-name order, each once,
// recorded in schema_migrations(version, applied_at) where version is the file name
// without ".sql".
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/** loadMigrations reads every *.sql file in dir, sorted by file name. */
export async function loadMigrations(dir) {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.sql')).sort();
  return Promise.all(
    files.map(async (file) => ({
      version: file.slice(0, -'.sql'.length),
      statements: splitStatements(await readFile(path.join(dir, file), 'utf8')),
    })),
  );
}

/**
 * splitStatements splits a migration into statements at each ";" that ends a line.
 * Whole-line "--" comments are dropped; chunks left empty are skipped.
 */
export function splitStatements(sql) {
  return sql
    .split(/;[ \t]*(?:\r?\n|$)/)
    .map((chunk) =>
      chunk
        .split(/\r?\n/)
        .filter((line) => !line.trim().startsWith('--'))
        .join('\n')
        .trim(),
    )
    .filter((stmt) => stmt !== '');
}

/**
 * applyMigrations applies the migrations the database has not recorded yet, in order, and
 * returns their versions. store.migrate provides the session (one locked connection).
 */
export async function applyMigrations(store, migrations, log) {
  return store.migrate(async (session) => {
    const done = await session.applied();
    const applied = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      const start = performance.now();
      try {
        await session.apply(m.version, m.statements);
      } catch (err) {
        throw new Error(`migration ${m.version}: ${err.message}`, { cause: err });
      }
      log.info('migration applied', { version: m.version, duration_ms: Math.round(performance.now() - start) });
      applied.push(m.version);
    }
    return applied;
  });
}
