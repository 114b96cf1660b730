// The HTTP API: health, readiness, metrics and the items endpoints (see README.md).

const MAX_BODY_BYTES = 64 * 1024;
const MAX_NAME_CHARS = 200;
const LIST_LIMIT = 100;
const CHECK_TIMEOUT_MS = 2000;

// Probes and scrapes arrive every few seconds; their access log lines are debug level.
const QUIET_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);

/** HttpError is an error with the status and message the client gets. */
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/**
 * createApp returns the request handler and a switch for shutdown. store is the items store
 * (db.js), cache the item cache (cache.js) or null, log the logger (log.js) and metrics the
 * registry (metrics.js).
 */
export function createApp({ store, cache = null, log, metrics, checkTimeoutMs = CHECK_TIMEOUT_MS }) {
  let shuttingDown = false;

  const healthz = (req, res) => sendJSON(res, 200, { status: 'ok' });

  async function readyz(req, res) {
    if (shuttingDown) return sendJSON(res, 503, { status: 'shutting down' });
    const deps = { db: store, ...(cache ? { cache } : {}) };
    const checks = Object.fromEntries(Object.keys(deps).map((name) => [name, 'pending'])); // fixed key order
    await Promise.all(
      Object.entries(deps).map(async ([name, dep]) => {
        try {
          await withTimeout(dep.ping(), checkTimeoutMs);
          checks[name] = 'ok';
        } catch (err) {
          checks[name] = err.message || String(err);
        }
      }),
    );
    const ok = Object.values(checks).every((v) => v === 'ok');
    if (!ok) log.warn('not ready', { checks });
    sendJSON(res, ok ? 200 : 503, { status: ok ? 'ok' : 'unavailable', checks });
  }

  async function metricsHandler(req, res) {
    const body = await metrics.render();
    res.writeHead(200, { 'Content-Type': metrics.contentType, 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  }

  async function createItem(req, res) {
    let body;
    try {
      body = JSON.parse(await readBody(req));
    } catch (err) {
      throw err instanceof HttpError ? err : new HttpError(400, 'body must be JSON: {"name": "..."}');
    }
    const name = typeof body?.name === 'string' ? body.name.trim() : undefined;
    if (name === undefined) throw new HttpError(400, 'name must be a string');
    const chars = [...name].length;
    if (chars < 1 || chars > MAX_NAME_CHARS) {
      throw new HttpError(400, `name must be 1 to ${MAX_NAME_CHARS} characters`);
    }
    const item = await store.createItem(name);
    res.setHeader('Location', `/api/items/${item.id}`);
    sendJSON(res, 201, item);
  }

  async function listItems(req, res) {
    sendJSON(res, 200, await store.listItems(LIST_LIMIT));
  }

  async function getItem(req, res, { id: raw }) {
    const id = /^[1-9][0-9]{0,15}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(id)) throw new HttpError(404, 'not found');
    if (!cache) {
      const item = await store.getItem(id);
      if (!item) throw new HttpError(404, 'not found');
      return sendJSON(res, 200, item);
    }
    // Cache-aside: a cache failure is logged and the database answers.
    let item = null;
    let cacheUp = true;
    try {
      item = await cache.get(id);
    } catch (err) {
      cacheUp = false;
      log.warn('cache read failed', { id, err });
    }
    if (item) {
      res.setHeader('X-Cache', 'hit');
      return sendJSON(res, 200, item);
    }
    res.setHeader('X-Cache', 'miss');
    item = await store.getItem(id);
    if (!item) throw new HttpError(404, 'not found');
    if (cacheUp) {
      try {
        await cache.set(item);
      } catch (err) {
        log.warn('cache write failed', { id, err });
      }
    }
    sendJSON(res, 200, item);
  }

  // Routes: the pattern is also the `route` label of the metrics.
  const routes = [
    { pattern: '/healthz', methods: { GET: healthz } },
    { pattern: '/readyz', methods: { GET: readyz } },
    { pattern: '/metrics', methods: { GET: metricsHandler } },
    { pattern: '/api/items', methods: { GET: listItems, POST: createItem } },
    { pattern: '/api/items/{id}', re: /^\/api\/items\/([^/]+)$/, params: ['id'], methods: { GET: getItem } },
  ];

  function match(pathname) {
    for (const route of routes) {
      if (!route.re) {
        if (pathname === route.pattern) return { route, params: {} };
        continue;
      }
      const m = route.re.exec(pathname);
      if (m) {
        return { route, params: Object.fromEntries(route.params.map((p, i) => [p, m[i + 1]])) };
      }
    }
    return null;
  }

  async function handler(req, res) {
    const start = process.hrtime.bigint();
    const pathname = req.url.split('?', 1)[0];
    let routeLabel = 'unmatched';
    res.on('finish', () => {
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      metrics.observe(req.method, routeLabel, res.statusCode, seconds);
      const level = QUIET_ROUTES.has(routeLabel) && res.statusCode < 400 ? 'debug' : 'info';
      log[level]('request', {
        method: req.method,
        path: pathname,
        status: res.statusCode,
        duration_ms: Math.round(seconds * 1e6) / 1e3,
      });
    });
    try {
      const found = match(pathname);
      if (!found) throw new HttpError(404, 'not found');
      routeLabel = found.route.pattern;
      const methods = found.route.methods;
      const fn = methods[req.method] ?? (req.method === 'HEAD' ? methods.GET : undefined);
      if (!fn) {
        res.setHeader('Allow', Object.keys(methods).join(', '));
        throw new HttpError(405, 'method not allowed');
      }
      await fn(req, res, found.params);
    } catch (err) {
      if (!(err instanceof HttpError)) {
        log.error('request failed', { method: req.method, path: pathname, err });
      }
      if (res.headersSent) {
        res.destroy();
        return;
      }
      const status = err instanceof HttpError ? err.status : 500;
      sendJSON(res, status, { error: err instanceof HttpError ? err.message : 'internal error' });
    }
  }

  return {
    handler,
    /** startShutdown makes /readyz answer 503 so load balancers stop sending traffic. */
    startShutdown() {
      shuttingDown = true;
    },
  };
}

function sendJSON(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
