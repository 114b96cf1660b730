// One JSON object per line on stdout: {"time","level","msg", ...fields}.
// A hand-rolled logger keeps the dependency list short; swap in pino if you need more.

export const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * createLogger returns a logger that writes lines at or above `level` to `stream`.
 * Error values among the fields are written as their message.
 */
export function createLogger({ level = 'info', stream = process.stdout, now = () => new Date() } = {}) {
  const min = LEVELS[level];
  if (min === undefined) throw new Error(`unknown log level ${JSON.stringify(level)}`);
  const write = (lvl, msg, fields) => {
    if (LEVELS[lvl] < min) return;
    const entry = { time: now().toISOString(), level: lvl, msg };
    for (const [k, v] of Object.entries(fields ?? {})) {
      if (k === 'time' || k === 'level' || k === 'msg') continue;
      entry[k] = v instanceof Error ? v.message : v;
    }
    stream.write(`${JSON.stringify(entry)}\n`);
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  };
}
