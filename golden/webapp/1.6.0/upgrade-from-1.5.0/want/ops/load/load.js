// k6 load profile: the arrival rate ramps up to the expected peak (requests per second),
// holds it, and ramps down. Its summary is what ops/load/quotas turns into CPU and memory
// limits, with the resource peaks sampled during the hold. See README.md.
//
//   k6 run ops/load/load.js                       (from the project root; or `make load PROFILE=load`)
//
// Environment: BASE_URL, LOAD_PEAK_RPS (default: the answered peak), LOAD_RAMP_UP (default 2m),
// LOAD_HOLD (default 10m), LOAD_RAMP_DOWN (default 1m), LOAD_VUS and LOAD_MAX_VUS (virtual users
// allocated up front and at most), SUMMARY_PATH, and the credentials of lib/common.js.
import exec from 'k6/execution';
import {
  REQUESTS_PER_ITERATION, TREND_STATS, answeredPeakRps, durationSeconds, envDuration, envNumber,
  holdStats, journey, objectives, preflight, summary, thresholds, windowAt,
} from './lib/common.js';

const peakRps = envNumber('LOAD_PEAK_RPS', answeredPeakRps);
const rampUp = envDuration('LOAD_RAMP_UP', '2m');
const hold = envDuration('LOAD_HOLD', '10m');
const rampDown = envDuration('LOAD_RAMP_DOWN', '1m');
const holdStart = durationSeconds('LOAD_RAMP_UP', rampUp);
const holdSeconds = durationSeconds('LOAD_HOLD', hold);
// Enough VUs for iterations that take up to twice the latency objective per request.
const iterationSeconds = (REQUESTS_PER_ITERATION * 2 * objectives.latencyP95Ms) / 1000;
const vus = Math.ceil(envNumber('LOAD_VUS', Math.max(5, (peakRps / REQUESTS_PER_ITERATION) * iterationSeconds)));
const maxVUs = Math.ceil(envNumber('LOAD_MAX_VUS', Math.max(50, vus * 5)));

export const options = {
  scenarios: {
    load: {
      executor: 'ramping-arrival-rate',
      // Rates count iterations per timeUnit; an iteration sends REQUESTS_PER_ITERATION
      // requests, so a target of N per REQUESTS_PER_ITERATION seconds is N requests per second.
      timeUnit: `${REQUESTS_PER_ITERATION}s`,
      startRate: 0,
      preAllocatedVUs: vus,
      maxVUs,
      stages: [
        { target: peakRps, duration: rampUp },
        { target: peakRps, duration: hold },
        { target: 0, duration: rampDown },
      ],
      gracefulStop: '30s',
    },
  },
  // Requests sent during the hold carry the tag phase:hold: the objectives must hold there too,
  // and the summary reports the hold on its own (the whole run's rate includes the ramps).
  thresholds: thresholds({
    'http_reqs{phase:hold}': ['count>0'],
    'http_req_duration{phase:hold}': [`p(95)<${objectives.latencyP95Ms}`],
    'http_req_failed{phase:hold}': thresholds().http_req_failed,
  }),
  summaryTrendStats: TREND_STATS,
};

export const setup = preflight;

export default function () {
  journey({ phase: windowAt(exec.scenario.startTime, [[holdStart, holdStart + holdSeconds, 'hold']], 'ramp') });
}

export function handleSummary(data) {
  return summary('load', data, {
    peak_rps: peakRps,
    ramp_up: rampUp,
    hold_duration: hold,
    ramp_down: rampDown,
    // What was measured while the peak was held: requests, rate, latency, failures.
    hold: holdStats(data, 'phase:hold', holdSeconds),
  });
}
