// Graceful shutdown of the HTTP server and the pools behind it.

/**
 * gracefulShutdown stops the server from accepting connections, lets in-flight requests
 * finish, then runs closeResources (database pool, cache client). Everything shares one
 * budget of timeoutMs: past it the remaining connections are cut. It resolves to true
 * when all of it finished in time.
 */
export async function gracefulShutdown(server, { timeoutMs, closeResources, log }) {
  const deadline = Date.now() + timeoutMs;
  const closed = new Promise((resolve) => server.close(() => resolve(true)));
  // Requests that arrive on open keep-alive connections are still served; tell their
  // clients to reconnect (to another replica) ...
  server.prependListener('request', (req, res) => res.setHeader('Connection', 'close'));
  // ... and close connections as soon as they are idle: server.close() only closes
  // those that are idle at the moment it is called.
  server.closeIdleConnections();
  const sweeper = setInterval(() => server.closeIdleConnections(), 100);
  const finished = await beforeDeadline(closed, deadline);
  clearInterval(sweeper);
  if (!finished) {
    log.error('requests still running at the shutdown deadline; closing their connections', {
      timeout_ms: timeoutMs,
    });
    server.closeAllConnections();
    return false;
  }
  try {
    if (!(await beforeDeadline(closeResources().then(() => true), deadline))) {
      log.error('closing connection pools took longer than the shutdown deadline', { timeout_ms: timeoutMs });
      return false;
    }
  } catch (err) {
    log.error('closing connection pools failed', { err });
    return false;
  }
  return true;
}

/** beforeDeadline resolves to the promise's value, or to false at the deadline. */
function beforeDeadline(promise, deadline) {
  let timer;
  const late = new Promise((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
