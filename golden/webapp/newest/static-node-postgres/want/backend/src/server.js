// Entry point. `node src/server.js` serves the API; `node src/server.js migrate` applies
// the migrations and exits.
import http from 'node:http';

import { createApp } from './app.js';
import { createCache } from './cache.js';
import { loadConfig } from './config.js';
import { createStore } from './db.js';
import { createLogger } from './log.js';
import { createMetrics } from './metrics.js';
import { applyMigrations, loadMigrations } from './migrate.js';
import { gracefulShutdown } from './shutdown.js';

const USAGE = 'usage: node src/server.js [migrate]';

async function main(args) {
  let cfg;
  try {
    cfg = loadConfig();
  } catch (err) {
    createLogger().error(err.message);
    return 2;
  }
  const log = createLogger({ level: cfg.logLevel });
  process.on('uncaughtException', (err) => {
    log.error('uncaught exception', { err, stack: err?.stack });
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    log.error('unhandled promise rejection', { err, stack: err?.stack });
    process.exit(1);
  });

  const command = args[0] ?? 'serve';
  if (args.length > 1 || !['serve', 'migrate'].includes(command)) {
    log.error(`unknown command ${JSON.stringify(args.join(' '))}; ${USAGE}`);
    return 2;
  }
  const store = createStore(cfg.db, log);
  if (command === 'migrate') {
    try {
      await migrate(cfg, store, log);
      return 0;
    } catch (err) {
      log.error('migrate failed', { err });
      return 1;
    } finally {
      await store.close();
    }
  }
  return serve(cfg, store, log);
}

async function migrate(cfg, store, log) {
  const migrations = await loadMigrations(cfg.migrationsDir);
  const applied = await applyMigrations(store, migrations, log);
  log.info('migrations up to date', { applied: applied.length, total: migrations.length });
}

async function serve(cfg, store, log) {
  if (cfg.migrateOnStart) {
    try {
      await migrate(cfg, store, log);
    } catch (err) {
      log.error('migrate on start failed', { err });
      await store.close();
      return 1;
    }
  }
  const cache = createCache(cfg.redis, log);
  const app = createApp({ store, cache, log, metrics: createMetrics() });
  const server = http.createServer(app.handler);
  // Longer than the proxy's idle timeout (Traefik: 90 s), so the proxy never reuses a
  // connection this server has just closed.
  server.keepAliveTimeout = 95_000;
  const closeResources = () => Promise.all([store.close(), cache?.close()]);

  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.port, resolve);
    });
  } catch (err) {
    log.error('listen failed', { port: cfg.port, err });
    await closeResources();
    return 1;
  }
  log.info('listening', { port: cfg.port });

  // The first SIGTERM/SIGINT shuts down gracefully; a second one kills the process.
  const signal = await new Promise((resolve) => {
    const stop = (sig) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve(sig);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  log.info('shutting down', { signal, timeout_ms: cfg.shutdownTimeoutMs });
  app.startShutdown();
  const clean = await gracefulShutdown(server, { timeoutMs: cfg.shutdownTimeoutMs, closeResources, log });
  log.info('stopped', { clean });
  return clean ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
process.exit();
