// Container healthcheck: exits 0 when GET /healthz on this container answers 200.
// Used by the Dockerfile's HEALTHCHECK and compose: ["CMD", "node", "src/healthcheck.js"].
import http from 'node:http';

const port = Number(process.env.PORT || 8080);
const req = http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 3000 }, (res) => {
  res.resume();
  if (res.statusCode !== 200) console.error(`healthcheck: /healthz answered ${res.statusCode}`);
  process.exit(res.statusCode === 200 ? 0 : 1);
});
req.on('timeout', () => req.destroy(new Error('no answer within 3 s')));
req.on('error', (err) => {
  console.error(`healthcheck: ${err.message}`);
  process.exit(1);
});
