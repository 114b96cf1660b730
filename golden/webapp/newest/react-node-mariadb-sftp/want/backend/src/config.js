// Configuration from the environment; README.md lists every variable.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { LEVELS } from './log.js';

const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../migrations/', import.meta.url));

/**
 * loadConfig reads the configuration from `env` and throws one error that lists every
 * invalid variable.
 */
export function loadConfig(env = process.env) {
  const e = new EnvReader(env);
  const cfg = {
    port: e.port('PORT', 8080),
    db: {
      host: e.str('DB_HOST', 'db'),
      port: e.port('DB_PORT', 3306),
      name: e.str('DB_NAME', 'app'),
      user: e.str('DB_USER', 'app'),
      password: e.secret('DB_PASSWORD'),
      // Connections the pool may open; compose.prod.yaml sets it from the quotas (docs/tuning.md).
      poolSize: e.int('DB_POOL_SIZE', 10, 1, 1000, 'an integer from 1 to 1000'),
    },
    redis: {
      ...e.addr('REDIS_ADDR', 'cache', 6379),
      password: e.secret('REDIS_PASSWORD'),
      db: e.nonNegativeInt('REDIS_DB', 0),
    },
    migrateOnStart: e.bool('MIGRATE_ON_START', false),
    migrationsDir: e.str('MIGRATIONS_DIR', DEFAULT_MIGRATIONS_DIR),
    shutdownTimeoutMs: e.seconds('SHUTDOWN_TIMEOUT', 20) * 1000,
    logLevel: e.level('LOG_LEVEL', 'info'),
  };
  if (e.errors.length > 0) {
    throw new Error(`invalid configuration: ${e.errors.join('; ')}`);
  }
  return cfg;
}

/** EnvReader reads typed variables and collects what is wrong with them. */
class EnvReader {
  constructor(env) {
    this.env = env;
    this.errors = [];
  }

  fail(key, value, want) {
    this.errors.push(`${key}=${JSON.stringify(value)}: want ${want}`);
  }

  /** str returns the variable, or def when it is unset or empty. */
  str(key, def) {
    const v = this.env[key];
    return v === undefined || v === '' ? def : v;
  }

  /** secret returns the contents of the file named by KEY_FILE when set (without the trailing newline), else KEY. */
  secret(key) {
    const path = this.env[`${key}_FILE`];
    if (!path) return this.env[key] ?? '';
    try {
      return readFileSync(path, 'utf8').replace(/[\r\n]+$/, '');
    } catch (err) {
      this.errors.push(`${key}_FILE: ${err.message}`);
      return '';
    }
  }

  int(key, def, min, max, want) {
    const v = this.str(key, '');
    if (v === '') return def;
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || n < min || n > max) {
      this.fail(key, v, want);
      return def;
    }
    return n;
  }

  port(key, def) {
    return this.int(key, def, 1, 65535, 'a port number 1-65535');
  }

  nonNegativeInt(key, def) {
    return this.int(key, def, 0, Number.MAX_SAFE_INTEGER, 'an integer >= 0');
  }

  bool(key, def) {
    const v = this.str(key, '');
    if (v === '') return def;
    if (['1', 't', 'true', 'yes', 'on'].includes(v.toLowerCase())) return true;
    if (['0', 'f', 'false', 'no', 'off'].includes(v.toLowerCase())) return false;
    this.fail(key, v, 'true or false');
    return def;
  }

  /** seconds accepts a number of seconds ("20", "2.5") or one with a unit ("20s", "500ms", "1m"). */
  seconds(key, def) {
    const v = this.str(key, '');
    if (v === '') return def;
    const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m)?$/.exec(v);
    if (!m) {
      this.fail(key, v, 'a number of seconds like "20" or a duration like "20s"');
      return def;
    }
    return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2] ?? 's'];
  }

  level(key, def) {
    const v = this.str(key, def).toLowerCase();
    if (!(v in LEVELS)) {
      this.fail(key, v, 'debug, info, warn or error');
      return def;
    }
    return v;
  }

  /** addr parses "host:port" (or "[v6addr]:port"); a missing port means defPort. */
  addr(key, defHost, defPort) {
    const v = this.str(key, `${defHost}:${defPort}`);
    const m = /^(?:\[([^\]]+)\]|([^:]+))(?::([0-9]+))?$/.exec(v);
    const port = m?.[3] === undefined ? defPort : Number(m[3]);
    if (!m || port < 1 || port > 65535) {
      this.fail(key, v, '"host:port"');
      return { host: defHost, port: defPort };
    }
    return { host: m[1] ?? m[2], port };
  }
}
