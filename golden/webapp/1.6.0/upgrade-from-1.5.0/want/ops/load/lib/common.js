// Shared by the k6 profiles of shop (smoke.js, load.js, stress.js): the objectives the
// thresholds come from, settings from the environment, the user journey with its checks and
// the end-of-test summary. See ops/load/README.md. No remote imports: k6 runs offline.
import http from 'k6/http';
import encoding from 'k6/encoding';
import { check, fail } from 'k6';

// The answers given to opsready (.opsready.yaml); `opsready upgrade` keeps them in step.
export const objectives = {
  // Percent of requests that must succeed (availability objective).
  availability: Number("99.9"),
  // 95th percentile of the request duration, in milliseconds (latency objective).
  latencyP95Ms: 300,
};
// Expected peak load, in requests per second: the load profile holds it.
export const answeredPeakRps = 50;

// The journey below sends this many requests per iteration; arrival rates count iterations,
// so the profiles divide by it to get requests per second.
export const REQUESTS_PER_ITERATION = 4;

// Trend statistics kept in the summary (ops/load/quotas reads p(95) and p(99)).
export const TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'];

// env returns the environment variable name (k6 run -e NAME=... or the process
// environment), or fallback when it is unset or empty.
export function env(name, fallback) {
  const v = __ENV[name];
  return v === undefined || v === '' ? fallback : v;
}

// envNumber is env for a positive number; anything else stops the test with a message.
export function envNumber(name, fallback) {
  const raw = env(name, undefined);
  if (raw === undefined) {
    return fallback;
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) {
    throw new Error(`${name}=${raw}: want a positive number`);
  }
  return n;
}

// durationSeconds parses a k6 duration such as "90s", "2m", "1m30s" or "1h".
export function durationSeconds(name, value) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600 };
  let total = 0;
  let consumed = '';
  let m;
  while ((m = re.exec(value)) !== null) {
    total += Number(m[1]) * unit[m[2]];
    consumed += m[0];
  }
  if (consumed !== value || total <= 0) {
    throw new Error(`${name}=${value}: want a duration such as 30s, 2m or 1m30s`);
  }
  return total;
}

// envDuration is env for a duration; it returns the duration as given (k6 parses it).
export function envDuration(name, fallback) {
  const v = env(name, fallback);
  durationSeconds(name, v);
  return v;
}

// windowAt returns the label of the window [start, end, label] (seconds since the scenario
// started) that holds the present moment, or outside.
export function windowAt(startTime, windows, outside) {
  const s = startTime ? (Date.now() - startTime) / 1000 : 0;
  for (const [start, end, label] of windows) {
    if (s >= start && s < end) {
      return label;
    }
  }
  return outside;
}

// holdStats measures the requests tagged with tag (e.g. "phase:hold") in a window of
// seconds: their count, rate and latency percentiles, for the summary's "profile" object.
export function holdStats(data, tag, seconds) {
  const reqs = data.metrics[`http_reqs{${tag}}`];
  const dur = data.metrics[`http_req_duration{${tag}}`];
  const failed = data.metrics[`http_req_failed{${tag}}`];
  const count = reqs ? reqs.values.count : 0;
  return {
    seconds,
    requests: count,
    rps: Number((count / seconds).toFixed(3)),
    p95_ms: dur ? dur.values['p(95)'] : null,
    p99_ms: dur ? dur.values['p(99)'] : null,
    failed_rate: failed ? failed.values.rate : null,
  };
}

// Where the application is: Traefik in production, in development the frontend's port (or the
// backend's without a frontend). Optional credentials, for an entry point behind
// authentication: API_TOKEN (sent as a bearer token) or BASIC_AUTH_USER and BASIC_AUTH_PASSWORD.
export const BASE_URL = env('BASE_URL', 'http://localhost:8080').replace(/\/+$/, '');
const authHeaders = {};
if (env('API_TOKEN', '') !== '') {
  authHeaders.Authorization = `Bearer ${__ENV.API_TOKEN}`;
} else if (env('BASIC_AUTH_USER', '') !== '') {
  authHeaders.Authorization = `Basic ${encoding.b64encode(`${__ENV.BASIC_AUTH_USER}:${env('BASIC_AUTH_PASSWORD', '')}`)}`;
}

// thresholds turns the objectives into k6 thresholds: p(95) latency, the share of failed
// requests the availability objective allows, and checks. extra adds thresholds on tagged
// sub-metrics (the stress profile's levels).
export function thresholds(extra = {}) {
  const allowed = Number(((100 - objectives.availability) / 100).toFixed(6));
  return Object.assign({
    http_req_duration: [`p(95)<${objectives.latencyP95Ms}`],
    http_req_failed: [allowed > 0 ? `rate<${allowed}` : 'rate==0'],
    checks: ['rate>0.99'],
  }, extra);
}

function params(name, tags, json) {
  const headers = Object.assign({ Accept: 'application/json' }, authHeaders);
  if (json) {
    headers['Content-Type'] = 'application/json';
  }
  return { headers, tags: Object.assign({ name }, tags) };
}

function body(res) {
  try {
    return res.json();
  } catch (e) {
    return null;
  }
}

