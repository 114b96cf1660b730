// k6 smoke profile: a couple of virtual users for half a minute walk the whole journey, to
// show that the application works and the objectives hold at a trickle. Run it after each
// deploy, and before the load profile. See README.md.
//
//   k6 run ops/load/smoke.js                      (from the project root; or `make load PROFILE=smoke`)
//
// Environment: BASE_URL, SMOKE_VUS (default 2), SMOKE_DURATION (default 30s), SMOKE_PAUSE
// (seconds between iterations of a VU, default 1), SUMMARY_PATH, and the credentials of
// lib/common.js.
import { sleep } from 'k6';
import { TREND_STATS, env, envDuration, envNumber, journey, preflight, summary, thresholds } from './lib/common.js';

const vus = envNumber('SMOKE_VUS', 2);
const duration = envDuration('SMOKE_DURATION', '30s');
const pause = Number(env('SMOKE_PAUSE', '1'));

export const options = {
  scenarios: {
    smoke: { executor: 'constant-vus', vus, duration, gracefulStop: '10s' },
  },
  thresholds: thresholds(),
  summaryTrendStats: TREND_STATS,
};

export const setup = preflight;

export default function () {
  journey();
  if (pause > 0) {
    sleep(pause);
  }
}

export function handleSummary(data) {
  return summary('smoke', data, { vus, duration });
}
