// k6 stress profile: beyond the expected peak, in steps (1x, 2x, 3x the peak by default),
// each held for a while, to find where the objectives stop holding and how the application
// fails. Crossed thresholds are expected at some step: the per-step lines of the summary
// (http_req_duration{level:2x} and so on) show the last step that held. See README.md.
//
//   k6 run ops/load/stress.js                     (from the project root; or `make load PROFILE=stress`)
//
// Environment: BASE_URL, LOAD_PEAK_RPS (default: the answered peak), STRESS_FACTOR (highest
// multiple of the peak, default 3), STRESS_RAMP (default 1m) and STRESS_HOLD (default 3m) per
// step, STRESS_RAMP_DOWN (default 1m), STRESS_VUS and STRESS_MAX_VUS, SUMMARY_PATH, and the
// credentials of lib/common.js.
import exec from 'k6/execution';
import {
  REQUESTS_PER_ITERATION, TREND_STATS, answeredPeakRps, durationSeconds, envDuration, envNumber,
  holdStats, journey, objectives, preflight, summary, thresholds, windowAt,
} from './lib/common.js';

const peakRps = envNumber('LOAD_PEAK_RPS', answeredPeakRps);
const factor = envNumber('STRESS_FACTOR', 3);
const ramp = envDuration('STRESS_RAMP', '1m');
const hold = envDuration('STRESS_HOLD', '3m');
const rampDown = envDuration('STRESS_RAMP_DOWN', '1m');

// Steps 1x, 2x, ... up to factor (a fractional factor is the last step).
const levels = [];
for (let f = 1; f < factor; f += 1) {
  levels.push(f);
}
levels.push(factor);

const stages = [];
const holds = []; // [start, end, label] of each hold, in seconds from the start
let t = 0;
for (const f of levels) {
  stages.push({ target: Math.round(peakRps * f), duration: ramp });
  t += durationSeconds('STRESS_RAMP', ramp);
  stages.push({ target: Math.round(peakRps * f), duration: hold });
  holds.push([t, t + durationSeconds('STRESS_HOLD', hold), `${f}x`]);
  t += durationSeconds('STRESS_HOLD', hold);
}
stages.push({ target: 0, duration: rampDown });

const topRps = peakRps * factor;
const iterationSeconds = (REQUESTS_PER_ITERATION * 2 * objectives.latencyP95Ms) / 1000;
const vus = Math.ceil(envNumber('STRESS_VUS', Math.max(5, (topRps / REQUESTS_PER_ITERATION) * iterationSeconds)));
const maxVUs = Math.ceil(envNumber('STRESS_MAX_VUS', Math.max(100, vus * 10)));

// Per-step thresholds on the requests sent while a step is held: the objectives again, so the
// summary says which step still met them.
const extra = {};
for (const [, , label] of holds) {
  extra[`http_reqs{level:${label}}`] = ['count>0'];
  extra[`http_req_duration{level:${label}}`] = [`p(95)<${objectives.latencyP95Ms}`];
  extra[`http_req_failed{level:${label}}`] = thresholds().http_req_failed;
}

export const options = {
  scenarios: {
    stress: {
      executor: 'ramping-arrival-rate',
      timeUnit: `${REQUESTS_PER_ITERATION}s`, // targets are requests per second (see load.js)
      startRate: 0,
      preAllocatedVUs: vus,
      maxVUs,
      stages,
      gracefulStop: '30s',
    },
  },
  thresholds: thresholds(extra),
  summaryTrendStats: TREND_STATS,
};

export const setup = preflight;

export default function () {
  // The step being held at this moment, or "ramp" between holds.
  journey({ level: windowAt(exec.scenario.startTime, holds, 'ramp') });
}

export function handleSummary(data) {
  const steps = {};
  for (const [start, end, label] of holds) {
    steps[label] = holdStats(data, `level:${label}`, end - start);
  }
  // steps: what was measured while each step was held.
  return summary('stress', data, { peak_rps: peakRps, factor, ramp, hold_duration: hold, ramp_down: rampDown, steps });
}