// preflight is the profiles' setup(): it stops the test at once, with a clear message, when
// nothing answers at BASE_URL, instead of measuring a dead address for minutes.
export function preflight() {
  const res = http.get(`${BASE_URL}/healthz`, params('preflight', {}, false));
  if (res.status !== 200) {
    const why = res.error ? res.error : `status ${res.status}`;
    fail(`${BASE_URL}/healthz does not answer 200 (${why}): is the application running and BASE_URL right?`);
  }
  return { baseUrl: BASE_URL };
}

// journey is one iteration: health, the item list, and a write-then-read round trip, each
// with its checks. tags are added to every request (the stress profile's level).
export function journey(tags = {}) {
  let res = http.get(`${BASE_URL}/healthz`, params('GET /healthz', tags, false));
  check(res, { 'GET /healthz: 200': (r) => r.status === 200 }, tags);

  res = http.get(`${BASE_URL}/api/items`, params('GET /api/items', tags, false));
  check(res, {
    'GET /api/items: 200': (r) => r.status === 200,
    'GET /api/items: a JSON list': (r) => Array.isArray(body(r)),
  }, tags);

  const name = `k6-${__VU}-${__ITER}-${Date.now()}`;
  res = http.post(`${BASE_URL}/api/items`, JSON.stringify({ name }), params('POST /api/items', tags, true));
  const created = body(res);
  const ok = check(res, {
    'POST /api/items: 201': (r) => r.status === 201,
    'POST /api/items: the item with an id': () => created !== null && Number.isInteger(created.id) && created.name === name,
  }, tags);
  if (!ok) {
    return;
  }

  res = http.get(`${BASE_URL}/api/items/${created.id}`, params('GET /api/items/{id}', tags, false));
  const got = body(res);
  check(res, {
    'GET /api/items/{id}: 200': (r) => r.status === 200,
    'GET /api/items/{id}: the created item': () => got !== null && got.id === created.id && got.name === name,
  }, tags);
}

function fmtMs(v) {
  return v === undefined ? '-' : `${v.toFixed(1)} ms`;
}

function pct(v) {
  return v === undefined ? '-' : `${(v * 100).toFixed(2)}%`;
}

// textSummary is a short plain-text report (k6's own textSummary is a remote jslib import).
function textSummary(profile, data, path) {
  const m = data.metrics || {};
  const v = (name) => (m[name] && m[name].values) || {};
  const lines = [];
  const reqs = v('http_reqs');
  const dur = v('http_req_duration');
  const checks = v('checks');
  const iters = v('iterations');
  lines.push(`k6 ${profile} profile against ${BASE_URL}`);
  lines.push(`  requests    ${reqs.count || 0} (${(reqs.rate || 0).toFixed(1)}/s), failed ${pct(v('http_req_failed').rate)}`);
  lines.push(`  duration    avg ${fmtMs(dur.avg)}, p(90) ${fmtMs(dur['p(90)'])}, p(95) ${fmtMs(dur['p(95)'])}, p(99) ${fmtMs(dur['p(99)'])}, max ${fmtMs(dur.max)}`);
  lines.push(`  checks      ${pct(checks.rate)} passed (${checks.passes || 0} passed, ${checks.fails || 0} failed)`);
  lines.push(`  iterations  ${iters.count || 0} (${(iters.rate || 0).toFixed(2)}/s), VUs max ${v('vus_max').max || v('vus_max').value || 0}`);
  if (v('dropped_iterations').count) {
    lines.push(`  dropped     ${v('dropped_iterations').count} iterations: not enough VUs for the arrival rate (raise *_MAX_VUS)`);
  }
  const failedChecks = ((data.root_group && data.root_group.checks) || []).filter((c) => c.fails > 0);
  for (const c of failedChecks) {
    lines.push(`  check failed ${c.fails} times: ${c.name}`);
  }
  let crossed = 0;
  lines.push('thresholds');
  for (const name of Object.keys(m).sort()) {
    const th = m[name].thresholds || {};
    for (const expr of Object.keys(th)) {
      const ok = th[expr].ok;
      crossed += ok ? 0 : 1;
      lines.push(`  ${ok ? 'PASS' : 'FAIL'} ${name} ${expr}`);
    }
  }
  lines.push(crossed === 0 ? 'RESULT: all thresholds met' : `RESULT: ${crossed} threshold(s) crossed`);
  lines.push(`summary JSON: ${path}`);
  return `${lines.join('\n')}\n`;
}

// summary is the profiles' handleSummary(): the whole k6 summary as JSON (with a "profile"
// key describing the run) at SUMMARY_PATH (default ops/load/results/<profile>-summary.json,
// relative to the directory k6 runs in: the project root) and a text report on stdout.
export function summary(profile, data, settings) {
  const path = env('SUMMARY_PATH', `ops/load/results/${profile}-summary.json`);
  const out = Object.assign({
    profile: Object.assign({
      name: profile,
      base_url: BASE_URL,
      objectives: { availability_percent: objectives.availability, latency_p95_ms: objectives.latencyP95Ms },
      requests_per_iteration: REQUESTS_PER_ITERATION,
    }, settings || {}),
  }, data);
  return {
    stdout: textSummary(profile, data, path),
    [path]: `${JSON.stringify(out, null, 2)}\n`,
  };
}
